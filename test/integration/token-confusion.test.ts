// Item 8.2 — token confusion, over real HTTP: session tokens and access tokens are signed by
// different keyring purposes; a resource server validating per RFC 9068 against the published
// JWKS refuses a session token, and the API refuses an access token by its key (whatever its
// claims, typ or kid say). The JWKS carries token keys only; audit keys are served apart.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createLocalJWKSet, createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import type { JWK } from 'jose';
import { AuthenticationFailed } from '../../src/common/errors.ts';
import { verifyAccessToken } from '../../src/credentials/index.ts';
import { SESSION_TOKEN_TYPE } from '../../src/identity/session-claims.ts';
import { startHarness } from './harness.ts';
import type { Harness } from './harness.ts';

let h: Harness;
const API_AUD = 'https://orders-api.test';

before(async () => {
  h = await startHarness();
});
after(async () => {
  await h?.close();
});

const ring = () => h.running.broker.keyring;
const now = () => Math.floor(h.clock.now() / 1000);
const kids = async (purpose: 'session' | 'audit' | 'token') => new Set((await ring().list(purpose)).map((k) => k.kid));

/** Claims shaped like a genuine session token of the CI workload (only the signing key differs). */
function sessionShaped(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    iss: h.url,
    aud: h.url,
    sub: 'workload:github/acme/api',
    jti: `j-${Math.random().toString(36).slice(2)}`,
    iat: now(),
    exp: now() + 300,
    authn: { method: 'oidc', trust: 'ci', mfa: true, assurance: 'high', auth_time: now() },
    ...over,
  };
}

/** An access token exactly as the api issuer mints it (keyring `token` key, typ at+jwt). */
async function accessToken(over: Record<string, unknown> = {}, typ = 'at+jwt'): Promise<string> {
  return ring().signJwt('token', { iss: h.url, sub: 'workload:github/acme/api', aud: API_AUD, client_id: 'workload:github/acme/api', scope: 'orders:read', jti: `a-${Math.random().toString(36).slice(2)}`, iat: now(), exp: now() + 300, ...over }, { typ });
}

async function reason(token: string): Promise<string> {
  try {
    await h.running.broker.sessionFromToken(token, '127.0.0.1');
  } catch (e) {
    assert.ok(e instanceof AuthenticationFailed, String(e));
    return e.reason;
  }
  return 'accepted';
}

test('the JWKS publishes token keys only: no session key, no checkpoint key', async () => {
  await h.loginCi(); // a session key has signed something
  const r = await h.get('/.well-known/jwks.json');
  assert.equal(r.status, 200);
  const published = new Set((r.body.keys as JWK[]).map((k) => k.kid!));
  assert.ok(published.size >= 1);
  const tokenKids = await kids('token');
  for (const kid of published) assert.ok(tokenKids.has(kid), `${kid} is a token key`);
  for (const kid of await kids('session')) assert.ok(!published.has(kid), 'session key published');
  for (const kid of await kids('audit')) assert.ok(!published.has(kid), 'audit key published');
  for (const k of r.body.keys as JWK[]) assert.equal(k.d, undefined);

  const a = await h.get('/v1/audit/keys');
  assert.equal(a.status, 200);
  const auditKids = new Set((a.body.keys as JWK[]).map((k) => k.kid!));
  assert.deepEqual(auditKids, await kids('audit'));
  for (const k of a.body.keys as (JWK & { status: string })[]) {
    assert.equal(k.d, undefined);
    assert.ok(['active', 'retiring', 'retired'].includes(k.status));
  }
});

test('a session token is refused by an RFC 9068 resource server validating against the JWKS', async () => {
  const session = await h.loginCi();
  assert.equal(decodeProtectedHeader(session).typ, SESSION_TOKEN_TYPE);
  const jwks = createRemoteJWKSet(new URL(`${h.url}/.well-known/jwks.json`));
  const at = { issuer: h.url, currentDate: new Date(h.clock.now()) };
  // As a resource server would: RFC 9068 profile, for the broker's own audience and for an API's.
  for (const audience of [h.url, API_AUD]) {
    await assert.rejects(verifyAccessToken(session, jwks, { ...at, audience }), AuthenticationFailed);
  }
  // Even a lax verifier (no typ, no audience) finds no key for it: refused by key, not only by claim.
  await assert.rejects(jwtVerify(session, jwks, { currentDate: at.currentDate }), (e: Error & { code?: string }) => e.code === 'ERR_JWKS_NO_MATCHING_KEY');
  // A session key signing an at+jwt-shaped token does not help either.
  const sessionKeyAt = await ring().signJwt('session', { iss: h.url, sub: 'x', aud: API_AUD, client_id: 'x', scope: 'orders:read', jti: 'j', iat: now(), exp: now() + 60 }, { typ: 'at+jwt' });
  await assert.rejects(verifyAccessToken(sessionKeyAt, jwks, { ...at, audience: API_AUD }), AuthenticationFailed);
  // The genuine access token does verify there (the check above can fail).
  const real = await accessToken();
  assert.equal((await verifyAccessToken(real, jwks, { ...at, audience: API_AUD })).sub, 'workload:github/acme/api');
});

test('an access token presented as a session bearer is refused: genuine, session-shaped, same kid, swapped typ, forged aud', async () => {
  const good = await h.loginCi();
  assert.equal((await h.get('/v1/targets', good)).status, 200, 'a real session is accepted (the refusals below can fail)');
  const sessionKid = ring().activeKey('session').kid;
  const tokenKey = ring().activeKey('token');

  const variants: [string, string, string][] = [
    ['genuine RFC 9068 access token', await accessToken(), 'wrong_token_type'],
    ['access token with aud = broker', await accessToken({ aud: h.url }), 'wrong_token_type'],
    ['token key, session claims and session typ', await ring().signJwt('token', sessionShaped(), { typ: SESSION_TOKEN_TYPE }), 'unknown_kid'],
    ['token key, session typ, aud array with broker', await ring().signJwt('token', sessionShaped({ aud: [h.url, API_AUD] }), { typ: SESSION_TOKEN_TYPE }), 'unknown_kid'],
    ['token key, session typ, no aud', await ring().signJwt('token', sessionShaped({ aud: undefined }), { typ: SESSION_TOKEN_TYPE }), 'unknown_kid'],
    ['token key under the session key id', await relabel(await ring().signJwt('token', sessionShaped(), { typ: SESSION_TOKEN_TYPE }), sessionKid), 'bad_signature'],
    ['at+jwt under the session key id', await relabel(await accessToken({ aud: h.url }), sessionKid, SESSION_TOKEN_TYPE), 'bad_signature'],
    // The session key itself, with claims a session must not have.
    ['session key, typ at+jwt', await ring().signJwt('session', sessionShaped(), { typ: 'at+jwt' }), 'wrong_token_type'],
    ['session key, typ JWT', await ring().signJwt('session', sessionShaped(), { typ: 'JWT' }), 'wrong_token_type'],
    ['session key, no typ', await ring().signJwt('session', sessionShaped()), 'wrong_token_type'],
    ['session key, aud of an API', await ring().signJwt('session', sessionShaped({ aud: API_AUD }), { typ: SESSION_TOKEN_TYPE }), 'wrong_audience'],
    ['session key, aud missing', await ring().signJwt('session', sessionShaped({ aud: undefined }), { typ: SESSION_TOKEN_TYPE }), 'missing_claim'],
    ['session key, aud broker + API', await ring().signJwt('session', sessionShaped({ aud: [h.url, API_AUD] }), { typ: SESSION_TOKEN_TYPE }), 'wrong_audience'],
    ['session key, aud with trailing slash', await ring().signJwt('session', sessionShaped({ aud: `${h.url}/` }), { typ: SESSION_TOKEN_TYPE }), 'wrong_audience'],
    ['session key, iss of another broker', await ring().signJwt('session', sessionShaped({ iss: 'https://other-broker.test' }), { typ: SESSION_TOKEN_TYPE }), 'unknown_issuer'],
  ];
  assert.notEqual(tokenKey.kid, sessionKid);
  for (const [name, token, why] of variants) {
    const r = await h.get('/v1/targets', token);
    assert.equal(r.status, 401, name);
    assert.equal(await reason(token), why, name);
  }
  // The control: session key, session typ, aud = broker → accepted.
  assert.equal(await reason(await ring().signJwt('session', sessionShaped(), { typ: SESSION_TOKEN_TYPE })), 'accepted');
});

test('rotation of each purpose keeps them apart', async () => {
  const admin = await h.admin();
  const session = await h.loginCi();
  for (const purpose of ['token', 'session', 'audit'] as const) {
    const before = ring().activeKey(purpose).kid;
    const r = await h.post('/v1/keys/rotate', { purpose }, admin);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const after = ring().activeKey(purpose).kid;
    assert.notEqual(after, before);
    assert.ok(after.startsWith(`${purpose}-`));
    const jwks = new Set(((await h.get('/.well-known/jwks.json')).body.keys as JWK[]).map((k) => k.kid!));
    const audit = new Set(((await h.get('/v1/audit/keys')).body.keys as JWK[]).map((k) => k.kid!));
    if (purpose === 'token') {
      assert.ok(jwks.has(before) && jwks.has(after), 'old and new token keys published during the overlap');
    }
    if (purpose === 'audit') assert.ok(audit.has(before) && audit.has(after));
    for (const kid of jwks) assert.ok(kid.startsWith('token-'), `${kid} in the JWKS after rotating ${purpose}`);
    for (const kid of audit) assert.ok(kid.startsWith('audit-'));
  }
  // The session from before the rotation still works (overlap); a new one uses the new key.
  assert.equal((await h.get('/v1/targets', session)).status, 200);
  const fresh = await h.loginCi();
  assert.equal(decodeProtectedHeader(fresh).kid, ring().activeKey('session').kid);
  // A new access token verifies against the new JWKS; the session still does not.
  const jwks = createLocalJWKSet((await h.get('/.well-known/jwks.json')).body);
  const at = await accessToken();
  assert.equal(decodeProtectedHeader(at).kid, ring().activeKey('token').kid);
  await jwtVerify(at, jwks, { currentDate: new Date(h.clock.now()), typ: 'at+jwt' });
  await assert.rejects(jwtVerify(fresh, jwks, { currentDate: new Date(h.clock.now()) }));
});

/** Rewrites the header (kid, typ) keeping payload and signature: what an attacker can do freely. */
async function relabel(token: string, kid: string, typ?: string): Promise<string> {
  const [hd, p, s] = token.split('.') as [string, string, string];
  const header = { ...JSON.parse(Buffer.from(hd, 'base64url').toString()), kid, ...(typ && { typ }) };
  return `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${p}.${s}`;
}
