// Errors are 4xx where the caller is wrong: every state conflict is 409 (never 500), and ids a
// caller may not read answer exactly like ids that do not exist (404, same body) — no probing.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { startHarness } from '../integration/harness.ts';
import type { Harness } from '../integration/harness.ts';
import { PortcullisError } from '../../src/common/errors.ts';
import { problem, toProblem } from '../../src/server/problem.ts';
import type { Json } from '../json.ts';

const POLICIES = `
permit (principal == Workload::"workload:github/acme/api", action == Action::"access.request", resource);
permit (principal == Workload::"workload:github/acme/api", action == Action::"credential.issue", resource == Api::"orders-api");
permit (principal == User::"user:admin", action == Action::"access.approve", resource);
`;

describe('state conflicts and probing over HTTP', () => {
  let h: Harness;
  let admin = '';
  let api = '';
  let other = '';
  const request = async (token: string) => {
    const r = await h.post('/v1/access-requests', { role: 'orders-reader', duration: '1h', reason: 'errors test' }, token);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body.id as string;
  };
  before(async () => {
    h = await startHarness(
      `targets:\n  - { name: orders-api, kind: api, audience: https://orders.acme.test, scopes: [orders:read], max_ttl: 30m }\n`,
      {},
      undefined,
      { policies: POLICIES, resources: '  - { type: Api, id: orders-api, boundary: application, environment: prod }' },
    );
    admin = await h.admin();
    api = await h.loginCi();
    other = await h.loginCi({ repository: 'acme/other' }); // registered on first login, may read nothing
  });
  after(() => h.close());

  test('approving an approved request, cancelling or denying after approval, approving an expired one: 409, never 500', async () => {
    const rid = await request(api);
    const ok = await h.post(`/v1/access-requests/${rid}/approve`, {}, admin);
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    api = await h.loginCi(); // a granted role changes memberships: sessions start again
    for (const [verb, token] of [['approve', admin], ['deny', admin], ['cancel', api]] as const) {
      const r = await h.post(`/v1/access-requests/${rid}/${verb}`, {}, token);
      assert.equal(r.status, 409, `${verb} after approval: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.code, 'request_not_pending');
      assert.equal(r.body.state, 'approved');
    }
    const cancelled = await request(api);
    assert.equal((await h.post(`/v1/access-requests/${cancelled}/cancel`, {}, api)).status, 200);
    for (const verb of ['approve', 'deny', 'cancel']) {
      const r = await h.post(`/v1/access-requests/${cancelled}/${verb}`, {}, verb === 'cancel' ? api : admin);
      assert.equal(r.status, 409, `${verb} after cancel: ${JSON.stringify(r.body)}`);
    }
    const old = await request(api);
    const key = await h.post('/v1/apikeys', { identity: 'user:admin', ttl: '30d' }, admin);
    assert.equal(key.status, 201, JSON.stringify(key.body));
    h.clock.advance(8 * 24 * 3_600_000); // past any request expiry (and the sessions)
    const login = await h.post('/v1/auth/token', { api_key: key.body.api_key ?? key.body.key });
    assert.equal(login.status, 200, JSON.stringify(login.body));
    const r = await h.post(`/v1/access-requests/${old}/approve`, {}, login.body.session_token);
    assert.equal(r.status, 409, JSON.stringify(r.body));
    assert.equal(r.body.state, 'expired');
    h.clock.advance(-8 * 24 * 3_600_000);
    admin = (await h.post('/v1/auth/token', { api_key: key.body.api_key ?? key.body.key })).body.session_token;
  });

  test('API answers are stored by no cache (no-store, errors too); public discovery documents keep their own caching', async () => {
    for (const [path, token, status] of [['/v1/identities', admin, 200], ['/v1/audit/authz?limit=1', admin, 200], ['/v1/identities', other, 403], ['/v1/access-requests/req_unknown', other, 404]] as const) {
      const r = await fetch(`${h.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(r.status, status, path);
      assert.equal(r.headers.get('cache-control'), 'no-store', `${path} (${status})`);
    }
    assert.equal((await fetch(`${h.url}/.well-known/authzen-configuration`)).headers.get('cache-control'), 'public, max-age=300');
  });

  test('renewing a revoked lease is 409 lease_not_active', async () => {
    api = await h.loginCi();
    const issued = await h.post('/v1/credentials', { target: 'orders-api', scopes: ['orders:read'], ttl: '5m', reason: 'errors test' }, api);
    assert.equal(issued.status, 201, JSON.stringify(issued.body));
    const id = issued.body.lease.id as string;
    assert.equal((await h.post('/v1/revocations', { selector: { lease: id }, reason: 'done' }, api)).status, 200);
    const r = await h.post(`/v1/leases/${id}/renew`, {}, api);
    assert.equal(r.status, 409, JSON.stringify(r.body));
    assert.equal(r.body.code, 'lease_not_active');
    assert.equal(r.body.state, 'revoked');
  });

  test('to a caller who may not read them, forbidden ids and unknown ids answer the same 404', async () => {
    const rid = await request(api);
    const approved = await request(api);
    const approval = await h.post(`/v1/access-requests/${approved}/approve`, {}, admin);
    const grant = approval.body.grant?.id as string;
    assert.ok(grant, `the approval made a grant: ${JSON.stringify(approval.body)}`);
    api = await h.loginCi();
    const lease = (await h.post('/v1/credentials', { target: 'orders-api', scopes: ['orders:read'], ttl: '5m', reason: 'errors test' }, api)).body.lease.id as string;
    const key = await h.post('/v1/apikeys', { identity: 'workload:github/acme/api', ttl: '1h' }, admin);
    assert.equal(key.status, 201, JSON.stringify(key.body));
    const keyId = (key.body.id ?? key.body.apikey?.id) as string;
    assert.ok(keyId, JSON.stringify(key.body));

    const kinds: [string, string, string, (id: string) => Promise<{ status: number; body: Json }>][] = [
      ['GET request', rid, 'req_00000000-0000-4000-8000-000000000000', (id) => h.get(`/v1/access-requests/${id}`, other)],
      ['approve request', rid, 'req_00000000-0000-4000-8000-000000000000', (id) => h.post(`/v1/access-requests/${id}/approve`, {}, other)],
      ['deny request', rid, 'req_00000000-0000-4000-8000-000000000000', (id) => h.post(`/v1/access-requests/${id}/deny`, {}, other)],
      ['cancel request', rid, 'req_00000000-0000-4000-8000-000000000000', (id) => h.post(`/v1/access-requests/${id}/cancel`, {}, other)],
      ['comment request', rid, 'req_00000000-0000-4000-8000-000000000000', (id) => h.post(`/v1/access-requests/${id}/comment`, { text: 'hi' }, other)],
      ['approve approved request', approved, 'req_00000000-0000-4000-8000-000000000000', (id) => h.post(`/v1/access-requests/${id}/approve`, {}, other)],
      ['revoke grant', grant, 'grant_00000000-0000-4000-8000-000000000000', (id) => h.post(`/v1/grants/${id}/revoke`, { reason: 'x' }, other)],
      ['end break-glass', grant, 'grant_00000000-0000-4000-8000-000000000000', (id) => h.post(`/v1/break-glass/${id}/end`, { reason: 'x' }, other)],
      ['review break-glass', grant, 'grant_00000000-0000-4000-8000-000000000000', (id) => h.post(`/v1/break-glass/${id}/review`, { summary: 'x' }, other)],
      ['renew lease', lease, 'lease_00000000-0000-4000-8000-000000000000', (id) => h.post(`/v1/leases/${id}/renew`, {}, other)],
      ['revoke lease', lease, 'lease_00000000-0000-4000-8000-000000000000', (id) => h.post('/v1/revocations', { selector: { lease: id }, reason: 'x' }, other)],
      ['GET identity', 'workload:github/acme/api', 'workload:github/acme/nobody', (id) => h.get(`/v1/identities/${encodeURIComponent(id)}`, other)],
      ['PATCH identity', 'workload:github/acme/api', 'workload:github/acme/nobody', (id) => h.request('PATCH', `/v1/identities/${encodeURIComponent(id)}`, { purpose: 'x' }, other)],
      ['suspend identity', 'workload:github/acme/api', 'workload:github/acme/nobody', (id) => h.post(`/v1/identities/${encodeURIComponent(id)}/suspend`, {}, other)],
      ['offboard identity', 'workload:github/acme/api', 'workload:github/acme/nobody', (id) => h.post(`/v1/identities/${encodeURIComponent(id)}/offboard`, {}, other)],
      ['rotate api key', keyId, 'apikey:ZZZZZZZZZZ', (id) => h.post(`/v1/apikeys/${encodeURIComponent(id)}/rotate`, undefined, other)],
      ['revoke api key', keyId, 'apikey:ZZZZZZZZZZ', (id) => h.post(`/v1/apikeys/${encodeURIComponent(id)}/revoke`, {}, other)],
    ];
    for (const [name, existing, unknown, call] of kinds) {
      const a = await call(existing);
      const b = await call(unknown);
      assert.equal(a.status, 404, `${name} (exists, forbidden): ${JSON.stringify(a.body)}`);
      assert.equal(b.status, 404, `${name} (unknown): ${JSON.stringify(b.body)}`);
      assert.deepEqual(JSON.parse(JSON.stringify(a.body).replaceAll(existing, 'ID')), JSON.parse(JSON.stringify(b.body).replaceAll(unknown, 'ID')), name);
    }
    // Nothing happened to the resources.
    assert.equal((await h.get(`/v1/access-requests/${rid}`, api)).body.status, 'pending');
    assert.equal((await h.get('/v1/identities/workload%3Agithub%2Facme%2Fapi', admin)).body.status, 'active');
    // Those who may read still get the precise answer.
    assert.equal((await h.post(`/v1/access-requests/${approved}/approve`, {}, admin)).status, 409);
  });
});

test('every error class maps to its own 4xx/5xx status; extras never replace problem members', async () => {
  const root = join(import.meta.dirname, '..', '..', 'src');
  const files: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else if (e.name.endsWith('.ts') && !/worker/.test(e.name) && !relative(root, join(d, e.name)).startsWith('cli')) files.push(join(d, e.name));
    }
  };
  walk(root);
  const classes = new Set<new (...a: string[]) => PortcullisError>();
  for (const f of files) {
    const m = (await import(f)) as Record<string, unknown>;
    for (const v of Object.values(m)) if (typeof v === 'function' && v.prototype instanceof PortcullisError) classes.add(v as never);
  }
  assert.ok(classes.size >= 15, `found ${classes.size} error classes`);
  for (const C of classes) {
    let e: PortcullisError;
    try {
      e = new C('id-1', 'approved', 'x', 'y');
    } catch {
      continue; // needs structured arguments; its status is still checked below when constructible
    }
    assert.ok(Number.isInteger(e.status) && e.status >= 400 && e.status <= 599, `${C.name}: ${e.status}`);
    const p = toProblem(e);
    assert.equal(p.status, e.status, `${C.name}: extras must not replace the status (${JSON.stringify(e.extra)})`);
    assert.equal(p.code, e.code, C.name);
    assert.equal(typeof p.detail, 'string');
  }
  const p = problem(409, 'conflict', 'x', { status: 'approved', code: 'evil', type: 't', title: 'T', detail: 'd', state: 'approved' });
  assert.deepEqual([p.status, p.code, p.detail, p.state], [409, 'conflict', 'x', 'approved']);
  assert.equal(problem(Number.NaN, 'x', 'y').status, 500);
});
