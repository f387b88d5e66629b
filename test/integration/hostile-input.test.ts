// Hostile tokens and bodies at the HTTP edge: every one refused with a clear 4xx, logged where it
// is an authentication attempt, and nothing persisted half-way.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { startHarness } from './harness.ts';
import type { Harness } from './harness.ts';

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
const rawKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
/** Signs whatever header we like (jose itself refuses to produce some of these). */
function signRaw(header: Record<string, unknown>, claims: Record<string, unknown>): string {
  const input = `${b64(header)}.${b64(claims)}`;
  return `${input}.${sign('sha256', Buffer.from(input), { key: rawKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
}

describe('hostile input', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(async () => h.close());

  it('JWT attacks are refused with a generic 401 and logged with the precise reason', async () => {
    const good = await h.ciToken();
    const [head, body] = good.split('.');
    const claims = JSON.parse(Buffer.from(body!, 'base64url').toString());
    const attacker = await generateKeyPair('ES256');
    const attackerJwk = await exportJWK(attacker.publicKey);
    const signWith = (hdr: Record<string, unknown>, c: Record<string, unknown> = claims) =>
      new SignJWT(c).setProtectedHeader({ alg: 'ES256', ...hdr }).sign(attacker.privateKey);
    const now = Math.floor(h.clock.now() / 1000);
    const cases: [string, string, string][] = [
      ['alg none', `${b64({ alg: 'none', typ: 'JWT' })}.${body}.`, 'algorithm_not_allowed'],
      ['signature stripped', `${head}.${body}.`, 'bad_signature'],
      ['payload tampered', `${head}.${b64({ ...claims, repository: 'acme/admin' })}.${good.split('.')[2]}`, 'bad_signature'],
      ['HMAC with the public key (algorithm confusion)', `${b64({ alg: 'HS256', kid: 'ci-1' })}.${body}.${'A'.repeat(43)}`, 'algorithm_not_allowed'],
      ['embedded jwk', await signWith({ kid: 'ci-1', jwk: attackerJwk }), 'forbidden_header'],
      ['jku injection', await signWith({ kid: 'ci-1', jku: 'http://127.0.0.1:1/jwks' }), 'forbidden_header'],
      ['x5u injection', await signWith({ kid: 'ci-1', x5u: 'http://127.0.0.1:1/cert' }), 'forbidden_header'],
      ['kid injection', await signWith({ kid: '../../../dev/null' }), 'unknown_kid'],
      ['attacker key, right kid', await signWith({ kid: 'ci-1' }), 'bad_signature'],
      ['unknown crit', signRaw({ alg: 'ES256', kid: 'ci-1', crit: ['exp-x'], 'exp-x': 1 }, claims), 'unknown_crit'],
      ['expired', await h.ciToken({}, { expiresInS: -120 }), 'expired'],
      ['not yet valid', await h.ciToken({ nbf: now + 600 }), 'not_yet_valid'],
      ['wrong audience', await h.ciToken({ aud: 'someone-else' }), 'wrong_audience'],
      ['wrong issuer', await signWith({ kid: 'ci-1' }, { ...claims, iss: 'https://evil.example' }), 'unknown_issuer'],
      ['required claim mismatch', await h.ciToken({ repository_owner: 'evil' }), 'claim_mismatch'],
      ['oversized', `${head}.${b64({ ...claims, pad: 'x'.repeat(20_000) })}.${good.split('.')[2]}`, 'token_too_large'],
      ['garbage', 'not.a.jwt', 'malformed'],
    ];
    const audit = h.running.broker.audit;
    await audit.flush();
    const base = (await audit.head('authn')).seq;
    for (const [name, token, reason] of cases) {
      const r = await h.post('/v1/auth/token', { token });
      assert.ok(r.status === 401 || (name === 'oversized' && r.status === 400), `${name}: got ${r.status}`);
      if (r.status === 401) assert.equal(r.body.detail, 'authentication failed', `${name}: the caller learns nothing`);
      await audit.flush();
      const events = await audit.query({ stream: 'authn', afterSeq: base });
      const last = events.at(-1)!;
      if (r.status === 401) {
        assert.equal(last.type, 'authn.failure', name);
        assert.equal(last.payload.reason, reason, `${name}: logged reason`);
        assert.ok(!JSON.stringify(last).includes(token.slice(0, 60)) || token.length < 20, `${name}: the token is not in the audit event`);
      }
    }
  });

  it('bad bodies get precise 4xx problems', async () => {
    const s = await h.loginCi();
    const raw = (body: string, type = 'application/json') =>
      fetch(`${h.url}/v1/authorize`, { method: 'POST', headers: { 'content-type': type, authorization: `Bearer ${s}` }, body }).then(async (r) => ({ status: r.status, type: r.headers.get('content-type'), body: (await r.json()) as Record<string, unknown> }));
    const malformed = await raw('{"action": ');
    assert.equal(malformed.status, 400);
    assert.equal(malformed.body.code, 'malformed_json');
    assert.match(String(malformed.type), /application\/problem\+json/);
    const unknown = await raw(JSON.stringify({ action: 'db.select', resource: { type: 'Database', id: 'orders' }, admin: true }));
    assert.equal(unknown.status, 400);
    assert.equal(unknown.body.field, 'body.admin');
    const wrongType = await raw(JSON.stringify({ action: 5, resource: { type: 'Database', id: 'orders' } }));
    assert.equal(wrongType.status, 400);
    assert.equal(wrongType.body.field, 'body.action');
    const missing = await raw(JSON.stringify({ action: 'db.select' }));
    assert.equal(missing.body.field, 'body.resource');
    const huge = await raw(JSON.stringify({ action: 'db.select', resource: { type: 'Database', id: 'x' }, context: { purpose: { reason: 'x'.repeat(2 << 20) } } }));
    assert.equal(huge.status, 413);
    const media = await raw('<action/>', 'application/xml');
    assert.equal(media.status, 415);
    const badPurpose = await raw(JSON.stringify({ action: 'db.select', resource: { type: 'Database', id: 'orders' }, context: { purpose: { reason: 1 } } }));
    assert.equal(badPurpose.body.field, 'context.purpose.reason');
  });

  it('rejected admin writes persist nothing', async () => {
    const admin = await h.admin();
    const before = (await h.get('/v1/identities', admin)).body.identities.length;
    const bad = [
      { id: 'no-prefix', kind: 'workload', boundary: 'application', environment: 'prod' },
      { id: 'workload:x', kind: 'robot', boundary: 'application', environment: 'prod' },
      { id: 'workload:y', kind: 'workload', boundary: 'moon', environment: 'prod' },
      { id: 'workload:z', kind: 'workload', boundary: 'application', environment: 'prod', extra: 1 },
    ];
    for (const b of bad) {
      const r = await h.post('/v1/identities', b, admin);
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.ok(r.body.field, 'names the field');
    }
    assert.equal((await h.get('/v1/identities', admin)).body.identities.length, before);
    const key = await h.post('/v1/apikeys', { identity: 'workload:github/acme/api', ttl: 'forever' }, admin);
    assert.equal(key.status, 400);
    assert.equal(key.body.field, 'body.ttl');
  });
});
