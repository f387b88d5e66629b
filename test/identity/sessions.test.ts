import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { openDatabase } from '../../src/store/sqlite/db.ts';
import { ManualClock, nowSeconds } from '../../src/common/clock.ts';
import { openKeyring } from '../crypto/helpers.ts';
import { SessionService, SESSION_TTL_CAP_MS } from '../../src/identity/sessions.ts';
import type { AuthnFacts } from '../../src/identity/types.ts';
import { refused, signRaw, makeKey, b64, identityStore } from './helpers.ts';

const facts: AuthnFacts = { method: 'oidc', trust: 'ci', mfa: false, assurance: 'high', auth_time: 1 };

async function setup(ttlMs = 10 * 60_000) {
  const clock = new ManualClock();
  const db = openDatabase(':memory:');
  const keyring = await openKeyring(db, { masterKey: randomBytes(32), clock });
  const sessions = SessionService.open({ repository: identityStore(db).sessions, keyring, clock, issuer: 'https://broker.example', ttlMs });
  return { clock, db, keyring, sessions };
}

test('sessions: claims are identity + authn facts only, typ and EdDSA, TTL capped at 15 min', async () => {
  const { sessions, clock } = await setup(60 * 60_000);
  assert.equal(sessions.ttlMs, SESSION_TTL_CAP_MS);
  const s = await sessions.issue({ identityId: 'workload:github/acme/api', facts });
  const header = decodeProtectedHeader(s.token);
  assert.equal(header.alg, 'EdDSA');
  assert.equal(header.typ, 'pcx-session+jwt');
  const c = decodeJwt(s.token);
  assert.deepEqual(Object.keys(c).sort(), ['aud', 'authn', 'exp', 'iat', 'iss', 'jti', 'sub']);
  assert.equal(c.aud, 'https://broker.example', 'aud: the broker itself');
  assert.equal(c.exp! - c.iat!, 15 * 60);
  assert.equal(s.expiresAt, c.exp! * 1000);
  const v = await sessions.verify(s.token);
  assert.equal(v.identityId, 'workload:github/acme/api');
  assert.deepEqual(v.facts, facts);
  // Asking for more than configured gets the configured TTL.
  const short = await setup(5 * 60_000);
  const s2 = await short.sessions.issue({ identityId: 'x', facts }, 60 * 60_000);
  assert.equal(s2.claims.exp - s2.claims.iat, 300);
  clock.advance(15 * 60_000 + 5_001);
  await refused(sessions.verify(s.token), 'expired');
});

test('sessions: revoke by jti and by identity, persisted across restarts', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pcx-sess-'));
  const path = join(dir, 'p.db');
  const master = randomBytes(32);
  const clock = new ManualClock();
  let db = openDatabase(path);
  let keyring = await openKeyring(db, { masterKey: master, clock });
  let sessions = SessionService.open({ repository: identityStore(db).sessions, keyring, clock, issuer: 'https://broker.example' });
  const a = await sessions.issue({ identityId: 'agent:bot', facts });
  const b = await sessions.issue({ identityId: 'agent:bot', facts });
  const other = await sessions.issue({ identityId: 'agent:other', facts });
  await sessions.verify(a.token); // now cached
  await sessions.revokeJti(a.jti, { expiresAt: a.claims.exp });
  await refused(sessions.verify(a.token), 'revoked');
  await sessions.verify(b.token);
  await sessions.revokeIdentity('agent:bot');
  await refused(sessions.verify(b.token), 'revoked');
  await sessions.verify(other.token);
  // Same second as the revocation: a new login still works.
  const c = await sessions.issue({ identityId: 'agent:bot', facts });
  await sessions.verify(c.token);
  db.close();
  db = openDatabase(path);
  keyring = await openKeyring(db, { masterKey: master, clock });
  sessions = SessionService.open({ repository: identityStore(db).sessions, keyring, clock, issuer: 'https://broker.example' });
  await refused(sessions.verify(a.token), 'revoked');
  await refused(sessions.verify(b.token), 'revoked');
  await sessions.verify(c.token);
  clock.advance(20 * 60_000);
  assert.equal(await sessions.purgeExpired(), 1);
});

test('sessions: a rotated key still verifies live tokens; an immediate rotation kills them (cache too)', async () => {
  const { sessions, keyring, clock } = await setup();
  const s = await sessions.issue({ identityId: 'x', facts });
  await sessions.verify(s.token);
  await keyring.rotate('session');
  const s2 = await sessions.issue({ identityId: 'x', facts });
  assert.notEqual(decodeProtectedHeader(s2.token).kid, decodeProtectedHeader(s.token).kid);
  await sessions.verify(s.token);
  await sessions.verify(s2.token);
  await keyring.rotate('session', { immediate: true });
  clock.advance(1);
  await refused(sessions.verify(s2.token), 'unknown_kid');
});

test('sessions: forged, foreign and tampered tokens are refused', async () => {
  const { sessions, keyring, clock } = await setup();
  const s = await sessions.issue({ identityId: 'x', facts });
  const [h, , sig] = s.token.split('.');
  await refused(sessions.verify(`${h}.${b64({ ...s.claims, sub: 'user:admin' })}.${sig}`), 'bad_signature');
  // A token signed by another purpose's key (same keyring) is not a session token.
  const tok = await keyring.signJwt('token', { ...s.claims }, { typ: 'pcx-session+jwt' });
  await refused(sessions.verify(tok), 'unknown_kid');
  const wrongTyp = await keyring.signJwt('session', { ...s.claims }, { typ: 'JWT' });
  await refused(sessions.verify(wrongTyp), 'wrong_token_type');
  const foreign = await keyring.signJwt('session', { ...s.claims, iss: 'https://other' }, { typ: 'pcx-session+jwt' });
  await refused(sessions.verify(foreign), 'unknown_issuer');
  const noAuthn = await keyring.signJwt('session', { ...s.claims, authn: { method: 'root' } }, { typ: 'pcx-session+jwt' });
  await refused(sessions.verify(noAuthn), 'malformed');
  const ed = makeKey(decodeProtectedHeader(s.token).kid as string, 'EdDSA');
  await refused(sessions.verify(signRaw({ alg: 'EdDSA', kid: ed.kid, typ: 'pcx-session+jwt' }, { ...s.claims }, ed)), 'bad_signature');
  await refused(sessions.verify(signRaw({ alg: 'none', typ: 'pcx-session+jwt' }, { ...s.claims }, ed)), 'algorithm_not_allowed');
  void nowSeconds(clock);
});

test('sessions: the verification cache is bounded, and evicted tokens are verified again in full', async () => {
  const clock = new ManualClock();
  const db = openDatabase(':memory:');
  const keyring = await openKeyring(db, { masterKey: randomBytes(32), clock });
  const sessions = SessionService.open({ repository: identityStore(db).sessions, keyring, clock, issuer: 'https://b', cacheSize: 3 });
  const tokens = await Promise.all([1, 2, 3, 4, 5].map(() => sessions.issue({ identityId: 'x', facts })));
  assert.equal(sessions.cachedTokens, 0, 'issuing does not cache: the first use verifies in full');
  for (const t of tokens) {
    assert.equal((await sessions.verify(t.token)).jti, t.jti);
    assert.ok(sessions.cachedTokens <= 3, `cache holds ${sessions.cachedTokens} > 3 tokens`);
  }
  assert.equal(sessions.cachedTokens, 3);
  // Evicted (the first two) and cached tokens alike still verify, and the bound holds.
  for (const t of tokens) assert.equal((await sessions.verify(t.token)).identityId, 'x');
  assert.equal(sessions.cachedTokens, 3);
  // Revocation reaches evicted and cached tokens alike.
  await sessions.revokeJti(tokens[0]!.jti);
  await sessions.revokeJti(tokens[4]!.jti);
  await refused(sessions.verify(tokens[0]!.token), 'revoked');
  await refused(sessions.verify(tokens[4]!.token), 'revoked');
  assert.equal((await sessions.verify(tokens[2]!.token)).jti, tokens[2]!.jti);
});

test('sessions: a token never seen before is refused once expired — on its first use, not only from the cache', async () => {
  const { sessions, clock, db, keyring } = await setup(10 * 60_000);
  const unused = await sessions.issue({ identityId: 'x', facts });
  const used = await sessions.issue({ identityId: 'x', facts });
  assert.equal((await sessions.verify(used.token)).jti, used.jti, 'positive control: a live token verifies');
  clock.advance(10 * 60_000 + 6_000); // past exp + leeway (5 s)
  await refused(sessions.verify(unused.token), 'expired', unused.token);
  await refused(sessions.verify(used.token), 'expired', used.token);
  // A restarted broker (empty cache) refuses it too.
  const restarted = SessionService.open({ repository: identityStore(db).sessions, keyring, clock, issuer: 'https://broker.example' });
  await refused(restarted.verify(used.token), 'expired');
  // Tokens signed with the live session key but already expired, or without exp: never accepted.
  const now = nowSeconds(clock);
  const sign = (claims: Record<string, unknown>) => keyring.signJwt('session', claims, { typ: 'pcx-session+jwt' });
  for (const exp of [now - 6, now - 3600, 0, -1]) {
    const t = await sign({ ...unused.claims, iat: Math.min(now - 60, exp - 60), exp });
    await refused(restarted.verify(t), 'expired');
  }
  const { exp: _exp, ...noExp } = unused.claims;
  await refused(restarted.verify(await sign({ ...noExp, iat: now })), 'missing_claim');
  // positive control with the same signing path: a live claim set verifies
  const live = await sign({ ...unused.claims, iat: now, exp: now + 60 });
  assert.equal((await restarted.verify(live)).identityId, 'x');
});

test('sessions: a second identity-wide revocation in the same second covers tokens minted after the first', async () => {
  const { sessions } = await setup();
  await sessions.revokeIdentity('agent:bot');
  // Re-admitted at once: stamped one second past the cut-off, so it works…
  const again = await sessions.issue({ identityId: 'agent:bot', facts });
  await sessions.verify(again.token);
  // …until the next revocation, even one within the same second (a Shared Signals credential-change right after a session-revoked).
  await sessions.revokeIdentity('agent:bot');
  await refused(sessions.verify(again.token), 'revoked');
  await sessions.verify((await sessions.issue({ identityId: 'agent:bot', facts })).token);
});
