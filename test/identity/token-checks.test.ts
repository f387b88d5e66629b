// Item 8.3 (trust-level token checks) and 8.24 (one JWT validation path): `max_token_lifetime`
// and `replay: reject` per trust, and the same time rules (iat never in the future) for the
// workload OIDC trust, JWT-SVIDs and session tokens. Human ID tokens: test/access/human-sso.test.ts.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ManualClock, nowSeconds } from '../../src/common/clock.ts';
import { OidcTrust } from '../../src/identity/trusts/oidc/oidc.ts';
import { SpiffeTrust } from '../../src/identity/trusts/spiffe/spiffe.ts';
import { JtiReplayStore } from '../../src/identity/replay.ts';
import { SessionService } from '../../src/identity/sessions.ts';
import { openKeyring } from '../crypto/helpers.ts';
import { openDatabase } from '../../src/store/sqlite/db.ts';
import type { Db } from '../../src/store/sqlite/db.ts';
import type { OidcTrustConfig, SpiffeTrustConfig } from '../../src/config/types.ts';
import { parseConfig, ConfigError } from '../../src/config/load.ts';
import { makeKey, sign, refused, identityStore } from './helpers.ts';

const ISSUER = 'https://ci.example.test';
const key = makeKey('k1', 'ES256');
const svidKey = makeKey('svid-1', 'ES256');
const clock = new ManualClock(Date.parse('2026-05-01T12:00:00Z'));
const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function tmpDb(): { path: string; db: Db } {
  const dir = mkdtempSync(join(tmpdir(), 'pcx-tokchk-'));
  dirs.push(dir);
  const path = join(dir, 'portcullis.db');
  return { path, db: openDatabase(path) };
}

function oidc(over: Partial<OidcTrustConfig> = {}, replay?: JtiReplayStore): OidcTrust {
  const cfg: OidcTrustConfig = {
    name: 'ci', kind: 'oidc', issuer: ISSUER, jwks: { keys: [key.jwk as never] }, audiences: ['portcullis'], algorithms: ['ES256'],
    require: {}, identity: 'workload:github/{repository}', identity_kind: 'workload', attributes: [], leeway_seconds: 30, ...over,
  };
  return new OidcTrust(cfg, { clock, ...(replay && { replay }) });
}

function spiffe(over: Partial<SpiffeTrustConfig> = {}, replay?: JtiReplayStore): SpiffeTrust {
  const cfg: SpiffeTrustConfig = { name: 'mesh', kind: 'spiffe', trust_domain: 'example.org', bundle: 'inline', audiences: ['portcullis'], identity_kind: 'workload', leeway_seconds: 30, ...over };
  return new SpiffeTrust(cfg, { keys: [{ ...svidKey.jwk, use: 'jwt-svid' }] }, { clock, ...(replay && { replay }) });
}

const now = () => nowSeconds(clock);
const ciToken = (over: Record<string, unknown> = {}) => sign({ iss: ISSUER, aud: 'portcullis', sub: 'repo:acme/api', repository: 'acme/api', jti: randomBytes(8).toString('hex'), iat: now(), exp: now() + 300, ...over }, key);
const svid = (over: Record<string, unknown> = {}) => sign({ sub: 'spiffe://example.org/ns/prod/sa/api', aud: 'portcullis', jti: randomBytes(8).toString('hex'), iat: now(), exp: now() + 300, ...over }, svidKey);
const jwt = (token: string) => ({ type: 'jwt' as const, token });

test('max_token_lifetime: default 24 h; exp - iat above the limit is refused on OIDC and JWT-SVID', async () => {
  const day = 24 * 3600;
  for (const [name, trust, make] of [['oidc', oidc(), ciToken], ['spiffe', spiffe(), svid]] as const) {
    await trust.verify(jwt(make({ iat: now(), exp: now() + day }))); // exactly the limit: accepted
    await refused(trust.verify(jwt(make({ iat: now(), exp: now() + day + 1 }))), 'lifetime_too_long');
    await refused(trust.verify(jwt(make({ iat: now() - 2 * day, exp: now() + 60 }))), 'lifetime_too_long'); // minted long ago, still valid
    await refused(trust.verify(jwt(make({ iat: now(), exp: now() + 365 * day }))), 'lifetime_too_long');
    // Without iat, what is left of it counts (from nbf, else now).
    await refused(trust.verify(jwt(make({ iat: undefined, exp: now() + day + 120 }))), 'lifetime_too_long');
    await refused(trust.verify(jwt(make({ iat: undefined, nbf: now() - day, exp: now() + 60 }))), 'lifetime_too_long');
    await trust.verify(jwt(make({ iat: undefined, exp: now() + 600 })));
    assert.ok(name);
  }
  // A shorter configured limit.
  const short = oidc({ max_token_lifetime_seconds: 600 });
  await short.verify(jwt(ciToken({ exp: now() + 600 })));
  await refused(short.verify(jwt(ciToken({ exp: now() + 601 }))), 'lifetime_too_long');
  await refused(spiffe({ max_token_lifetime_seconds: 300 }).verify(jwt(svid({ exp: now() + 301 }))), 'lifetime_too_long');
});

test('iat in the future (beyond leeway) is refused on every workload path and for session tokens', async () => {
  for (const [trust, make] of [[oidc(), ciToken], [spiffe(), svid]] as const) {
    await trust.verify(jwt(make({ iat: now() + 30 }))); // within leeway
    await refused(trust.verify(jwt(make({ iat: now() + 31, exp: now() + 300 }))), 'issued_in_future');
    await refused(trust.verify(jwt(make({ iat: now() + 86_400, exp: now() + 86_400 + 60 }))), 'issued_in_future');
    await refused(trust.verify(jwt(make({ iat: 'soon' }))), 'malformed');
  }
  // auth_time in the future is refused too; absent, the auth age is unknown (never iat).
  await refused(oidc().verify(jwt(ciToken({ auth_time: now() + 600 }))), 'issued_in_future');
  assert.equal((await oidc().verify(jwt(ciToken({ iat: now() - 5 })))).facts.auth_time, 0);

  const { db } = tmpDb();
  const keyring = await openKeyring(db, { masterKey: randomBytes(32), clock });
  const sessions = SessionService.open({ repository: identityStore(db).sessions, keyring, clock, issuer: 'https://broker.test' });
  const facts = { method: 'oidc', trust: 'ci', mfa: false, assurance: 'high', auth_time: now() };
  const base = { iss: 'https://broker.test', aud: 'https://broker.test', sub: 'workload:x', jti: 'j1', authn: facts };
  const future = await keyring.signJwt('session', { ...base, iat: now() + 3600, exp: now() + 3700 }, { typ: 'pcx-session+jwt' });
  await refused(sessions.verify(future), 'issued_in_future');
  // A session lasting longer than the 15-minute cap is refused even when signed by the session key.
  const long = await keyring.signJwt('session', { ...base, jti: 'j2', iat: now(), exp: now() + 3600 }, { typ: 'pcx-session+jwt' });
  await refused(sessions.verify(long), 'lifetime_too_long');
  db.close();
});

test('replay: reject refuses a jti seen before (OIDC and JWT-SVID), and one without jti', async () => {
  const { db } = tmpDb();
  const store = new JtiReplayStore(identityStore(db).replay);
  const trust = oidc({ replay: 'reject' }, store);
  const t = ciToken({ jti: 'once' });
  await trust.verify(jwt(t));
  await refused(trust.verify(jwt(t)), 'replayed');
  // A different token carrying the same jti is the same replay.
  await refused(trust.verify(jwt(ciToken({ jti: 'once', exp: now() + 200 }))), 'replayed');
  await refused(trust.verify(jwt(ciToken({ jti: undefined }))), 'missing_claim');
  await refused(trust.verify(jwt(ciToken({ jti: '' }))), 'missing_claim');
  await refused(trust.verify(jwt(ciToken({ jti: 42 }))), 'missing_claim');
  // replay is per trust: the same jti at another trust is its own.
  const mesh = spiffe({ replay: 'reject' }, store);
  const s = svid({ jti: 'once' });
  await mesh.verify(jwt(s));
  await refused(mesh.verify(jwt(s)), 'replayed');
  // Default (allow): the same token twice is fine.
  const lax = oidc();
  const t2 = ciToken();
  await lax.verify(jwt(t2));
  await lax.verify(jwt(t2));
  // A token that fails another check does not reach the replay store.
  const sizeBefore = await store.size();
  await refused(trust.verify(jwt(ciToken({ jti: 'bad-aud', aud: 'other' }))), 'wrong_audience');
  assert.equal(await store.size(), sizeBefore);
  await trust.verify(jwt(ciToken({ jti: 'bad-aud' })));
  // Configuring replay: reject without a store is a programming error, caught at construction.
  assert.throws(() => oidc({ replay: 'reject' }), /replay store/);
  db.close();
});

test('replay: persisted across a restart; expired entries are pruned', async () => {
  const { path, db } = tmpDb();
  const t = ciToken({ jti: 'persist', exp: now() + 300 });
  await oidc({ replay: 'reject' }, new JtiReplayStore(identityStore(db).replay)).verify(jwt(t));
  db.close();
  const db2 = openDatabase(path);
  const store = new JtiReplayStore(identityStore(db2).replay);
  await refused(oidc({ replay: 'reject' }, store).verify(jwt(t)), 'replayed');
  assert.equal(await store.size(), 1);
  // Once the token has expired (plus leeway), its entry goes; the token itself is refused as expired.
  clock.advance(400_000);
  assert.equal(await store.prune(now()), 1);
  assert.equal(await store.size(), 0);
  await refused(oidc({ replay: 'reject' }, store).verify(jwt(t)), 'expired');
  // Pruning also happens on its own as new tokens arrive.
  const trust = oidc({ replay: 'reject' }, store);
  await trust.verify(jwt(ciToken({ jti: 'a', exp: now() + 10 })));
  clock.advance(120_000);
  await trust.verify(jwt(ciToken({ jti: 'b' })));
  assert.equal(await store.size(), 1, 'the expired entry of "a" was swept');
  db2.close();
});

test('config: max_token_lifetime and replay are validated and name the field', () => {
  const yaml = (extra: string) => `
listen: { host: 127.0.0.1, port: 0 }
data_dir: ./data
boundaries: [platform]
trusts:
  - name: ci
    kind: oidc
    issuer: ${ISSUER}
    jwks: { keys: [${JSON.stringify(key.jwk)}] }
    audiences: [portcullis]
    identity: "workload:github/{repository}"
${extra}`;
  const ok = parseConfig(yaml('    max_token_lifetime: 1h\n    replay: reject\n'), '/tmp', {}).config.trusts[0] as OidcTrustConfig;
  assert.equal(ok.max_token_lifetime_seconds, 3600);
  assert.equal(ok.replay, 'reject');
  const dflt = parseConfig(yaml(''), '/tmp', {}).config.trusts[0] as OidcTrustConfig;
  assert.equal(dflt.max_token_lifetime_seconds, 86_400);
  assert.equal(dflt.replay, 'allow');
  for (const [extra, path] of [
    ['    replay: sometimes\n', 'trusts[0].replay'],
    ['    max_token_lifetime: 0s\n', 'trusts[0].max_token_lifetime'],
    ['    max_token_lifetime: 400d\n', 'trusts[0].max_token_lifetime'],
    ['    max_token_lifetime: forever\n', 'trusts[0].max_token_lifetime'],
  ] as const) {
    assert.throws(() => parseConfig(yaml(extra), '/tmp', {}), (e: unknown) => e instanceof ConfigError && e.message.includes(path), extra);
  }
});
