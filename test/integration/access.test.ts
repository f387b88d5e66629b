// Privileged access end to end over HTTP, against the real broker, a real OpenID provider and a
// real PostgreSQL: SSO login, step-up, request → two approvals → grant → credential → revoked
// (the live connection ends); break-glass with its cap, signed webhook, named revoker and review.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Browser } from '../access/idp.ts';
import type { Account } from '../access/idp.ts';
import { connectAs, startPostgres } from '../credentials/helpers.ts';
import type { TestPostgres } from '../credentials/helpers.ts';
import { ordersDbTarget } from './harness.ts';
import { parseConfig } from '../../src/config/load.ts';
import { InvalidInput } from '../../src/common/errors.ts';
import { REDIRECT, startHumanHarness } from './human-harness.ts';
import type { HumanHarness } from './human-harness.ts';
import { conformance } from '../server/openapi-conformance.ts';
import { within } from '../within.ts';

const ACCOUNTS: Account[] = [
  { sub: 'u-alice', email: 'alice@example.com', password: 'alice-pw', otp: '111111', groups: ['engineering'] },
  { sub: 'u-bob', email: 'bob@example.com', password: 'bob-pw', otp: '222222', groups: ['dba'] },
  { sub: 'u-carol', email: 'carol@example.com', password: 'carol-pw', otp: '333333', groups: ['dba', 'oncall'] },
  { sub: 'u-dave', email: 'dave@example.com', password: 'dave-pw', otp: '444444', groups: ['engineering'] },
];

const POLICIES = `
@id("engineers-read-orders")
permit (principal in Team::"engineering", action == Action::"db.select", resource == Database::"orders");

@id("prod-reads-need-recent-mfa")
@stepUp("mfa")
@maxAuthAge("300")
forbid (principal is User, action == Action::"db.select", resource)
when { resource has environment && resource.environment == "prod" }
unless { context.authn.mfa && context.authn.authAgeSeconds <= 300 };

@id("users-request-access")
permit (principal is User, action == Action::"access.request", resource);

@id("dba-approves-prod")
permit (principal in Team::"dba", action == Action::"access.approve", resource is Database)
when { resource.environment == "prod" };

@id("readwrite-under-grant")
permit (principal is User, action == Action::"credential.issue", resource == Database::"orders-db")
when { context.grants.contains("credential:orders-db:readwrite") && context.credential.permission == "readwrite" };

@id("oncall-break-glass")
permit (principal in Team::"oncall", action == Action::"breakglass.use", resource == Database::"orders");

@id("dba-approves-roles")
permit (principal in Team::"dba", action == Action::"access.approve", resource == AccessRequest::"role:orders-writer");

@id("role-orders-writer")
permit (principal in Role::"orders-writer", action == Action::"db.insert", resource in Database::"orders");

@id("break-glass-admin")
permit (principal, action == Action::"db.admin", resource == Database::"orders")
when { context.breakGlass };
`;

const ACCESS = `  rules:
    - name: prod
      match: { environment: prod }
      approvals: 2
      max_duration: 4h
      reviewers: [user:bob@example.com, user:carol@example.com]
  break_glass:
    max_duration: 30m
    revokers: [user:bob@example.com]
  webhooks:
    backoff_base: 50ms
    timeout: 2s
    endpoints:
      - { name: chat, url: "{{WEBHOOK_URL}}", secret_env: WEBHOOK_SECRET }`;

const ORDERS = { type: 'Database', id: 'orders' };

describe('privileged access over HTTP', () => {
  let pgsrv: TestPostgres;
  let h: HumanHarness;
  const tokens: Record<string, string> = {};

  before(async () => {
    pgsrv = await startPostgres();
    h = await startHumanHarness({
      accounts: ACCOUNTS,
      access: ACCESS,
      policies: POLICIES,
      extraYaml: ordersDbTarget(pgsrv).yaml,
      extraEnv: ordersDbTarget(pgsrv).env,
    });
  });
  after(async () => {
    await h?.close();
    await pgsrv?.stop();
  });

  it('SSO login, step-up required for a recent-MFA action, step-up, allowed', async () => {
    const browser = new Browser();
    const first = await h.login('alice@example.com', { browser });
    assert.equal(first.identity.id, 'user:alice@example.com');
    assert.equal(first.identity.kind, 'user');
    assert.deepEqual(first.identity.parents, [{ type: 'Team', id: 'engineering' }], 'IdP groups become teams');
    assert.equal(first.url.searchParams.get('code_challenge_method'), 'S256');

    const denied = await h.post('/v1/authorize', { action: 'db.select', resource: ORDERS }, first.token);
    assert.equal(denied.status, 401, JSON.stringify(denied.body));
    assert.equal(denied.body.code, 'step_up_required');
    assert.deepEqual(denied.body.required, { mfa: true, max_age: 300 });
    assert.match(denied.body.decision_id, /^[0-9a-f-]{36}$/);
    assert.match(denied.headers.get('www-authenticate') ?? '', /insufficient_user_authentication.*max_age=300/);

    // A step-up login without the second factor is refused (and audited); with it, allowed.
    await assert.rejects(h.login('alice@example.com', { browser, stepUp: { mfa: true, max_age: 300 } }), (e: { response?: { status: number } }) => e.response?.status === 401);
    const stepped = await h.login('alice@example.com', { browser, otp: '111111', stepUp: { mfa: true, max_age: 300 } });
    assert.equal(stepped.url.searchParams.get('prompt'), 'login');
    assert.equal(stepped.url.searchParams.get('max_age'), '300');
    const allowed = await h.post('/v1/authorize', { action: 'db.select', resource: ORDERS }, stepped.token);
    assert.equal(allowed.status, 200);
    assert.equal(allowed.body.decision, 'allow');
    tokens.alice = stepped.token;

    await h.running.broker.audit.flush();
    const authn = await h.running.broker.audit.query({ stream: 'authn', type: 'authn.failure' });
    assert.ok(authn.some((e) => e.payload.reason === 'step_up_not_satisfied'));
  });

  it('request → not self-approvable → two approvals → grant → PostgreSQL credential → grant revoked ends the connection', async () => {
    const alice = tokens.alice!;
    const bob = (await h.login('bob@example.com', { otp: '222222' })).token;
    const carol = (await h.login('carol@example.com', { otp: '333333' })).token;
    const dave = (await h.login('dave@example.com')).token;
    Object.assign(tokens, { bob, carol, dave });

    const cred = { target: 'orders-db', permission: 'readwrite', ttl: '10m', reason: 'repair orders index' };
    assert.equal((await h.post('/v1/credentials', cred, alice)).status, 403, 'no grant, no credential');

    const created = await h.post('/v1/access-requests', { credential: { target: 'orders-db', permission: 'readwrite', resource: 'Database::"orders-db"' }, duration: '1h', reason: 'repair orders index', ticket: 'INC-42' }, alice);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.id as string;
    assert.equal(created.body.required_approvals, 2);
    assert.match(created.body.status_line, /^waiting for 2 approvals: bob@example\.com \(pending\), carol@example\.com \(pending\) — expires in 1 h$/);
    const hook = await h.receiver.waitFor('request.created');
    assert.equal(hook.body.data.request.id, id);
    assert.equal(hook.valid, true);

    const self = await h.post(`/v1/access-requests/${id}/approve`, {}, alice);
    assert.equal(self.status, 403);
    assert.equal(self.body.code, 'self_approval');
    // dave may neither approve nor read alice's request (no access.read, no approver by policy):
    // the refusal is the opaque 404 of an unknown id (docs/access.md "Who reads what").
    const notDba = await h.post(`/v1/access-requests/${id}/approve`, {}, dave);
    assert.equal(notDba.status, 404);
    assert.equal(notDba.body.code, 'not_found');

    const one = await h.post(`/v1/access-requests/${id}/approve`, { comment: 'ok for INC-42' }, bob);
    assert.equal(one.status, 200, JSON.stringify(one.body));
    assert.equal(one.body.status, 'pending');
    assert.match(one.body.status_line, /waiting for 2 approvals \(1 more needed\): bob@example\.com \(approved\), carol@example\.com \(pending\)/);
    const two = await h.post(`/v1/access-requests/${id}/approve`, {}, carol);
    assert.equal(two.body.status, 'approved');
    const grantId = two.body.grant_id as string;
    assert.ok(grantId);
    assert.match(two.body.status_line, /^approved by bob@example\.com, carol@example\.com; grant active — ends in 1 h$/);

    const shown = await h.get(`/v1/access-requests/${id}`, alice);
    assert.equal(shown.body.grant.id, grantId);
    const mine = await h.get('/v1/grants?active=true', alice);
    assert.deepEqual(mine.body.grants.map((g: { id: string }) => g.id), [grantId]);
    // The request and grant views are what /openapi.json declares (the SDK's types come from it).
    const matches = conformance((await h.get('/openapi.json')).body);
    matches(shown, '/v1/access-requests/{id}', 'get');
    matches(two, '/v1/access-requests/{id}/approve', 'post');
    matches(mine, '/v1/grants', 'get');

    // The credential is issued under the grant (found automatically), and works.
    const issued = await h.post('/v1/credentials', cred, alice);
    assert.equal(issued.status, 201, JSON.stringify(issued.body));
    assert.equal(issued.body.lease.grant_id, grantId);
    const client = await connectAs(pgsrv, issued.body.credential.user, issued.body.credential.password);
    assert.deepEqual((await client.query('SELECT 1 AS one')).rows, [{ one: 1 }]);
    client.on('error', () => {});
    const ended = new Promise<void>((resolve) => client.on('end', () => resolve()));

    // Someone else revokes the grant: the live connection ends, the lease is revoked, no new credential.
    const revoked = await h.post(`/v1/grants/${grantId}/revoke`, { reason: 'index repaired' }, bob);
    assert.equal(revoked.status, 200, JSON.stringify(revoked.body));
    assert.equal(revoked.body.grant.status, 'ended');
    // A hang detector: an unterminated idle session stays open for good.
    await within(ended, 30_000, 'the connection ends after the grant was revoked');
    const leases = await h.get('/v1/leases?mine=true', alice);
    assert.equal(leases.body.leases.find((l: { id: string }) => l.id === issued.body.lease.id).status, 'revoked');
    assert.equal((await h.post('/v1/credentials', cred, alice)).status, 403);
    await h.receiver.waitFor('grant.ended');
  });

  it('break-glass: eligibility by policy, capped, signed webhook, named revoker, review by someone else', async () => {
    const { alice, bob, carol, dave } = tokens as Record<string, string>;
    const notEligible = await h.post('/v1/break-glass', { target: 'Database::"orders"', reason: 'curious' }, alice);
    assert.equal(notEligible.status, 403);
    assert.equal(notEligible.body.code, 'break_glass_not_eligible');
    const tooLong = await h.post('/v1/break-glass', { target: 'Database::"orders"', reason: 'orders down, INC-7', duration: '2h' }, carol);
    assert.equal(tooLong.status, 400);
    assert.equal(tooLong.body.field, 'duration');
    assert.equal((await h.post('/v1/break-glass', { target: 'Database::"orders"' }, carol)).status, 400, 'reason is mandatory');

    const before = await h.post('/v1/authorize', { action: 'db.admin', resource: ORDERS }, carol);
    assert.equal(before.body.decision, 'deny');
    const started = await h.post('/v1/break-glass', { target: 'Database::"orders"', reason: 'orders down, INC-7' }, carol);
    assert.equal(started.status, 201, JSON.stringify(started.body));
    const g = started.body.grant;
    assert.equal(Date.parse(g.end_at) - Date.parse(g.start_at), 30 * 60_000, 'capped at the configured maximum');
    assert.deepEqual(g.revokers, ['user:bob@example.com']);
    assert.equal(started.body.review.status, 'open');
    conformance((await h.get('/openapi.json')).body)(started, '/v1/break-glass', 'post');

    // Revokers are told at once, with a signature the receiver verified.
    const hook = await h.receiver.waitFor('breakglass.started');
    assert.equal(hook.valid, true);
    assert.match(hook.delivery, /^dlv_/);
    assert.deepEqual(hook.body.data.revokers, ['user:bob@example.com']);
    assert.equal(hook.body.data.reason, 'orders down, INC-7');

    // Allowed without approval, and tagged in the authz stream.
    const allowed = await h.post('/v1/authorize', { action: 'db.admin', resource: ORDERS }, carol);
    assert.equal(allowed.body.decision, 'allow');
    await h.running.broker.audit.flush();
    const tagged = (await h.running.broker.audit.query({ stream: 'authz' })).find((e) => e.payload.decision_id === allowed.body.decision_id);
    assert.equal(tagged?.payload.breakGlass, true);

    // dave is no revoker and may not see carol's break-glass: an unknown id to him.
    const notRevoker = await h.post(`/v1/break-glass/${g.id}/end`, { reason: 'nope' }, dave);
    assert.equal(notRevoker.status, 404);
    assert.equal(notRevoker.body.code, 'not_found');
    const ended = await h.post(`/v1/break-glass/${g.id}/end`, { reason: 'incident over' }, bob);
    assert.equal(ended.status, 200, JSON.stringify(ended.body));
    assert.equal(ended.body.grant.status, 'ended');
    assert.equal((await h.post('/v1/authorize', { action: 'db.admin', resource: ORDERS }, carol)).body.decision, 'deny');

    // The review item stays open until someone other than the user records one.
    const open = await h.get('/v1/break-glass/reviews?status=open', bob);
    assert.ok(open.body.reviews.some((r: { grant_id: string }) => r.grant_id === g.id));
    const own = await h.post(`/v1/break-glass/${g.id}/review`, { summary: 'all fine' }, carol);
    assert.equal(own.status, 403);
    assert.equal(own.body.code, 'review_not_allowed');
    const reviewed = await h.post(`/v1/break-glass/${g.id}/review`, { summary: 'index corruption; fixed; runbook updated' }, bob);
    assert.equal(reviewed.status, 200, JSON.stringify(reviewed.body));
    assert.equal(reviewed.body.review.status, 'closed');
    const still = await h.get('/v1/break-glass/reviews?status=open', bob);
    assert.ok(!still.body.reviews.some((r: { grant_id: string }) => r.grant_id === g.id));

    // Deliveries are visible to administrators, never to ordinary users.
    await h.receiver.waitFor('breakglass.reviewed');
    assert.equal((await h.get('/v1/webhooks/deliveries', dave)).status, 403);
    const deliveries = await h.get('/v1/webhooks/deliveries?status=delivered', await h.admin());
    assert.equal(deliveries.status, 200, JSON.stringify(deliveries.body));
    assert.ok(deliveries.body.deliveries.some((d: { event_type: string }) => d.event_type === 'breakglass.started'));
  });

  it('device-flow login over HTTP; a session-bound grant ends at logout', async () => {
    const started = await h.post('/v1/auth/device', {}, undefined);
    assert.equal(started.status, 200, JSON.stringify(started.body));
    assert.ok(!JSON.stringify(started.body).includes('device_code'), 'the device code stays in the broker');
    assert.equal((await h.post('/v1/auth/device/poll', { handle: started.body.handle })).body.status, 'pending');
    await new Browser().approveDevice(started.body.verification_uri_complete, { email: 'dave@example.com', password: 'dave-pw' });
    h.sync();
    const done = await h.post('/v1/auth/device/poll', { handle: started.body.handle });
    assert.equal(done.body.status, 'complete', JSON.stringify(done.body));
    assert.equal(done.body.identity.id, 'user:dave@example.com');
    const dave = done.body.session_token as string;

    const payments = { action: 'db.insert', resource: { type: 'Table', id: 'orders.payments' } };
    assert.equal((await h.post('/v1/authorize', payments, dave)).body.decision, 'deny');
    const req = await h.post('/v1/access-requests', { role: 'orders-writer', duration: '30m', reason: 'backfill payments', session_bound: true }, dave);
    assert.equal(req.status, 201, JSON.stringify(req.body));
    assert.equal(req.body.required_approvals, 1);
    const ok = await h.post(`/v1/access-requests/${req.body.id}/approve`, {}, tokens.bob!);
    assert.equal(ok.body.status, 'approved');
    // The role is a temporary parent, but a 1-approval grant never opens a prod table that the
    // 2-approval `prod` rule governs (issue #8 item 4: the strictest rule matching what it reaches).
    assert.equal((await h.post('/v1/authorize', payments, dave)).body.decision, 'deny', 'a 1-approval role grant does not count on prod');

    const jti = JSON.parse(Buffer.from(dave.split('.')[1]!, 'base64url').toString()).jti as string;
    assert.equal((await h.post('/v1/sessions/revoke', { jti }, dave)).status, 200);
    const grant = (await h.running.broker.access.listGrants({ identityId: 'user:dave@example.com' })).find((g) => g.grant.id === ok.body.grant_id)!;
    assert.equal(grant.grant.status, 'ended');
  });

  // Four CLI runs, each with its own 60 s hang detector: more than the suite's 120 s per test.
  it('CLI: login --sso through the loopback redirect, a step-up hint, a request with its status sentence', { timeout: 300_000 }, async () => {
    const home = mkdtempSync(join(tmpdir(), 'pcx-cli-home-'));
    const port = new URL(REDIRECT).port; // the provider only knows this redirect URI
    /** Runs the CLI; when it prints the sign-in URL, acts as the browser and lands on its listener. */
    const cli = (args: string[], account?: Account) =>
      new Promise<{ code: number; out: string; err: string }>((resolve, reject) => {
        const p = spawn(process.execPath, [join(import.meta.dirname, '..', '..', 'bin', 'portcullis.js'), ...args], { env: { ...process.env, PORTCULLIS_ADDR: h.url, PORTCULLIS_HOME: home, CI: '1' } });
        // A hang detector, not a speed check: each run starts a fresh Node that loads the CLI
        // (seconds of CPU on a busy 2-core machine, where wall time is many times that).
        const timer = setTimeout(() => (p.kill(), reject(new Error(`portcullis ${args.join(' ')} hung (no exit within 60 s)`))), 60_000);
        let out = '';
        let err = '';
        let driven = false;
        p.stdout.on('data', (d) => (out += d));
        p.stderr.on('data', (d) => {
          err += d;
          const url = /(http:\/\/127\.0\.0\.1:\d+\/auth\?\S+)/.exec(err)?.[1];
          if (!account || driven || !url || !err.includes('Waiting for the browser')) return;
          driven = true;
          new Browser()
            .authorize(url, REDIRECT, { email: account.email, password: account.password })
            .then((back) => (h.sync(), fetch(`${REDIRECT}?${back}`)))
            .catch(reject);
        });
        p.on('close', (code) => (clearTimeout(timer), resolve({ code: code ?? -1, out, err })));
      });
    try {
      const login = await cli(['login', '--sso', '--redirect-port', port], ACCOUNTS[3]);
      assert.equal(login.code, 0, login.err);
      assert.match(login.out, /^logged in as user:dave@example\.com until /);
      const denied = await cli(['authorize', 'db.select', 'Database::orders']);
      assert.equal(denied.code, 4, 'not authenticated enough');
      assert.match(denied.err, /multi-factor authentication and a login within the last 300 s — run `portcullis login --sso --step-up --max-age 300`/);
      const req = await cli(['request', '--resource', 'Database::"orders"', '--action', 'db.admin', '--for', '1h', '--reason', 'vacuum']);
      assert.equal(req.code, 0, req.err);
      assert.match(req.out, /^req_\S+ {2}db\.admin on Database::"orders"\n {2}waiting for 2 approvals: bob@example\.com \(pending\), carol@example\.com \(pending\) — expires in 1 h\n$/);
      const self = await cli(['requests', 'approve', req.out.split(' ')[0]!]);
      assert.equal(self.code, 3);
      assert.match(self.err, /self_approval/);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });

  it('config: access and oidc-human errors name the field; unknown keys are refused; the API is in OpenAPI', async () => {
    const field = (yaml: string, env: NodeJS.ProcessEnv = {}) => {
      try {
        parseConfig(yaml, '/tmp', env);
      } catch (e) {
        return (e as InvalidInput).extra.field;
      }
      return 'accepted';
    };
    const sso = (extra = '', issuer = 'https://id.example.com') =>
      `trusts:\n  - { name: sso, kind: oidc-human, issuer: ${issuer}, client_id: c, redirect_uris: ['http://127.0.0.1/callback']${extra} }`;
    assert.equal(field(sso()), 'accepted');
    assert.equal(field(sso(', client_secret: x')), 'trusts[0].client_secret');
    assert.equal(field(sso('', 'http://id.example.com')), 'trusts[0].issuer');
    assert.equal(field(sso(', colour: red')), 'trusts[0].colour');
    assert.equal(field(sso(', boundary: nowhere')), 'trusts[0].boundary');
    assert.equal(field('access: { rules: [{ name: r, match: {}, approvals: 2 }] }'), 'access.rules[0].match');
    assert.equal(field('access: { break_glass: { max_duration: 9h } }'), 'access.break_glass.max_duration');
    assert.equal(field('access: { webhooks: { endpoints: [{ name: a, url: https://h.example, secret_env: NOPE }] } }'), 'access.webhooks.endpoints[0].secret_env');
    assert.equal(field('access: { webhooks: { endpoints: [{ name: a, url: https://h.example, secret_env: S }] } }', { S: 'x'.repeat(20) }), 'accepted');
    assert.equal(field('access: { surprise: true }'), 'access.surprise');

    const api = await h.get('/openapi.json');
    for (const path of ['/v1/access-requests', '/v1/access-requests/{id}/approve', '/v1/grants/{id}/revoke', '/v1/break-glass', '/v1/auth/login', '/v1/auth/callback', '/v1/webhooks/deliveries']) {
      assert.ok(api.body.paths[path], `${path} in OpenAPI`);
    }
    const unknown = await h.post('/v1/access-requests', { role: 'x', duration: '1h', reason: 'r', colour: 'red' }, tokens.alice!);
    assert.equal(unknown.status, 400);
    assert.equal(unknown.body.field, 'body.colour');
  });

  // Last: it moves the broker's clock past the provider's token lifetimes.
  it('a grant ends on time: out of decisions at its end, then ended by the sweeper', async () => {
    const alice = tokens.alice!;
    const req = await h.post('/v1/access-requests', { role: 'orders-writer', duration: '30m', reason: 'one more backfill' }, alice);
    await h.post(`/v1/access-requests/${req.body.id}/approve`, {}, tokens.bob!);
    const broker = h.running.broker;
    const grantId = (await broker.access.getRequest(req.body.id)).request.grant_id!;
    assert.deepEqual((await broker.access.activeGrants('user:alice@example.com')).grants, ['role:orders-writer']);
    h.clock.advance(31 * 60_000);
    assert.deepEqual((await broker.access.activeGrants('user:alice@example.com')).grants, [], 'past its end before any sweep');
    const swept = await broker.access.sweep();
    assert.ok(swept.endedGrants.includes(grantId));
    assert.equal((await broker.access.grants.get(grantId)).status, 'ended');
  });
});
