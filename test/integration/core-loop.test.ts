// The core loop over real HTTP on loopback with a real JWKS endpoint: prove → decide → record.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness } from './harness.ts';
import type { Harness } from './harness.ts';

describe('core loop: prove, decide, record', () => {
  let h: Harness;
  let session: string;
  before(async () => {
    h = await startHarness();
    session = await h.loginCi();
  });
  after(async () => h.close());

  const decide = (token: string, action: string, resource: { type: string; id: string }, context: Record<string, unknown> = {}) =>
    h.post('/v1/authorize', { action, resource, context }, token);

  it('a workload authenticates with an OIDC token and gets a session token carrying no permissions', async () => {
    const r = await h.post('/v1/auth/token', { token: await h.ciToken() });
    assert.equal(r.status, 200);
    assert.equal(r.body.identity.id, 'workload:github/acme/api');
    assert.equal(r.body.identity.owner, 'team:payments', 'the declared identity keeps its owner');
    const [header, payload] = r.body.session_token.split('.').slice(0, 2).map((p: string) => JSON.parse(Buffer.from(p, 'base64url').toString()));
    assert.equal(header.alg, 'EdDSA');
    assert.equal(payload.sub, 'workload:github/acme/api');
    assert.equal(payload.authn.method, 'oidc');
    assert.ok(payload.exp - payload.iat <= 15 * 60);
    for (const k of ['scope', 'roles', 'permissions', 'groups']) assert.equal(payload[k], undefined);
    assert.ok(h.jwksHits() >= 1, 'the JWKS was fetched from the real endpoint');
  });

  it('decisions depend on purpose', async () => {
    const allow = await decide(session, 'db.select', { type: 'Database', id: 'orders' }, { purpose: { reason: 'monthly report' } });
    assert.equal(allow.status, 200);
    assert.equal(allow.body.decision, 'allow');
    assert.deepEqual(allow.body.reasons, ['api-reads-orders-with-purpose']);
    assert.match(allow.body.decision_id, /^[0-9a-f-]{36}$/);
    assert.equal(allow.body.policy_version, 1);
    const deny = await decide(session, 'db.select', { type: 'Database', id: 'orders' });
    assert.equal(deny.body.decision, 'deny');
    assert.deepEqual(deny.body.reasons, []);
  });

  it('decisions depend on time, decided at request time rather than at login', async () => {
    const body = { purpose: { ticket: 'OPS-1' } };
    const start = h.clock.now();
    try {
      h.clock.set(Date.parse('2026-03-02T21:55:00Z'));
      const evening = await h.loginCi();
      assert.equal((await decide(evening, 'db.insert', { type: 'Table', id: 'orders.payments' }, body)).body.decision, 'allow');
      h.clock.set(Date.parse('2026-03-02T22:01:00Z')); // same session, six minutes later
      const late = await decide(evening, 'db.insert', { type: 'Table', id: 'orders.payments' }, body);
      assert.equal(late.status, 200);
      assert.equal(late.body.decision, 'deny');
    } finally {
      h.clock.set(start);
    }
  });

  it('the boundary guard denies crossing boundaries whatever the policies permit', async () => {
    const r = await decide(session, 'db.select', { type: 'Database', id: 'analytics' }, { purpose: { reason: 'x' } });
    assert.equal(r.body.decision, 'deny');
    assert.deepEqual(r.body.reasons, ['system:boundary-guard']);
    const unknown = await decide(session, 'db.select', { type: 'Database', id: 'not-declared' }, { purpose: { reason: 'x' } });
    assert.equal(unknown.body.decision, 'deny', 'an undeclared resource has no boundary: the guard fails closed');
  });

  it('a declared bridge lets an identity cross, and the decision names the bridge', async () => {
    const admin = await h.admin();
    const created = await h.post('/v1/identities', { id: 'agent:support-bot', kind: 'agent', boundary: 'ai-platform', environment: 'prod', owner: 'team:support' }, admin);
    assert.equal(created.status, 201);
    const key = await h.post('/v1/apikeys', { identity: 'agent:support-bot', ttl: '1d' }, admin);
    assert.equal(key.status, 201);
    const agent = (await h.post('/v1/auth/token', { api_key: key.body.api_key })).body.session_token;
    const r = await decide(agent, 'db.select', { type: 'Database', id: 'orders' });
    assert.equal(r.body.decision, 'allow');
    assert.equal(r.body.bridge.from, 'ai-platform');
    const notBridged = await decide(agent, 'db.admin', { type: 'Database', id: 'orders' });
    assert.deepEqual(notBridged.body.reasons, ['system:boundary-guard']);
  });

  it('decisions depend on the authentication method: an API key cannot write', async () => {
    const admin = await h.admin();
    const key = await h.post('/v1/apikeys', { identity: 'workload:github/acme/api', ttl: '7d', description: 'legacy cron' }, admin);
    assert.equal(key.status, 201);
    assert.match(key.body.api_key, /^pcx_/);
    const login = await h.post('/v1/auth/token', { api_key: key.body.api_key });
    assert.equal(login.status, 200);
    const viaKey = login.body.session_token;
    const w = await decide(viaKey, 'db.insert', { type: 'Database', id: 'orders' }, { purpose: { ticket: 'OPS-2' } });
    assert.equal(w.body.decision, 'deny');
    assert.deepEqual(w.body.reasons, ['no-api-key-writes']);
    const oidc = await decide(session, 'db.insert', { type: 'Database', id: 'orders' }, { purpose: { ticket: 'OPS-2' } });
    assert.equal(oidc.body.decision, 'allow');
    const listed = await h.get('/v1/apikeys?identity=workload%3Agithub%2Facme%2Fapi', admin);
    assert.equal(listed.status, 200);
    assert.ok(!JSON.stringify(listed.body).includes(key.body.api_key), 'listings never show the secret');
  });

  it('callers cannot supply server-owned context', async () => {
    const r = await decide(session, 'db.select', { type: 'Database', id: 'orders' }, { authn: { method: 'oidc', mfa: true } });
    assert.equal(r.status, 400);
    assert.equal(r.body.code, 'invalid_input');
    assert.equal(r.body.field, 'context.authn');
  });

  it('batch decisions', async () => {
    const r = await h.post(
      '/v1/authorize/batch',
      {
        requests: [
          { action: 'db.select', resource: { type: 'Database', id: 'orders' }, context: { purpose: { reason: 'x' } } },
          { action: 'db.select', resource: { type: 'Database', id: 'analytics' } },
        ],
      },
      session,
    );
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.decisions.map((d: { decision: string }) => d.decision), ['allow', 'deny']);
  });

  it('administrative calls are Cedar decisions: a workload may not manage identities', async () => {
    const r = await h.get('/v1/identities', session);
    assert.equal(r.status, 403);
    assert.equal(r.body.code, 'forbidden');
    assert.match(r.body.decision_id, /^[0-9a-f-]{36}$/);
  });

  it('suspending an identity ends its live sessions and refuses new logins', async () => {
    const admin = await h.admin();
    const mine = await h.loginCi({ repository: 'acme/worker' });
    assert.equal((await decide(mine, 'db.select', { type: 'Database', id: 'orders' })).status, 200);
    const s = await h.post(`/v1/identities/${encodeURIComponent('workload:github/acme/worker')}/suspend`, { reason: 'compromised runner' }, admin);
    assert.equal(s.status, 200);
    assert.equal(s.body.status, 'suspended');
    const after = await decide(mine, 'db.select', { type: 'Database', id: 'orders' });
    assert.equal(after.status, 401);
    assert.equal(after.body.detail, 'authentication failed', 'the caller learns nothing more');
    const relogin = await h.post('/v1/auth/token', { token: await h.ciToken({ repository: 'acme/worker' }) });
    assert.equal(relogin.status, 401);
    await h.running.broker.audit.flush();
    const last = (await h.running.broker.audit.query({ stream: 'authn', type: 'authn.failure', limit: 1, order: 'desc' } as never))[0]!;
    assert.equal(last.payload.reason, 'identity_suspended');
  });

  it('session tokens can be revoked by jti', async () => {
    const mine = await h.loginCi();
    const jti = JSON.parse(Buffer.from(mine.split('.')[1]!, 'base64url').toString()).jti;
    assert.equal((await h.post('/v1/sessions/revoke', { jti }, mine)).status, 200);
    assert.equal((await decide(mine, 'db.select', { type: 'Database', id: 'orders' })).status, 401);
  });

  it('first login through a trust registers the identity with the trust defaults and last_authenticated_at', async () => {
    const admin = await h.admin();
    await h.loginCi({ repository: 'acme/new-service' });
    const r = await h.get(`/v1/identities/${encodeURIComponent('workload:github/acme/new-service')}`, admin);
    assert.equal(r.status, 200);
    assert.equal(r.body.source, 'trust');
    assert.equal(r.body.trust, 'ci');
    assert.equal(r.body.owner, 'team:platform');
    assert.equal(r.body.boundary, 'application');
    assert.ok(r.body.last_authenticated_at);
  });

  it('policies: a bad policy is rejected with Cedar diagnostics and the active set stays; a good one becomes a new version', async () => {
    const admin = await h.admin();
    const before = (await h.get('/v1/policies', admin)).body.version;
    const bad = await h.post('/v1/authorize', {}, admin); // sanity: schema errors are 400
    assert.equal(bad.status, 400);
    const rejected = await fetch(`${h.url}/v1/policies`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${admin}` },
      body: JSON.stringify({ files: [{ name: 'x.cedar', text: 'permit(principal, action == Action::"db.select", resource) when { resource.nonexistent == 1 };' }], reason: 'test' }),
    });
    assert.equal(rejected.status, 400);
    const problem = (await rejected.json()) as { code: string; diagnostics: { message: string }[] };
    assert.equal(problem.code, 'policy_invalid');
    assert.ok(problem.diagnostics.length > 0);
    assert.equal((await h.get('/v1/policies', admin)).body.version, before);
    const ok = await fetch(`${h.url}/v1/policies`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${admin}` },
      body: JSON.stringify({ files: [{ name: 'extra.cedar', text: '@id("extra") permit(principal == Workload::"workload:github/acme/api", action == Action::"db.select", resource == Database::"orders");' }], reason: 'allow selects without purpose' }),
    });
    assert.equal(ok.status, 200);
    assert.equal(((await ok.json()) as { version: number }).version, before + 1);
    const d = await decide(session, 'db.select', { type: 'Database', id: 'orders' });
    assert.deepEqual(d.body.reasons, ['extra']);
    assert.equal(d.body.policy_version, before + 1);
  });

  it('serves OpenAPI, JWKS, health, readiness and metrics', async () => {
    const openapi = await h.get('/openapi.json');
    assert.equal(openapi.status, 200);
    assert.ok(openapi.body.paths['/v1/authorize']);
    const jwks = await h.get('/.well-known/jwks.json');
    assert.ok(jwks.body.keys.length >= 1);
    assert.ok(jwks.body.keys.every((k: Record<string, unknown>) => k.d === undefined), 'no private parts');
    assert.equal((await h.get('/healthz')).status, 200);
    assert.equal((await h.get('/readyz')).body.ready, true);
    const metrics = await fetch(`${h.url}/metrics`).then((r) => r.text());
    assert.match(metrics, /portcullis_decisions_total\{decision="allow",engine="compiled"\} \d+/);
  });

  it('RFC 8693 token exchange at /oauth2/token', async () => {
    const form = new URLSearchParams({
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: await h.ciToken(),
      subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
    });
    const r = await fetch(`${h.url}/oauth2/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form });
    assert.equal(r.status, 200);
    const body = (await r.json()) as { access_token: string; issued_token_type: string; token_type: string };
    assert.equal(body.token_type, 'Bearer');
    assert.equal((await decide(body.access_token, 'db.select', { type: 'Database', id: 'orders' }, { purpose: { reason: 'x' } })).body.decision, 'allow');
    const bad = await fetch(`${h.url}/oauth2/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=password' });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { error: string }).error, 'unsupported_grant_type');
  });

  it('key rotation: the new key signs, the old one keeps verifying live tokens until they expire', async () => {
    const admin = await h.admin();
    const before = await h.loginCi();
    const oldKid = JSON.parse(Buffer.from(before.split('.')[0]!, 'base64url').toString()).kid;
    const r = await h.post('/v1/keys/rotate', { purpose: 'session' }, admin);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.notEqual(r.body.active.kid, oldKid);
    // Session keys are never published (the broker verifies its own sessions; item 8.2).
    const jwks = (await h.get('/.well-known/jwks.json')).body.keys.map((k: { kid: string }) => k.kid);
    assert.ok(!jwks.includes(oldKid) && !jwks.includes(r.body.active.kid), 'no session key in the JWKS');
    assert.equal((await decide(before, 'db.select', { type: 'Database', id: 'orders' }, { purpose: { reason: 'x' } })).body.decision, 'allow');
    const after = await h.loginCi();
    assert.equal(JSON.parse(Buffer.from(after.split('.')[0]!, 'base64url').toString()).kid, r.body.active.kid);
    await h.running.broker.audit.flush();
    assert.ok((await h.running.broker.audit.query({ stream: 'admin', type: 'key.rotated' })).length >= 1);
  });

  it('the bootstrap credential works once, and its use is audited', async () => {
    await h.admin(); // spent here (or earlier)
    const again = await h.post('/v1/auth/token', { bootstrap: 'pcx_bootstrap_guess' });
    assert.equal(again.status, 401);
    await h.running.broker.audit.flush();
    const uses = await h.running.broker.audit.query({ stream: 'authn', identity: 'user:admin' });
    assert.ok(uses.some((e) => e.type === 'authn.success' && e.payload.method === 'bootstrap'));
    assert.equal(await h.running.broker.bootstrap(), undefined, 'a second start prints no new credential');
  });

  it('posture findings over HTTP: an identity without an owner and a legacy API key show up', async () => {
    const admin = await h.admin();
    assert.equal((await h.post('/v1/identities', { id: 'service-account:orphan', kind: 'service-account', boundary: 'platform', environment: 'prod' }, admin)).status, 201);
    const r = await h.get('/v1/findings', admin);
    assert.equal(r.status, 200);
    const codes = r.body.findings.map((f: { code: string; subject: string }) => `${f.code} ${f.subject}`);
    assert.ok(codes.includes('identity.no_owner service-account:orphan'), JSON.stringify(codes));
    assert.ok(codes.some((c: string) => c.startsWith('apikey.legacy ')), 'API keys minted earlier are flagged as legacy');
    assert.equal((await h.get('/v1/findings', session)).status, 403, 'workloads cannot read posture');
  });
});
