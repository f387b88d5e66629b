// The oidc-human trust with its pending logins in the store, on two replicas (two trusts over two
// stores opened on one database), against a scripted provider that answers what oidc-provider
// never does: slow_down (the slower interval is seen by the other replica), logins that outlive
// their expiry (login_expired, then gone), a provider that hands the same device login's tokens
// to two polls (one login only), and the bound on pending logins (503 naming it).
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { ManualClock } from '../../src/common/clock.ts';
import { AuthenticationFailed, Unavailable } from '../../src/common/errors.ts';
import { LoginStates } from '../../src/identity/login-state.ts';
import { HumanOidcTrust } from '../../src/identity/trusts/oidc-human/oidc-human.ts';
import { validateHumanOidcTrust } from '../../src/identity/trusts/oidc-human/config.ts';
import type { Store } from '../../src/store/index.ts';
import { forEachStore } from '../store/stores.ts';
import { withReplicas } from '../store/replicas.ts';
import { makeKey, sign } from '../identity/helpers.ts';

const ISSUER = 'https://idp.example.test';
const REDIRECT = 'http://127.0.0.1:53682/callback';
const key = makeKey('idp-1', 'ES256');

/**
 * A provider scripted per test: discovery, keys, device authorization; `token` answers the token
 * endpoint (with the access_token every OAuth token answer has: openid-client refuses one without).
 */
function provider(clock: ManualClock) {
  const p = {
    tokenCalls: 0,
    token: (_form: URLSearchParams): Record<string, unknown> => ({ error: 'authorization_pending' }),
    idToken: (email: string, nonce?: string) => {
      const now = Math.floor(clock.now() / 1000);
      return sign({ iss: ISSUER, aud: 'portcullis', sub: `u-${email}`, email, email_verified: true, iat: now, exp: now + 300, auth_time: now, ...(nonce && { nonce }) }, key);
    },
    fetch: (async (input: string | URL | Request, init?: RequestInit) => {
      const url = String(input);
      const json = (body: unknown, status = 200) => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
      if (url === `${ISSUER}/.well-known/openid-configuration`) {
        return json({ issuer: ISSUER, authorization_endpoint: `${ISSUER}/auth`, token_endpoint: `${ISSUER}/token`, jwks_uri: `${ISSUER}/jwks`, device_authorization_endpoint: `${ISSUER}/device`, code_challenge_methods_supported: ['S256'] });
      }
      if (url === `${ISSUER}/jwks`) return json({ keys: [key.jwk] });
      if (url === `${ISSUER}/device`) return json({ device_code: `dc-${randomBytes(8).toString('hex')}`, user_code: 'ABCD-EFGH', verification_uri: `${ISSUER}/verify`, interval: 5, expires_in: 600 });
      if (url === `${ISSUER}/token`) {
        p.tokenCalls++;
        const answer = p.token(new URLSearchParams(String(init?.body ?? '')));
        return json(answer, answer.error ? 400 : 200);
      }
      return json({}, 404);
    }) as typeof fetch,
  };
  return p;
}

const config = validateHumanOidcTrust({ name: 'sso', kind: 'oidc-human', issuer: ISSUER, client_id: 'portcullis', redirect_uris: ['http://127.0.0.1/callback'], algorithms: ['ES256'], login_ttl: '2m' }, {});

/** The same trust on two replicas: each its own store (one database) and its own LoginStates, one sealing key. */
function replicas(a: Store, b: Store, clock: ManualClock, max?: number) {
  const idp = provider(clock);
  const secret = randomBytes(32);
  const trust = (s: Store) => new HumanOidcTrust(config, { clock, fetch: idp.fetch, loginStates: new LoginStates(s.identity.loginState, secret, max === undefined ? {} : { max }) });
  return { idp, A: trust(a), B: trust(b) };
}

const reason = (r: string) => (e: unknown) => e instanceof AuthenticationFailed && e.reason === r;

forEachStore('oidc-human on two replicas: a device login slowed down on one is slower on the other, completes once, and expires for both', async (open, kind) => {
  await withReplicas(kind, open, async (a, b) => {
    const clock = new ManualClock(Date.now());
    const { idp, A, B } = replicas(a, b, clock);
    const d = await A.startDeviceLogin();
    assert.deepEqual(await B.pollDeviceLogin(d.handle), { status: 'pending', interval: 5 });
    idp.token = () => ({ error: 'slow_down' });
    assert.deepEqual(await B.pollDeviceLogin(d.handle), { status: 'pending', interval: 10 });
    idp.token = () => ({ error: 'authorization_pending' });
    assert.deepEqual(await A.pollDeviceLogin(d.handle), { status: 'pending', interval: 10 }, 'the slower interval is shared');
    // The provider (misbehaving) gives the tokens to two polls at once: one login, on one replica.
    idp.token = (form) => {
      assert.equal(form.get('grant_type'), 'urn:ietf:params:oauth:grant-type:device_code');
      return { id_token: idp.idToken('dana@example.com'), token_type: 'Bearer', access_token: 'at-unused' };
    };
    const polls = await Promise.allSettled([A.pollDeviceLogin(d.handle), B.pollDeviceLogin(d.handle)]);
    const won = polls.filter((p) => p.status === 'fulfilled');
    assert.equal(won.length, 1, JSON.stringify(polls.map((p) => (p.status === 'rejected' ? (p.reason as AuthenticationFailed).reason : 'ok'))));
    const v = (won[0] as PromiseFulfilledResult<Awaited<ReturnType<HumanOidcTrust['pollDeviceLogin']>>>).value;
    assert.equal(v.status === 'complete' && v.login.proof.identityId, 'user:dana@example.com');
    assert.ok(reason('invalid_state')((polls.find((p) => p.status === 'rejected') as PromiseRejectedResult).reason));
    await assert.rejects(A.pollDeviceLogin(d.handle), reason('invalid_state'));

    // Expiry: past it, the other replica says so once, then the login is gone.
    idp.token = () => ({ error: 'authorization_pending' });
    const late = await B.startDeviceLogin();
    clock.advance(600_000);
    const calls = idp.tokenCalls;
    await assert.rejects(A.pollDeviceLogin(late.handle), reason('login_expired'));
    assert.equal(idp.tokenCalls, calls, 'an expired login never reaches the provider');
    await assert.rejects(B.pollDeviceLogin(late.handle), reason('invalid_state'));
    assert.equal(await a.identity.loginState.count(), 0);
  });
});

forEachStore('oidc-human on two replicas: a code login completes on the other replica once, expires after login_ttl; the bound answers 503', async (open, kind) => {
  await withReplicas(kind, open, async (a, b) => {
    const clock = new ManualClock(Date.now());
    const { idp, A, B } = replicas(a, b, clock, 3);
    const started = await A.startLogin({ redirectUri: REDIRECT });
    const q = new URL(started.url).searchParams;
    idp.token = (form) => {
      assert.equal(form.get('code'), 'the-code');
      assert.equal(form.get('redirect_uri'), REDIRECT, 'the redirect URI kept at the start');
      // PKCE: the verifier B sends is the one whose challenge A put in the URL.
      assert.equal(createHash('sha256').update(form.get('code_verifier')!).digest('base64url'), q.get('code_challenge'));
      return { id_token: idp.idToken('erin@example.com', q.get('nonce')!), token_type: 'Bearer', access_token: 'at-unused' };
    };
    const login = await B.completeLogin({ state: started.state, code: 'the-code', iss: ISSUER });
    assert.equal(login.proof.identityId, 'user:erin@example.com');
    await assert.rejects(A.completeLogin({ state: started.state, code: 'the-code' }), reason('invalid_state'));

    // Past login_ttl (2 min): expired, on whichever replica, then gone.
    const slow = await B.startLogin({ redirectUri: REDIRECT });
    clock.advance(120_000);
    await assert.rejects(A.completeLogin({ state: slow.state, code: 'the-code' }), reason('login_expired'));
    await assert.rejects(B.completeLogin({ state: slow.state, code: 'the-code' }), reason('invalid_state'));

    // Three pending logins is the bound here (all replicas together): the fourth start is refused.
    for (const t of [A, B, A]) await t.startLogin({ redirectUri: REDIRECT });
    await assert.rejects(B.startLogin({ redirectUri: REDIRECT }), (e: unknown) => e instanceof Unavailable && e.status === 503 && /limit is 3 pending logins/.test(e.message));
    await assert.rejects(A.startDeviceLogin(), Unavailable);
    clock.advance(120_000);
    await B.startLogin({ redirectUri: REDIRECT });
    assert.equal(await b.identity.loginState.count(), 1, 'the expired ones were purged by the next start');
  });
});
