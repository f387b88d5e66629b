// Issue #8 items 4–8, re-attacked as an outside reviewer would, over HTTP against the real broker,
// a real OpenID provider, real CI tokens and a real PostgreSQL target:
// - 8.4: a role grant whose policy reaches a prod database is no way around the prod rule — a
//   grant counts in a decision only when it meets the strictest rule matching what is decided on
//   (approvals and max_duration); a credential issued under a role grant is tied to it and never
//   outlives it, renewals included;
// - 8.5: separation of duties is judged on who was accountable when the request and each approval
//   were made: an owner change in between never lets one person approve twice or review their own;
// - 8.6: minting/rotating an API key for, or binding to a trust, an identity with memberships the
//   caller lacks (or a reserved one) is refused, whatever apikey.manage / identity.bind say;
// - 8.8: punctuation, emoji or combining marks alone are no purpose.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Account } from '../access/idp.ts';
import { startPostgres } from '../credentials/helpers.ts';
import type { TestPostgres } from '../credentials/helpers.ts';
import { ordersDbTarget } from './harness.ts';
import { startHumanHarness } from './human-harness.ts';
import type { HumanHarness } from './human-harness.ts';
import type { Json } from '../json.ts';

const ACCOUNTS: Account[] = [
  { sub: 'u-alice', email: 'alice@example.com', password: 'alice-pw', otp: '111111', groups: ['engineering'] },
  { sub: 'u-bob', email: 'bob@example.com', password: 'bob-pw', otp: '222222', groups: ['dba'] },
  { sub: 'u-carol', email: 'carol@example.com', password: 'carol-pw', otp: '333333', groups: ['dba', 'oncall'] },
  { sub: 'u-dave', email: 'dave@example.com', password: 'dave-pw', otp: '444444', groups: ['engineering'] },
];

const POLICIES = `
@id("anyone-requests")
permit (principal, action == Action::"access.request", resource);

@id("dba-approves-prod")
permit (principal in Team::"dba", action == Action::"access.approve", resource is Database)
when { resource.environment == "prod" };

@id("dba-approves-roles")
permit (principal in Team::"dba", action == Action::"access.approve", resource is AccessRequest);

@id("oncall-issues-orders-db")
permit (principal in Role::"orders-oncall", action == Action::"credential.issue", resource == Database::"orders-db");

@id("oncall2-issues-orders-db")
permit (principal in Role::"orders-oncall-2", action == Action::"credential.issue", resource == Database::"orders-db");

@id("oncall-admins-orders")
permit (principal in Role::"orders-oncall", action == Action::"db.admin", resource == Database::"orders");

@id("readwrite-under-grant")
permit (principal, action == Action::"credential.issue", resource == Database::"orders-db")
when { context.grants.contains("credential:orders-db:readwrite") };

@id("engineers-keys-and-bindings")
permit (principal in Team::"engineering", action in [Action::"apikey.manage", Action::"identity.bind", Action::"identity.manage", Action::"identity.membership.write"], resource is Identity);

@id("tier-admin-label")
permit (principal, action == Action::"policy.read", resource)
when { principal.labels.contains("tier=admin") };
`;

const ACCESS = `  rules:
    - name: prod-databases
      match: { resource_type: Database, environment: prod }
      approvals: 2
      max_duration: 4h
    - name: oncall-2
      match: { role: orders-oncall-2 }
      approvals: 2
      max_duration: 6h
  webhooks:
    endpoints:
      - { name: chat, url: "{{WEBHOOK_URL}}", secret_env: WEBHOOK_SECRET }`;

const id = (s: string) => encodeURIComponent(s);

describe('access review: unseen variants of issue #8 items 4–8 over HTTP', () => {
  let pgsrv: TestPostgres;
  let h: HumanHarness;
  const t: Record<string, string> = {};
  const send = async (method: string, path: string, body: unknown, token: string) => {
    const res = await fetch(h.url + path, { method, headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as Json };
  };
  const approved = async (requestId: string, ...approvers: string[]) => {
    let last: Json;
    for (const a of approvers) {
      last = await h.post(`/v1/access-requests/${requestId}/approve`, {}, a);
      assert.equal(last.status, 200, JSON.stringify(last.body));
    }
    assert.equal(last.body.status, 'approved', JSON.stringify(last.body));
    return await h.running.broker.access.grants.get(last.body.grant_id);
  };

  before(async () => {
    pgsrv = await startPostgres();
    h = await startHumanHarness({ accounts: ACCOUNTS, access: ACCESS, policies: POLICIES, extraYaml: ordersDbTarget(pgsrv).yaml, extraEnv: ordersDbTarget(pgsrv).env });
    t.admin = await h.admin();
    for (const a of ACCOUNTS) t[a.email.split('@')[0]!] = (await h.login(a.email, { otp: a.otp })).token;
    for (const [wid, owner, team] of [
      ['workload:github/acme/bob-tool', 'user:bob@example.com', 'dba'],
      ['workload:github/acme/carol-tool', 'user:carol@example.com', 'dba'],
      ['workload:github/acme/dave-tool', 'user:dave@example.com', 'engineering'],
    ] as const) {
      const r = await h.post('/v1/identities', { id: wid, kind: 'workload', boundary: 'application', environment: 'prod', owner, parents: [{ type: 'Team', id: team }] }, t.admin);
      assert.equal(r.status, 201, JSON.stringify(r.body));
    }
    t.bobTool = await h.loginCi({ repository: 'acme/bob-tool' });
    t.carolTool = await h.loginCi({ repository: 'acme/carol-tool' });
  });
  after(async () => {
    await h?.close();
    await pgsrv?.stop();
  });

  it('8.4: a role grant reaching a prod database counts only with the prod rule\'s approvals and duration; its credential never outlives it', async () => {
    const cred = (token: string, ttl = '10m') => h.post('/v1/credentials', { target: 'orders-db', permission: 'readonly', ttl, reason: 'inspect orders' }, token);
    const admin = { action: 'db.admin', resource: { type: 'Database', id: 'orders' } };

    // One approval (the role has no rule of its own): policy gives the role orders-db, the prod rule wants two.
    const one = await h.post('/v1/access-requests', { role: 'orders-oncall', duration: '30m', reason: 'pager: orders slow' }, t.alice!);
    assert.equal(one.body.required_approvals, 1, JSON.stringify(one.body));
    const g1 = await approved(one.body.id, t.bob!);
    const refused = await cred(t.alice!);
    assert.equal(refused.status, 403, `a 1-approval role grant issued a prod credential: ${JSON.stringify(refused.body)}`);
    assert.equal((await h.post('/v1/authorize', admin, t.alice!)).body.decision, 'deny', 'nor db.admin on the prod database');
    assert.equal((await h.post(`/v1/grants/${g1.id}/revoke`, { reason: 'done' }, t.alice!)).status, 200);

    // Two approvals but 5 h: within the role's 6 h rule, beyond the prod rule's 4 h.
    const long = await h.post('/v1/access-requests', { role: 'orders-oncall-2', duration: '5h', reason: 'long migration' }, t.alice!);
    assert.equal(long.status, 201, JSON.stringify(long.body));
    const g2 = await approved(long.body.id, t.bob!, t.carol!);
    assert.equal((await cred(t.alice!)).status, 403, 'a 5 h grant opens nothing the 4 h prod rule governs');
    assert.equal((await h.post(`/v1/grants/${g2.id}/revoke`, { reason: 'done' }, t.alice!)).status, 200);

    // Two approvals, 30 min: it counts, and the credential is tied to it and capped by it.
    const ok = await h.post('/v1/access-requests', { role: 'orders-oncall-2', duration: '30m', reason: 'pager: orders slow' }, t.dave!);
    const g3 = await approved(ok.body.id, t.bob!, t.carol!);
    const issued = await cred(t.dave!, '1h');
    assert.equal(issued.status, 201, JSON.stringify(issued.body));
    const lease = issued.body.lease;
    assert.equal(lease.grant_id, g3.id, 'the lease is tied to the role grant it rests on');
    assert.ok(Date.parse(lease.expires_at) <= Date.parse(g3.end_at), 'issued within the grant');
    assert.ok(Date.parse(lease.max_expires_at) <= Date.parse(g3.end_at), 'and never renewable past it');
    const renewed = await h.post(`/v1/leases/${lease.id}/renew`, { ttl: '1h' }, t.dave!);
    assert.ok(renewed.status === 200 || renewed.status === 400, JSON.stringify(renewed.body));
    assert.ok((await h.running.broker.credentials.leases.get(lease.id))!.expiresAt <= Date.parse(g3.end_at), 'a renewal never passes the grant end');
    // Ending the grant ends the lease.
    assert.equal((await h.post(`/v1/grants/${g3.id}/revoke`, { reason: 'done' }, t.dave!)).status, 200);
    assert.notEqual((await h.running.broker.credentials.leases.get(lease.id))!.status, 'active');
  });

  it('8.5: an owner change between request and approval never lets one person approve twice or approve their own request', async () => {
    // carol approves through her workload, which then passes to bob; carol herself is still the same person.
    const req = await h.post('/v1/access-requests', { credential: { target: 'orders-db', permission: 'readwrite' }, duration: '20m', reason: 'repair orders index' }, t.dave!);
    assert.equal(req.body.required_approvals, 2, JSON.stringify(req.body));
    const first = await h.post(`/v1/access-requests/${req.body.id}/approve`, {}, t.carolTool!);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal((await send('PATCH', `/v1/identities/${id('workload:github/acme/carol-tool')}`, { owner: 'user:bob@example.com' }, t.admin!)).status, 200);
    const twice = await h.post(`/v1/access-requests/${req.body.id}/approve`, {}, t.carol!);
    assert.equal(twice.status, 403, `carol counted twice: ${JSON.stringify(twice.body)}`);
    assert.equal(twice.body.why, 'already_approved_by_this_human');
    assert.equal((await h.running.broker.access.requests.get(req.body.id)).status, 'pending');

    // bob's workload asks; it is handed to dave before bob reviews: bob still reviews his own request.
    const own = await h.post('/v1/access-requests', { credential: { target: 'orders-db', permission: 'readwrite' }, duration: '20m', reason: 'bulk fix' }, t.bobTool!);
    assert.equal(own.status, 201, JSON.stringify(own.body));
    assert.equal((await send('PATCH', `/v1/identities/${id('workload:github/acme/bob-tool')}`, { owner: 'user:dave@example.com' }, t.admin!)).status, 200);
    const self = await h.post(`/v1/access-requests/${own.body.id}/approve`, {}, t.bob!);
    assert.equal(self.status, 403, `bob approved his own workload's request: ${JSON.stringify(self.body)}`);
    assert.equal(self.body.why, 'same_accountable_human');

    // Manufacturing a second "human": handing away an identity one controls, or a personal API key
    // for a fresh user account — both refused, whatever identity.membership.write / apikey.manage say.
    for (const owner of [null, 'user:bob@example.com']) {
      const away = await send('PATCH', `/v1/identities/${id('workload:github/acme/dave-tool')}`, { owner }, t.dave!);
      assert.equal(away.status, 403, `dave handed his workload to ${owner}: ${JSON.stringify(away.body)}`);
      assert.equal(away.body.code, 'self_escalation');
    }
    const alt = await h.post('/v1/identities', { id: 'user:dave-alt@example.com', kind: 'user', boundary: 'application', environment: 'prod' }, t.dave!);
    assert.equal(alt.status, 201, JSON.stringify(alt.body));
    const key = await h.post('/v1/apikeys', { identity: 'user:dave-alt@example.com', ttl: '1d' }, t.dave!);
    assert.equal(key.status, 403, `dave holds a key of another "human": ${JSON.stringify(key.body)}`);
    assert.equal(key.body.code, 'self_escalation');
    assert.equal((await h.post('/v1/apikeys', { identity: 'user:dave-alt@example.com', ttl: '1d' }, t.admin!)).status, 403, 'not even an administrator');
  });

  it('8.6: apikey.manage / identity.bind on an identity with more memberships (or a reserved one) is no way into them', async () => {
    const dave = t.dave!;
    const cases: [string, () => Promise<{ status: number; body: Json }>][] = [
      ['API key for the bootstrap admin', () => h.post('/v1/apikeys', { identity: 'user:admin', ttl: '1d' }, dave)],
      ['API key for a dba workload', () => h.post('/v1/apikeys', { identity: 'workload:github/acme/carol-tool', ttl: '1d' }, dave)],
      ['API key for a dba user', () => h.post('/v1/apikeys', { identity: 'user:carol@example.com', ttl: '1d' }, dave)],
      ['binding the admin to a trust', () => send('PUT', `/v1/identities/${id('user:admin')}/trusts`, { trusts: ['ci'] }, dave)],
      ['binding a dba workload to a trust', () => send('PUT', `/v1/identities/${id('workload:github/acme/carol-tool')}/trusts`, { trusts: ['ci'] }, dave)],
    ];
    for (const [what, run] of cases) {
      const r = await run();
      assert.equal(r.status, 403, `${what}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.code, 'self_escalation', what);
    }
    // Rotating a key of a dba workload hands over the new secret: the same rule.
    const minted = await h.post('/v1/apikeys', { identity: 'workload:github/acme/carol-tool', ttl: '1d' }, t.admin!);
    assert.equal(minted.status, 201, 'an administrator (policy.write) may');
    const rotate = await h.post(`/v1/apikeys/${minted.body.id}/rotate`, {}, dave);
    assert.equal(rotate.status, 403, JSON.stringify(rotate.body));
    assert.equal(rotate.body.code, 'self_escalation');
    // Labels are attributes policy grants on: identity.manage on oneself does not relabel oneself.
    const relabel = await send('PATCH', `/v1/identities/${id('user:dave@example.com')}`, { labels: { tier: 'admin' } }, dave);
    assert.equal(relabel.status, 403, JSON.stringify(relabel.body));
    assert.equal(relabel.body.code, 'self_escalation');
    assert.equal((await h.get('/v1/policies', dave)).status, 403, 'still no tier=admin');
    assert.equal((await send('PATCH', `/v1/identities/${id('workload:github/acme/dave-tool')}`, { labels: { team: 'eng' } }, dave)).status, 200, 'labels of another identity: policy decides');
    // Where dave holds every membership of the identity, policy decides as before.
    const mine = await h.post('/v1/apikeys', { identity: 'workload:github/acme/dave-tool', ttl: '1d' }, dave);
    assert.equal(mine.status, 201, JSON.stringify(mine.body));
  });

  it('8.8: punctuation, emoji, combining marks or direction marks alone are no purpose', async () => {
    const marks = ['-', '...', '🔥', '\u0301\u0301', '\u200f\u202e', '\u{1F44D}\u{1F3FD}', '#', '\u3000\u0301'];
    for (const blank of marks) {
      const req = await h.post('/v1/access-requests', { role: 'orders-oncall', duration: '30m', reason: blank }, t.alice!);
      assert.equal(req.status, 400, `request: ${JSON.stringify(blank)}`);
      assert.equal(req.body.field, 'reason');
      const cred = await h.post('/v1/credentials', { target: 'orders-db', permission: 'readonly', ttl: '5m', reason: blank }, t.alice!);
      assert.equal(cred.status, 400, `credential: ${JSON.stringify(blank)}`);
      assert.equal(cred.body.field, 'reason');
    }
    const fine = await h.post('/v1/access-requests', { role: 'orders-oncall', duration: '30m', reason: 'INC-٣' }, t.alice!);
    assert.equal(fine.status, 201, 'a reason with a letter or digit in any script is one');
  });

  // Last: it suspends alice and carol (their sessions end).
  it('8.4/8.5: a requester suspended while pending is not approved; suspending ends the grants one holds', async () => {
    const pending = await h.post('/v1/access-requests', { role: 'orders-oncall', duration: '30m', reason: 'pager: orders slow' }, t.alice!);
    assert.equal(pending.status, 201, JSON.stringify(pending.body));
    const held = await h.post('/v1/access-requests', { role: 'orders-oncall', duration: '30m', reason: 'pager: orders slow' }, t.carol!);
    const grant = await approved(held.body.id, t.bob!);
    for (const who of ['user:alice@example.com', 'user:carol@example.com']) {
      assert.equal((await h.post(`/v1/identities/${id(who)}/suspend`, { reason: 'laptop stolen' }, t.admin!)).status, 200);
    }
    const late = await h.post(`/v1/access-requests/${pending.body.id}/approve`, {}, t.bob!);
    assert.equal(late.status, 409, `a suspended requester's request was approved: ${JSON.stringify(late.body)}`);
    assert.equal((await h.running.broker.access.requests.get(pending.body.id)).grant_id, null);
    assert.equal((await h.running.broker.access.grants.get(grant.id)).status, 'ended', 'suspending ends the grants held');
    assert.equal((await h.post(`/v1/identities/${id('user:carol@example.com')}/activate`, {}, t.admin!)).status, 200);
    assert.deepEqual((await h.running.broker.access.activeGrants('user:carol@example.com')).grants, [], 'and reactivation does not bring them back');
  });
});
