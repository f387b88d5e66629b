// End to end with a real OpenID provider (oidc-provider) in-process: code + PKCE login, groups as
// teams, a deny that needs recent MFA answered with step-up, a step-up login (prompt=login,
// max_age) with a fresh auth_time and amr including mfa, then request → two approvals → grant →
// allowed → revoked (leases revoked) → denied.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { HumanOidcTrust } from '../../src/identity/oidc-human.ts';
import type { HumanLogin } from '../../src/identity/oidc-human.ts';
import { validateHumanOidcTrust } from '../../src/identity/human-oidc-config.ts';
import { AuthenticationFailed, InvalidInput } from '../../src/common/errors.ts';
import { compilePolicySet } from '../../src/policy/policy-set.ts';
import { SelfApproval, StepUpRequired, parseCreateRequest, stepUpFor, stepUpIndex } from '../../src/access/index.ts';
import type { Actor } from '../../src/access/index.ts';
import { Browser, CLIENT_ID, CLIENT_SECRET, startIdp } from './idp.ts';
import type { Account, Idp } from './idp.ts';
import { ORDERS, POLICIES, SCHEMA_EXTENSION, world } from './helpers.ts';
import type { World } from './helpers.ts';
import { LOOPBACK, outboundFetch } from '../../src/common/outbound.ts';

const REDIRECT = 'http://127.0.0.1:53682/callback';
const ACCOUNTS: Account[] = [
  { sub: 'u-alice', email: 'alice@example.com', password: 'alice-pw', otp: '111111', groups: ['engineering'] },
  { sub: 'u-bob', email: 'bob@example.com', password: 'bob-pw', otp: '222222', groups: ['dba'] },
  { sub: 'u-carol', email: 'carol@example.com', password: 'carol-pw', otp: '333333', groups: ['dba', 'oncall'] },
];

describe('human sign-in with a real OpenID provider', () => {
  let idp: Idp;
  let trust: HumanOidcTrust;
  let w: World;

  before(async () => {
    idp = await startIdp(ACCOUNTS, [REDIRECT]);
    trust = new HumanOidcTrust(
      validateHumanOidcTrust(
        { name: 'sso', kind: 'oidc-human', issuer: idp.issuer, client_id: CLIENT_ID, client_secret_env: 'SSO_CLIENT_SECRET', redirect_uris: ['http://127.0.0.1/callback'], scopes: ['openid', 'email', 'groups'], algorithms: ['RS256'], groups_claim: 'groups', boundary: 'application', environment: 'prod' },
        { SSO_CLIENT_SECRET: CLIENT_SECRET },
      ),
      { fetch: outboundFetch({ allowPrivate: LOOPBACK }) }, // the test IdP is on loopback
    );
    w = await world({
      clockStart: Date.now(),
      config: { rules: [{ name: 'prod-db-admin', match: { environment: 'prod', action: 'db.admin' }, approvals: 2, max_duration: '4h', reviewers: ['user:bob@example.com', 'user:carol@example.com'] }] },
    });
  });
  after(async () => {
    await w?.close();
    await idp?.close();
  });

  /** Full browser round trip: authorization URL → login interaction → code → token → ID token. */
  async function login(browser: Browser, email: string, password: string, opts: { otp?: string; stepUp?: { mfa?: boolean; max_age?: number } } = {}): Promise<HumanLogin> {
    const started = await trust.startLogin({ redirectUri: REDIRECT, ...(opts.stepUp && { stepUp: opts.stepUp }) });
    const u = new URL(started.url);
    assert.equal(u.searchParams.get('code_challenge_method'), 'S256');
    assert.ok(u.searchParams.get('nonce'));
    const back = await browser.authorize(started.url, REDIRECT, { email, password, ...(opts.otp && { otp: opts.otp }) });
    assert.equal(back.get('state'), started.state);
    return trust.completeLogin({ state: back.get('state')!, code: back.get('code')!, ...(back.get('iss') && { iss: back.get('iss')! }) });
  }

  /** What the broker does on login: register the user with groups as Team parents; a session actor. */
  function admit(l: HumanLogin): Actor {
    w.users.set(l.proof.identityId, { id: l.proof.identityId, kind: 'user', boundary: 'application', environment: 'prod', owner: l.proof.identityId, labels: {}, parents: l.parents });
    return { id: l.proof.identityId, authn: l.proof.facts, sessionId: `sess-${Math.random().toString(36).slice(2)}` };
  }

  test('the full story: login, step-up, request, two approvals, grant, revocation', async () => {
    const aliceBrowser = new Browser();
    const first = await login(aliceBrowser, 'alice@example.com', 'alice-pw');
    assert.equal(first.proof.identityId, 'user:alice@example.com');
    assert.deepEqual(first.groups, ['engineering']);
    assert.deepEqual(first.parents, [{ type: 'Team', id: 'engineering' }]);
    assert.equal(first.proof.facts.method, 'oidc');
    assert.equal(first.proof.facts.mfa, false);
    assert.equal(first.proof.facts.assurance, 'medium');
    assert.deepEqual(first.proof.evidence.amr, ['pwd']);
    let alice = admit(first);

    // Production access needs a request with two approvals from other people.
    const req = await w.service.createRequest(alice, parseCreateRequest({ resource: 'Database::"orders"', actions: ['db.admin'], duration: '1h', reason: 'repair orders index' }));
    assert.equal(req.required_approvals, 2);
    await assert.rejects(w.service.approve(alice, req.id), SelfApproval);
    const bob = admit(await login(new Browser(), 'bob@example.com', 'bob-pw', { otp: '222222' }));
    const carol = admit(await login(new Browser(), 'carol@example.com', 'carol-pw', { otp: '333333' }));
    assert.deepEqual(w.users.get(carol.id)!.parents, [{ type: 'Team', id: 'dba' }, { type: 'Team', id: 'oncall' }]);
    await w.service.approve(bob, req.id, 'ok');
    const approved = await w.service.approve(carol, req.id);
    assert.equal(approved.status, 'approved');
    assert.deepEqual(w.service.activeGrants(alice.id).grants, ['Database::orders:db.admin']);

    // With the grant, db.admin is still denied: it needs recent MFA. The API answers step-up.
    const denied = await w.decideData(alice, 'db.admin', ORDERS);
    assert.equal(denied.decision, 'deny');
    const index = stepUpIndex(compilePolicySet([{ name: 'access.cedar', origin: 'config', text: POLICIES }], SCHEMA_EXTENSION));
    const need = stepUpFor(denied, index);
    assert.deepEqual(need, { mfa: true, max_age: 300 });
    const problem = new StepUpRequired(need!, { decision_id: denied.decision_id });
    assert.equal(problem.code, 'step_up_required');
    assert.equal(problem.status, 401);
    assert.match(problem.wwwAuthenticate(), /error="insufficient_user_authentication".*max_age=300/);

    // A step-up without the second factor is refused by the trust itself.
    await new Promise((r) => setTimeout(r, 1100)); // so the fresh auth_time is visibly newer
    const before = idp.prompts.length;
    await assert.rejects(login(aliceBrowser, 'alice@example.com', 'alice-pw', { stepUp: need! }), (e: AuthenticationFailed) => e.reason === 'step_up_not_satisfied');
    assert.equal(idp.prompts[before], 'login', 'prompt=login forced a new login despite the IdP session');

    // The real step-up: prompt=login + max_age=300, with OTP → fresh auth_time, amr has mfa.
    const stepped = await login(aliceBrowser, 'alice@example.com', 'alice-pw', { otp: '111111', stepUp: need! });
    assert.equal(stepped.proof.facts.mfa, true);
    assert.equal(stepped.proof.facts.assurance, 'high');
    assert.ok((stepped.proof.evidence.amr as string[]).includes('mfa'));
    assert.ok(stepped.proof.facts.auth_time > first.proof.facts.auth_time, 'fresh auth_time');
    alice = admit(stepped);
    const allowed = await w.decideData(alice, 'db.admin', ORDERS);
    assert.equal(allowed.decision, 'allow');
    assert.equal(stepUpFor(allowed, index), undefined);

    // Revoking the grant revokes its leases and the permission with it.
    const g = await w.service.revokeGrant(bob, approved.grant_id!, 'done');
    assert.ok(w.revoked.some((r) => r.grantId === g.id));
    assert.equal((await w.decideData(alice, 'db.admin', ORDERS)).decision, 'deny');

    // A later login past max_age would be too old: the same step-up answer again.
    w.clock.advance(10 * 60_000);
    const later = await w.service.createRequest(alice, parseCreateRequest({ resource: 'Database::"orders"', actions: ['db.admin'], duration: '1h', reason: 'again' }));
    await w.service.approve(bob, later.id);
    await w.service.approve(carol, later.id);
    const stale = await w.decideData(alice, 'db.admin', ORDERS);
    assert.deepEqual(stepUpFor(stale, index), { mfa: true, max_age: 300 });
    // …and the grant ends on time, revoking its leases.
    w.clock.advance(3_600_000);
    const swept = await w.service.sweep();
    assert.equal(swept.endedGrants.length, 1);
    assert.ok(w.revoked.some((r) => r.grantId === swept.endedGrants[0] && r.by === 'system:expiry'));
  });

  test('state is single use; unknown redirect URIs are refused; a tampered code fails', async () => {
    await assert.rejects(trust.startLogin({ redirectUri: 'https://evil.example/callback' }), InvalidInput);
    // Any loopback port is fine (RFC 8252), the path is not.
    await trust.startLogin({ redirectUri: 'http://127.0.0.1:1/callback' });
    await assert.rejects(trust.startLogin({ redirectUri: 'http://127.0.0.1:1/other' }), InvalidInput);
    const b = new Browser();
    const started = await trust.startLogin({ redirectUri: REDIRECT });
    const back = await b.authorize(started.url, REDIRECT, { email: 'bob@example.com', password: 'bob-pw' });
    await assert.rejects(trust.completeLogin({ state: started.state, code: `${back.get('code')}x` }), (e: AuthenticationFailed) => e.reason === 'token_exchange_failed');
    await assert.rejects(trust.completeLogin({ state: started.state, code: back.get('code')! }), (e: AuthenticationFailed) => e.reason === 'invalid_state');
    const s2 = await trust.startLogin({ redirectUri: REDIRECT });
    await assert.rejects(trust.completeLogin({ state: s2.state, code: 'x', iss: 'https://other.example' }), (e: AuthenticationFailed) => e.reason === 'unknown_issuer');
  });

  test('device flow (RFC 8628) for headless use, with step-up', async () => {
    const d = await trust.startDeviceLogin({ stepUp: { mfa: true, max_age: 300 } });
    assert.match(d.user_code, /^[A-Z]{4}-[A-Z]{4}$/);
    assert.ok(!JSON.stringify(d).includes('device_code'), 'the device code stays in the broker');
    assert.deepEqual(await trust.pollDeviceLogin(d.handle), { status: 'pending', interval: d.interval });
    const page = await new Browser().approveDevice(d.verification_uri_complete!, { email: 'carol@example.com', password: 'carol-pw', otp: '333333' });
    assert.match(page, /Sign-in Success/);
    const done = await trust.pollDeviceLogin(d.handle);
    assert.equal(done.status, 'complete');
    if (done.status !== 'complete') return;
    assert.equal(done.login.proof.identityId, 'user:carol@example.com');
    assert.equal(done.login.proof.facts.mfa, true);
    assert.deepEqual(done.login.groups, ['dba', 'oncall']);
    await assert.rejects(trust.pollDeviceLogin(d.handle), (e: AuthenticationFailed) => e.reason === 'invalid_state');

    // Without the second factor, the step-up device login is refused.
    const d2 = await trust.startDeviceLogin({ stepUp: { mfa: true } });
    await new Browser().approveDevice(d2.verification_uri_complete!, { email: 'bob@example.com', password: 'bob-pw' });
    await assert.rejects(trust.pollDeviceLogin(d2.handle), (e: AuthenticationFailed) => e.reason === 'step_up_not_satisfied');
  });

  test('config validation names the field', () => {
    const base = { name: 'sso', kind: 'oidc-human', issuer: 'https://id.example.com', client_id: 'c', redirect_uris: ['http://127.0.0.1/callback'] };
    assert.equal(validateHumanOidcTrust(base, {}).identity_claim, 'email');
    assert.throws(() => validateHumanOidcTrust({ ...base, client_secret: 'x' }, {}), (e: InvalidInput) => e.extra.field === 'trust.client_secret');
    assert.throws(() => validateHumanOidcTrust({ ...base, issuer: 'http://id.example.com' }, {}), (e: InvalidInput) => e.extra.field === 'trust.issuer');
    assert.throws(() => validateHumanOidcTrust({ ...base, algorithms: ['HS256'] }, {}), (e: InvalidInput) => e.extra.field === 'trust.algorithms[0]');
    assert.throws(() => validateHumanOidcTrust({ ...base, scopes: ['email'] }, {}), (e: InvalidInput) => e.extra.field === 'trust.scopes');
    assert.throws(() => validateHumanOidcTrust({ ...base, redirect_uris: [] }, {}), (e: InvalidInput) => e.extra.field === 'trust.redirect_uris');
    assert.throws(() => validateHumanOidcTrust({ ...base, client_secret_env: 'NOPE' }, {}), (e: InvalidInput) => e.extra.field === 'trust.client_secret_env');
  });
});
