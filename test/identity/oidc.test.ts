import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { ManualClock, nowSeconds } from '../../src/common/clock.ts';
import { AUTH_TIME_UNKNOWN, OidcTrust } from '../../src/identity/trusts/oidc/oidc.ts';
import type { OidcTrustConfig } from '../../src/config/types.ts';
import { MAX_TOKEN_BYTES } from '../../src/identity/jwt.ts';
import { makeKey, sign, signRaw, unsigned, startJwksServer, refused, b64 } from './helpers.ts';
import type { JwksServer } from './helpers.ts';
import { LOOPBACK, outboundFetch } from '../../src/common/outbound.ts';

const LOCAL = outboundFetch({ allowPrivate: LOOPBACK }); // the test JWKS server is on loopback

const ISSUER = 'https://token.actions.example.com';
const k1 = makeKey('k1', 'RS256');
const k2 = makeKey('k2', 'ES256');
const attacker = makeKey('k1', 'RS256'); // same kid as the real key, different key
const clock = new ManualClock();
let server: JwksServer;

function config(over: Partial<OidcTrustConfig> = {}): OidcTrustConfig {
  return {
    name: 'ci',
    kind: 'oidc',
    issuer: ISSUER,
    jwks_uri: server.url,
    audiences: ['portcullis'],
    algorithms: ['RS256', 'ES256', 'EdDSA'],
    require: { repository_owner: 'acme' },
    identity: 'workload:github/{repository}',
    identity_kind: 'workload',
    attributes: ['repository', 'ref', 'environment', 'run_attempt'],
    boundary: 'platform',
    environment: 'prod',
    owner: 'team:platform',
    leeway_seconds: 30,
    ...over,
  };
}

function claims(over: Record<string, unknown> = {}): Record<string, unknown> {
  const now = nowSeconds(clock);
  return {
    iss: ISSUER,
    aud: 'portcullis',
    sub: 'repo:acme/api:ref:refs/heads/main',
    repository: 'acme/api',
    repository_owner: 'acme',
    ref: 'refs/heads/main',
    run_attempt: 2,
    nested: { a: 1 },
    iat: now - 10,
    nbf: now - 10,
    exp: now + 300,
    jti: 'abc',
    ...over,
  };
}

before(async () => {
  server = await startJwksServer([k1.jwk]);
});
after(async () => {
  await server.close();
});

test('OIDC: a valid token from a real JWKS endpoint yields identity, facts, attributes, evidence', async () => {
  const trust = new OidcTrust(config(), { clock, fetch: LOCAL });
  const token = sign(claims(), k1);
  assert.equal(trust.accepts({ type: 'jwt', token }, { issuer: ISSUER }), true);
  assert.equal(trust.accepts({ type: 'jwt', token }, { issuer: 'https://other' }), false);
  const v = await trust.verify({ type: 'jwt', token });
  assert.equal(v.identityId, 'workload:github/acme/api');
  assert.equal(v.kind, 'workload');
  // No auth_time in the token: the auth age is unknown (never taken from iat).
  assert.deepEqual(v.facts, { method: 'oidc', trust: 'ci', mfa: false, assurance: 'high', auth_time: AUTH_TIME_UNKNOWN });
  const withAuthTime = await trust.verify({ type: 'jwt', token: sign(claims({ auth_time: nowSeconds(clock) - 100 }), k1) });
  assert.equal(withAuthTime.facts.auth_time, nowSeconds(clock) - 100);
  assert.deepEqual(v.attributes, { repository: 'acme/api', ref: 'refs/heads/main', run_attempt: 2 });
  assert.deepEqual(v.defaults, { boundary: 'platform', environment: 'prod', owner: 'team:platform' });
  assert.equal(v.evidence.kid, 'k1');
  assert.equal(v.evidence.alg, 'RS256');
  assert.ok(!JSON.stringify(v.evidence).includes(token.split('.')[2]!));
});

test('OIDC: unknown kid refetches once (rotation), then refetches are rate-limited', async () => {
  server.setKeys([k1.jwk]);
  const c = new ManualClock();
  const trust = new OidcTrust(config(), { clock: c, fetch: LOCAL });
  const before = server.requests;
  const t = (key = k1, over = {}) => sign({ ...claims(), iat: nowSeconds(c), nbf: nowSeconds(c), exp: nowSeconds(c) + 300, ...over }, key);
  await trust.verify({ type: 'jwt', token: t() });
  await trust.verify({ type: 'jwt', token: t() });
  assert.equal(server.requests - before, 1, 'JWKS cached');
  // The issuer rotates to k2 right after our first fetch: within the cooldown no refetch.
  server.setKeys([k1.jwk, k2.jwk]);
  c.advance(5_000);
  await refused(trust.verify({ type: 'jwt', token: t(k2) }), 'unknown_kid');
  assert.equal(server.requests - before, 1);
  c.advance(30_000);
  const v = await trust.verify({ type: 'jwt', token: t(k2) });
  assert.equal(v.evidence.kid, 'k2');
  assert.equal(server.requests - before, 2, 'one refetch for the new kid');
  // A flood of random kids causes no further requests within the cooldown.
  for (let i = 0; i < 25; i++) {
    const bogus = { ...k2, kid: `random-${i}` };
    await refused(trust.verify({ type: 'jwt', token: t(bogus) }), 'unknown_kid');
  }
  assert.equal(server.requests - before, 2);
  c.advance(30_001);
  await refused(trust.verify({ type: 'jwt', token: t({ ...k2, kid: 'still-unknown' }) }), 'unknown_kid');
  assert.equal(server.requests - before, 3, 'at most one refetch per cooldown');
});

test('OIDC: JWKS endpoint down → jwks_unavailable; stale keys survive an outage', async () => {
  const trust = new OidcTrust(config({ jwks_uri: 'http://127.0.0.1:1/jwks' }), { clock, fetch: LOCAL, timeoutMs: 2000 });
  await refused(trust.verify({ type: 'jwt', token: sign(claims(), k1) }), 'jwks_unavailable');
  server.status = 500;
  await refused(new OidcTrust(config(), { clock, fetch: LOCAL }).verify({ type: 'jwt', token: sign(claims(), k1) }), 'jwks_unavailable');
  server.status = 200;
  server.setKeys([k1.jwk]);
  const c = new ManualClock();
  const t2 = new OidcTrust(config(), { clock: c, fetch: LOCAL, cacheMaxAgeMs: 60_000 });
  const tok = () => sign({ ...claims(), iat: nowSeconds(c), nbf: nowSeconds(c), exp: nowSeconds(c) + 300 }, k1);
  await t2.verify({ type: 'jwt', token: tok() });
  server.status = 500;
  c.advance(120_000);
  await t2.verify({ type: 'jwt', token: tok() });
  server.status = 200;
  assert.throws(() => new OidcTrust(config({ jwks_uri: 'http://issuer.example.com/jwks' })), /https/);
});

test('OIDC: inline JWKS; HMAC/oct keys in a JWKS are ignored; symmetric algorithms refused in config', async () => {
  const trust = new OidcTrust(config({ jwks_uri: undefined, jwks: { keys: [k2.jwk, { kty: 'oct', k: 'c2VjcmV0', kid: 'h' }] } as unknown as OidcTrustConfig['jwks'] }), { clock, fetch: LOCAL });
  const v = await trust.verify({ type: 'jwt', token: sign(claims(), k2) });
  assert.equal(v.identityId, 'workload:github/acme/api');
  const ed = makeKey('ed', 'EdDSA');
  const edTrust = new OidcTrust(config({ jwks_uri: undefined, jwks: { keys: [ed.jwk] } as unknown as OidcTrustConfig['jwks'] }), { clock, fetch: LOCAL });
  assert.equal((await edTrust.verify({ type: 'jwt', token: sign(claims(), ed) })).evidence.alg, 'EdDSA');
  assert.throws(() => new OidcTrust(config({ algorithms: ['RS256', 'HS256'] })), /asymmetric/);
  assert.throws(() => new OidcTrust(config({ algorithms: ['none'] })), /asymmetric/);
  assert.throws(() => new OidcTrust(config({ identity: 'workload:{repo' })), /placeholder/);
});

// ---------------------------------------------------------------------------------------------
// The JWT attack suite: every case refused, each with its precise reason.

test('attack: alg none (any casing), with and without signature', async () => {
  const trust = new OidcTrust(config(), { clock, fetch: LOCAL });
  for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
    const tok = unsigned({ alg, kid: 'k1' }, claims());
    await refused(trust.verify({ type: 'jwt', token: tok }), 'algorithm_not_allowed', tok);
  }
  const withSig = unsigned({ alg: 'none' }, claims()) + 'AAAA';
  await refused(trust.verify({ type: 'jwt', token: withSig }), 'algorithm_not_allowed');
});

test('attack: algorithm confusion (HS256 keyed with the RSA public key)', async () => {
  const trust = new OidcTrust(config(), { clock, fetch: LOCAL });
  const pem = k1.publicKey.export({ type: 'spki', format: 'pem' });
  for (const alg of ['HS256', 'HS384', 'HS512']) {
    const input = `${b64({ alg, kid: 'k1', typ: 'JWT' })}.${b64(claims())}`;
    const mac = createHmac(`sha${alg.slice(2)}`, pem).update(input).digest('base64url');
    await refused(trust.verify({ type: 'jwt', token: `${input}.${mac}` }), 'algorithm_not_allowed');
  }
  // Also with the JWK's modulus bytes as the secret and no kid.
  const input = `${b64({ alg: 'HS256' })}.${b64(claims())}`;
  const mac = createHmac('sha256', Buffer.from(k1.jwk.n as string, 'base64url')).update(input).digest('base64url');
  await refused(trust.verify({ type: 'jwt', token: `${input}.${mac}` }), 'algorithm_not_allowed');
});

test('attack: an algorithm not configured for the trust (PS256), and alg/key family mismatch', async () => {
  const trust = new OidcTrust(config(), { clock, fetch: LOCAL });
  const ps = makeKey('k1', 'PS256');
  await refused(trust.verify({ type: 'jwt', token: sign(claims(), ps) }), 'algorithm_not_allowed');
  // ES256 header naming the RSA key's kid: no EC key has that kid.
  const es = { ...k2, kid: 'k1' };
  await refused(trust.verify({ type: 'jwt', token: sign(claims(), es) }), 'unknown_kid');
});

test('attack: kid injection (path traversal, SQL-ish, control characters, oversized)', async () => {
  server.setKeys([k1.jwk]);
  const trust = new OidcTrust(config(), { clock, fetch: LOCAL });
  await trust.verify({ type: 'jwt', token: sign(claims(), k1) });
  const before = server.requests;
  for (const kid of ['../../../../../etc/passwd', '/dev/null', "' OR 1=1 --", 'k1"; DROP TABLE crypto_keys; --', 'k1\u0000', '${jndi:ldap://x}']) {
    const tok = sign(claims(), { ...attacker, kid });
    // eslint-disable-next-line no-control-regex -- the test sorts kids holding a control character
    await refused(trust.verify({ type: 'jwt', token: tok }), /[\x00-\x1f]/.test(kid) ? 'malformed' : 'unknown_kid');
  }
  await refused(trust.verify({ type: 'jwt', token: sign(claims(), { ...attacker, kid: 'x'.repeat(300) }) }), 'malformed');
  await refused(trust.verify({ type: 'jwt', token: sign(claims(), { ...attacker, kid: 'k\n1' }) }), 'malformed');
  await refused(trust.verify({ type: 'jwt', token: signRaw({ alg: 'RS256', kid: 42 }, claims(), attacker) }), 'malformed');
  assert.ok(server.requests - before <= 1, 'kid floods are rate-limited');
});

test('attack: key-carrying headers jku / x5u / jwk / x5c are refused, even when self-consistent', async () => {
  const trust = new OidcTrust(config(), { clock, fetch: LOCAL });
  const evil = await startJwksServer([attacker.jwk]);
  try {
    const cases: Record<string, unknown>[] = [
      { jku: evil.url },
      { x5u: 'https://evil.example/cert.pem' },
      { jwk: attacker.jwk },
      { x5c: ['MIIBszCCAVmgAwIBAgIUQ'] },
    ];
    for (const extra of cases) {
      const tok = sign(claims(), attacker, extra);
      await refused(trust.verify({ type: 'jwt', token: tok }), 'forbidden_header', tok);
    }
    assert.equal(evil.requests, 0, 'the broker never fetched from jku');
  } finally {
    await evil.close();
  }
});

test('attack: signature by another key under the real kid; tampered payload; stripped signature', async () => {
  const trust = new OidcTrust(config(), { clock, fetch: LOCAL });
  await refused(trust.verify({ type: 'jwt', token: sign(claims(), attacker) }), 'bad_signature');
  const good = sign(claims(), k1);
  const [h, , s] = good.split('.');
  const tampered = `${h}.${b64(claims({ repository: 'acme/payments' }))}.${s}`;
  await refused(trust.verify({ type: 'jwt', token: tampered }), 'bad_signature');
  const stripped = good.slice(0, good.lastIndexOf('.') + 1);
  await refused(trust.verify({ type: 'jwt', token: stripped }), 'bad_signature');
  const garbageSig = `${good.slice(0, good.lastIndexOf('.') + 1)}AAAA`;
  await refused(trust.verify({ type: 'jwt', token: garbageSig }), 'bad_signature');
});

test('attack: time claims — expired, not yet valid, issued in the future; leeway honoured', async () => {
  const trust = new OidcTrust(config(), { clock, fetch: LOCAL });
  const now = nowSeconds(clock);
  await refused(trust.verify({ type: 'jwt', token: sign(claims({ exp: now - 31 }), k1) }), 'expired');
  await trust.verify({ type: 'jwt', token: sign(claims({ exp: now - 20 }), k1) }); // within leeway
  await refused(trust.verify({ type: 'jwt', token: sign(claims({ nbf: now + 120 }), k1) }), 'not_yet_valid');
  await refused(trust.verify({ type: 'jwt', token: sign(claims({ iat: now + 3600, nbf: undefined }), k1) }), 'issued_in_future');
  await trust.verify({ type: 'jwt', token: sign(claims({ iat: now + 20 }), k1) });
  await refused(trust.verify({ type: 'jwt', token: sign(claims({ exp: undefined }), k1) }), 'missing_claim');
  await refused(trust.verify({ type: 'jwt', token: sign(claims({ exp: '9999999999' }), k1) }), 'malformed');
});

test('attack: wrong issuer, wrong or missing audience', async () => {
  const trust = new OidcTrust(config(), { clock, fetch: LOCAL });
  await refused(trust.verify({ type: 'jwt', token: sign(claims({ iss: 'https://evil.example' }), k1) }), 'unknown_issuer');
  await refused(trust.verify({ type: 'jwt', token: sign(claims({ iss: undefined }), k1) }), 'unknown_issuer');
  await refused(trust.verify({ type: 'jwt', token: sign(claims({ aud: 'other-service' }), k1) }), 'wrong_audience');
  await refused(trust.verify({ type: 'jwt', token: sign(claims({ aud: ['a', 'b'] }), k1) }), 'wrong_audience');
  await refused(trust.verify({ type: 'jwt', token: sign(claims({ aud: undefined }), k1) }), 'missing_claim');
  const ok = await trust.verify({ type: 'jwt', token: sign(claims({ aud: ['x', 'portcullis'] }), k1) });
  assert.equal(ok.evidence.audience, 'portcullis');
});

test('attack: oversized token refused before parsing (no JWKS fetch)', async () => {
  const c = new ManualClock();
  const trust = new OidcTrust(config(), { clock: c, fetch: LOCAL });
  const before = server.requests;
  const big = sign(claims({ pad: 'x'.repeat(MAX_TOKEN_BYTES) }), k1);
  await refused(trust.verify({ type: 'jwt', token: big }), 'token_too_large');
  await refused(trust.verify({ type: 'jwt', token: 'a'.repeat(10_000_000) }), 'token_too_large');
  assert.equal(server.requests, before);
});

test('attack: unknown crit header and b64', async () => {
  const trust = new OidcTrust(config(), { clock, fetch: LOCAL });
  await refused(trust.verify({ type: 'jwt', token: sign(claims(), k1, { crit: ['exp'], exp: 1 }) }), 'unknown_crit');
  await refused(trust.verify({ type: 'jwt', token: sign(claims(), k1, { crit: ['b64'], b64: false }) }), 'unknown_crit');
  await refused(trust.verify({ type: 'jwt', token: sign(claims(), k1, { crit: [] }) }), 'unknown_crit');
});

test('attack: required claims missing or different', async () => {
  const trust = new OidcTrust(config(), { clock, fetch: LOCAL });
  await refused(trust.verify({ type: 'jwt', token: sign(claims({ repository_owner: undefined }), k1) }), 'claim_mismatch');
  await refused(trust.verify({ type: 'jwt', token: sign(claims({ repository_owner: 'evil' }), k1) }), 'claim_mismatch');
  await refused(trust.verify({ type: 'jwt', token: sign(claims({ repository_owner: ['acme'] }), k1) }), 'claim_mismatch');
});

test('attack: identity template injection', async () => {
  const trust = new OidcTrust(config(), { clock, fetch: LOCAL });
  for (const repository of ['acme/../admin', '../admin', 'acme/api x', 'acme//api', '/acme', 'acme/', 'acme/.', 'a\nb', '', 'x'.repeat(300), 'ac{me}']) {
    await refused(trust.verify({ type: 'jwt', token: sign(claims({ repository }), k1) }), 'bad_identity_claim');
  }
  await refused(trust.verify({ type: 'jwt', token: sign(claims({ repository: 42 }), k1) }), 'bad_identity_claim');
  await refused(trust.verify({ type: 'jwt', token: sign(claims({ repository: undefined }), k1) }), 'bad_identity_claim');
  const v = await trust.verify({ type: 'jwt', token: sign(claims({ repository: 'acme/api.v2_x-y' }), k1) });
  assert.equal(v.identityId, 'workload:github/acme/api.v2_x-y');
});

test('attack: malformed tokens and a session token presented as a proof', async () => {
  const trust = new OidcTrust(config(), { clock, fetch: LOCAL });
  for (const token of ['', 'abc', 'a.b', 'a.b.c.d', '!!.??.##', `${b64('not json')}.${b64(claims())}.AAAA`, `${b64([1])}.${b64(claims())}.AAAA`, `${b64({ alg: 'RS256' })}.${b64('[]')}.AAAA`]) {
    await refused(trust.verify({ type: 'jwt', token }), 'malformed');
  }
  await refused(trust.verify({ type: 'jwt', token: sign(claims(), k1, { typ: 'pcx-session+jwt' }) }), 'wrong_token_type');
  await refused(trust.verify({ type: 'jwt', token: 42 as unknown as string }), 'malformed');
});
