// End to end with a real OpenID provider (oidc-provider) in-process: code + PKCE login, groups as
// teams, a deny that needs recent MFA answered with step-up, a step-up login (prompt=login,
// max_age) with a fresh auth_time and amr including mfa, then request → two approvals → grant →
// allowed → revoked (leases revoked) → denied.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { HumanOidcTrust, emailProblem } from '../../src/identity/trusts/oidc-human/oidc-human.ts';
import { AUTH_TIME_UNKNOWN } from '../../src/identity/trusts/oidc/oidc.ts';
import { JtiReplayStore } from '../../src/identity/replay.ts';
import { openDatabase } from '../../src/store/sqlite/db.ts';
import { identityStore } from '../identity/helpers.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HumanLogin } from '../../src/identity/trusts/oidc-human/oidc-human.ts';
import { validateHumanOidcTrust } from '../../src/identity/trusts/oidc-human/config.ts';
import { AuthenticationFailed, InvalidInput } from '../../src/common/errors.ts';
import { compilePolicySet } from '../../src/policy/policy-set.ts';
import { SelfApproval, parseCreateRequest } from '../../src/access/index.ts';
import { StepUpRequired, stepUpFor, stepUpIndex } from '../../src/policy/step-up.ts';
import type { Actor } from '../../src/access/index.ts';
import { Browser, CLIENT_ID, CLIENT_SECRET, startIdp } from './idp.ts';
import type { Account, Idp } from './idp.ts';
import { ORDERS, POLICIES, SCHEMA_EXTENSION, world } from './helpers.ts';
import type { World } from './helpers.ts';
import { LOOPBACK, outboundFetch } from '../../src/common/outbound.ts';

/** A human trust that may reach the test IdP on loopback (the outbound policy refuses it otherwise). */
const loopbackFetch = outboundFetch({ allowPrivate: LOOPBACK });
function human(cfg: ConstructorParameters<typeof HumanOidcTrust>[0], opts: ConstructorParameters<typeof HumanOidcTrust>[1] = {}): HumanOidcTrust {
  return new HumanOidcTrust(cfg, { fetch: loopbackFetch, ...opts });
}

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
    assert.deepEqual((await w.service.activeGrants(alice.id)).grants, ['Database::orders:db.admin']);

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

  test("the code exchange checks the ID token's nonce against the login's own (an ID token from another login is refused)", async () => {
    // The provider's token answer with its ID token replaced by one the provider's key signed with
    // the same claims, or with another login's nonce (what an injected code would bring).
    const swapping = (nonce: (real: string) => string): typeof fetch => async (input, init) => {
      const res = await loopbackFetch(input as string, init);
      const url = String(input instanceof Request ? input.url : input);
      if (!url.endsWith('/token') || !res.ok) return res;
      const body = (await res.json()) as Record<string, unknown>;
      const claims = JSON.parse(Buffer.from(String(body.id_token).split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
      return Response.json({ ...body, id_token: await idp.sign({ ...claims, nonce: nonce(String(claims.nonce)) }) });
    };
    const signIn = async (t: HumanOidcTrust) => {
      const started = await t.startLogin({ redirectUri: REDIRECT });
      const back = await new Browser().authorize(started.url, REDIRECT, { email: 'bob@example.com', password: 'bob-pw' });
      return t.completeLogin({ state: back.get('state')!, code: back.get('code')!, ...(back.get('iss') && { iss: back.get('iss')! }) });
    };
    const cfg = cfgOf({ scopes: ['openid', 'email', 'groups'] });
    // The re-signed token with the real nonce is accepted (the swap itself is sound)…
    assert.equal((await signIn(human(cfg, { fetch: swapping((n) => n) }))).proof.identityId, 'user:bob@example.com');
    // …with another login's nonce it is not.
    assert.equal(await reasonOf(signIn(human(cfg, { fetch: swapping(() => 'nonce-of-another-login') }))), 'nonce_mismatch');
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
  // ── Item 8.24: the ID token gets the checks every trust applies; auth age; MFA; e-mail; redirect URIs ──

  const nowS = () => Math.floor(Date.now() / 1000);
  const cfgOf = (over: Record<string, unknown> = {}) =>
    validateHumanOidcTrust({ name: 'sso', kind: 'oidc-human', issuer: idp.issuer, client_id: CLIENT_ID, client_secret_env: 'S', redirect_uris: ['http://127.0.0.1/callback'], algorithms: ['RS256'], ...over }, { S: CLIENT_SECRET });
  const idClaims = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
    iss: idp.issuer, aud: CLIENT_ID, sub: 'u-kelly', email: 'kelly@example.com', email_verified: true, iat: nowS(), exp: nowS() + 600, auth_time: nowS() - 10, amr: ['pwd'], ...over,
  });
  const reasonOf = async (p: Promise<unknown>): Promise<string> => {
    try {
      await p;
      return 'accepted';
    } catch (e) {
      assert.ok(e instanceof AuthenticationFailed, String(e));
      assert.equal(e.status, 401);
      return e.reason;
    }
  };

  test('ID tokens: the same checks as every trust (iat in the future, lifetime, typ, crit, alg, aud, iss)', async () => {
    const t = human(cfgOf());
    assert.equal(await reasonOf(t.verifyIdToken(await idp.sign(idClaims()))), 'accepted');
    const cases: [string, Record<string, unknown>, Record<string, unknown>, string][] = [
      ['iat beyond leeway', { iat: nowS() + 31 + 5 }, {}, 'issued_in_future'],
      ['iat a day ahead', { iat: nowS() + 86_400, exp: nowS() + 86_400 + 60 }, {}, 'issued_in_future'],
      ['auth_time ahead', { auth_time: nowS() + 3600 }, {}, 'issued_in_future'],
      ['no iat', { iat: undefined }, {}, 'missing_claim'],
      ['iat not a number', { iat: 'now' }, {}, 'malformed'],
      ['lifetime 25 h', { exp: nowS() + 25 * 3600 }, {}, 'lifetime_too_long'],
      ['minted 2 days ago', { iat: nowS() - 2 * 86_400 }, {}, 'lifetime_too_long'],
      ['expired', { iat: nowS() - 900, exp: nowS() - 300 }, {}, 'expired'],
      ['not yet valid', { nbf: nowS() + 600 }, {}, 'not_yet_valid'],
      ['other audience', { aud: 'someone-else' }, {}, 'wrong_audience'],
      ['two audiences, no azp', { aud: [CLIENT_ID, 'other'] }, {}, 'wrong_audience'],
      ['other issuer', { iss: 'https://evil.example' }, {}, 'unknown_issuer'],
      ['typ at+jwt', {}, { typ: 'at+jwt' }, 'wrong_token_type'],
      ['typ logout+jwt', {}, { typ: 'logout+jwt' }, 'wrong_token_type'],
      ['typ session', {}, { typ: 'pcx-session+jwt' }, 'wrong_token_type'],
      ['crit header', {}, { crit: ['x-ext'], 'x-ext': 1 }, 'unknown_crit'],
      ['jwk header', {}, { jwk: { kty: 'RSA', n: 'x', e: 'AQAB' } }, 'forbidden_header'],
    ];
    for (const [name, claims, header, reason] of cases) {
      assert.equal(await reasonOf(t.verifyIdToken(await idp.sign(idClaims(claims), header))), reason, name);
    }
    // alg none, and an algorithm the trust does not allow (the provider signs RS256).
    const [h, p] = (await idp.sign(idClaims())).split('.');
    const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${p}.`;
    assert.equal(await reasonOf(t.verifyIdToken(none)), 'algorithm_not_allowed');
    assert.ok(h);
    assert.equal(await reasonOf(human(cfgOf({ algorithms: ['ES256'] })).verifyIdToken(await idp.sign(idClaims()))), 'algorithm_not_allowed');
    // A provider whose key set cannot be read: jwks_unavailable, not a signature failure.
    const deadKeys: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      const doc = (await res.json()) as Record<string, unknown>;
      return Response.json({ ...doc, jwks_uri: 'http://127.0.0.1:1/jwks' });
    };
    assert.equal(await reasonOf(human(cfgOf(), { fetch: deadKeys }).verifyIdToken(await idp.sign(idClaims()))), 'jwks_unavailable');
    // max_token_lifetime configured shorter.
    assert.equal(await reasonOf(human(cfgOf({ max_token_lifetime: '5m' })).verifyIdToken(await idp.sign(idClaims()))), 'lifetime_too_long');
  });

  test('ID tokens: replay: reject refuses an ID token seen before, even after a restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pcx-sso-replay-'));
    try {
      const db = openDatabase(join(dir, 'p.db'));
      const t = human(cfgOf({ replay: 'reject' }), { replay: new JtiReplayStore(identityStore(db).replay) });
      const token = await idp.sign(idClaims({ jti: 'id-token-1' }));
      assert.equal(await reasonOf(t.verifyIdToken(token)), 'accepted');
      assert.equal(await reasonOf(t.verifyIdToken(token)), 'replayed');
      assert.equal(await reasonOf(t.verifyIdToken(await idp.sign(idClaims({ jti: undefined })))), 'missing_claim');
      db.close();
      const db2 = openDatabase(join(dir, 'p.db'));
      const again = human(cfgOf({ replay: 'reject' }), { replay: new JtiReplayStore(identityStore(db2).replay) });
      assert.equal(await reasonOf(again.verifyIdToken(token)), 'replayed');
      db2.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('auth age is never derived from iat: without auth_time it is unknown (too old for any max age)', async () => {
    const t = human(cfgOf());
    const fresh = await t.verifyIdToken(await idp.sign(idClaims({ auth_time: undefined, iat: nowS() })));
    assert.equal(fresh.proof.facts.auth_time, AUTH_TIME_UNKNOWN);
    assert.equal(fresh.proof.evidence.auth_time, 'unknown');
    assert.ok(nowS() - fresh.proof.facts.auth_time > 10 * 365 * 86_400, 'authAgeSeconds is beyond any @maxAuthAge');
    // A step-up with max_age needs auth_time: an iat, however fresh, does not stand in for it.
    assert.equal(await reasonOf(t.verifyIdToken(await idp.sign(idClaims({ auth_time: undefined })), { stepUp: { max_age: 300 } })), 'missing_claim');
    assert.equal(await reasonOf(t.verifyIdToken(await idp.sign(idClaims({ auth_time: nowS() - 3600 })), { stepUp: { max_age: 300 } })), 'step_up_not_satisfied');
    assert.equal(await reasonOf(t.verifyIdToken(await idp.sign(idClaims({ auth_time: 'yesterday' })))), 'malformed');
    const known = await t.verifyIdToken(await idp.sign(idClaims({ auth_time: nowS() - 42 })));
    assert.equal(known.proof.facts.auth_time, nowS() - 42);

    // Where policies need freshness, ask the provider with max_age: configured on the trust, it goes
    // with every login and the provider must answer with auth_time (a real login here).
    const fresher = human(cfgOf({ max_age: '1h', scopes: ['openid', 'email', 'groups'] }));
    const started = await fresher.startLogin({ redirectUri: REDIRECT });
    assert.equal(new URL(started.url).searchParams.get('max_age'), '3600');
    assert.equal(new URL(started.url).searchParams.get('prompt'), null, 'max_age alone does not force a new login');
    const back = await new Browser().authorize(started.url, REDIRECT, { email: 'bob@example.com', password: 'bob-pw' });
    const l = await fresher.completeLogin({ state: back.get('state')!, code: back.get('code')! });
    assert.ok(Math.abs(l.proof.facts.auth_time - nowS()) < 120, 'auth_time from the provider');
  });

  test('mfa_acr and mfa_amr are alternatives: configuring one does not keep the other default', async () => {
    assert.deepEqual(cfgOf().mfa_acr, []);
    assert.ok(cfgOf().mfa_amr.includes('mfa'));
    const acrOnly = cfgOf({ mfa_acr: ['urn:portcullis:mfa'] });
    assert.deepEqual(acrOnly.mfa_amr, []);
    const amrOnly = cfgOf({ mfa_amr: ['hwk'] });
    assert.deepEqual(amrOnly.mfa_acr, []);
    const both = cfgOf({ mfa_amr: ['hwk'], mfa_acr: ['urn:portcullis:mfa'] });
    const mfa = async (cfg: ReturnType<typeof cfgOf>, amr: string[], acr?: string) =>
      (await human(cfg).verifyIdToken(await idp.sign(idClaims({ amr, ...(acr && { acr }) })))).proof.facts.mfa;
    assert.equal(await mfa(acrOnly, ['pwd', 'otp', 'mfa'], 'urn:portcullis:pwd'), false, 'amr default gone once mfa_acr is set');
    assert.equal(await mfa(acrOnly, ['pwd'], 'urn:portcullis:mfa'), true);
    assert.equal(await mfa(amrOnly, ['pwd', 'otp', 'mfa']), false, 'only the configured amr values count');
    assert.equal(await mfa(amrOnly, ['pwd', 'hwk']), true);
    assert.equal(await mfa(amrOnly, ['pwd'], 'urn:portcullis:mfa'), false);
    assert.equal(await mfa(both, ['hwk']), true);
    assert.equal(await mfa(both, ['pwd'], 'urn:portcullis:mfa'), true);
    assert.equal(await mfa(cfgOf(), ['pwd'], 'urn:portcullis:mfa'), false, 'no acr counts unless configured');
  });

  test('e-mail identities that change under NFKC or case folding are refused (401), never merged', async () => {
    const t = human(cfgOf());
    assert.equal((await t.verifyIdToken(await idp.sign(idClaims()))).proof.identityId, 'user:kelly@example.com');
    const variants: [string, string][] = [
      ['KELVIN SIGN', '\u212Aelly@example.com'],
      ['capital', 'Kelly@example.com'],
      ['capital domain', 'kelly@EXAMPLE.com'],
      ['fullwidth k', '\uFF4Belly@example.com'],
      ['fullwidth @', 'kelly\uFF20example.com'],
      ['ligature ff', 'je\uFB00@example.com'],
      ['decomposed accent', 'kelle\u0301@example.com'],
      ['sharp s', 'stra\u00DFe@example.com'],
      ['final sigma', 'kelly\u03C2@example.com'],
      ['dotless i', 'k\u0131lly@example.com'],
      ['zero-width space', 'kel\u200Bly@example.com'],
      ['trailing space', 'kelly@example.com '],
      ['mathematical k', '\u{1D424}elly@example.com'],
    ];
    for (const [name, email] of variants) {
      assert.notEqual(emailProblem(email), undefined, name);
      assert.equal(await reasonOf(t.verifyIdToken(await idp.sign(idClaims({ email })))), 'non_canonical_identity', name);
    }
    // Canonical non-ASCII local parts are fine; not an e-mail at all is its own reason.
    assert.equal(emailProblem('jos\u00E9@example.com'), undefined);
    assert.equal(await reasonOf(t.verifyIdToken(await idp.sign(idClaims({ email: 42 })))), 'bad_identity_claim');
    // With identity_claim: sub the address is only an attribute: a non-canonical one is dropped.
    const bySub = human(cfgOf({ identity_claim: 'sub' }));
    const l = await bySub.verifyIdToken(await idp.sign(idClaims({ email: '\u212Aelly@example.com' })));
    assert.equal(l.proof.identityId, 'user:u-kelly');
    assert.equal(l.proof.attributes.email, undefined);
  });

  test('the redirect URI given when a login starts is validated like configured ones', async () => {
    for (const ok of ['http://127.0.0.1:5/callback', 'http://127.0.0.1/callback', REDIRECT]) await trust.startLogin({ redirectUri: ok });
    const refusedUris = [
      'http://user:pw@127.0.0.1:5/callback',
      'http://user@127.0.0.1:5/callback',
      'http://@127.0.0.1:5/callback',
      'http://127.0.0.1:5/callback#',
      'http://127.0.0.1:5/callback#frag',
      'http://127.1:5/callback',
      'http://0x7f000001:5/callback',
      'http://2130706433:5/callback',
      'HTTP://127.0.0.1:5/callback',
      'http://127.0.0.1:5/x/../callback',
      'http://127.0.0.1:5/./callback',
      'http://127.0.0.1:5\\callback',
      ' http://127.0.0.1:5/callback',
      'http://127.0.0.1:5/callback?',
      'http://127.0.0.1:5/callback?x=1',
      'http://127.0.0.1:5/callback/',
      'http://127.0.0.1:5/Callback',
      'http://127.0.0.1:5/%63allback',
      'http://127.0.0.1:0/callback',
      'http://localhost:5/callback',
      'http://[::1]:5/callback',
      'https://127.0.0.1:5/callback',
      'http://127.0.0.1.evil.example/callback',
      'javascript:alert(1)',
      'not a url',
      '',
    ];
    for (const uri of refusedUris) {
      await assert.rejects(trust.startLogin({ redirectUri: uri }), (e: unknown) => e instanceof InvalidInput && e.extra.field === 'redirect_uri', uri);
    }
    // The same rules at config load.
    for (const uri of ['http://127.0.0.1/callback#', 'http://u@127.0.0.1/callback', 'http://127.1/callback', 'https://App.example.com/cb']) {
      assert.throws(() => cfgOf({ redirect_uris: [uri] }), (e: InvalidInput) => e.extra.field === 'trust.redirect_uris[0]', uri);
    }
    // A non-loopback configured URI matches only exactly (no port freedom there).
    const web = human(cfgOf({ redirect_uris: ['https://portcullis.example.com/callback'] }));
    await web.startLogin({ redirectUri: 'https://portcullis.example.com/callback' });
    for (const uri of ['https://portcullis.example.com:8443/callback', 'https://portcullis.example.com/callback?a', 'https://x@portcullis.example.com/callback', 'https://portcullis.example.com/callback#']) {
      await assert.rejects(web.startLogin({ redirectUri: uri }), InvalidInput, uri);
    }
  });
});
