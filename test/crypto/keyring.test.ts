import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, statSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes, verify as edVerify, createPublicKey } from 'node:crypto';
import { jwtVerify, createLocalJWKSet } from 'jose';
import { openDatabase } from '../../src/store/sqlite/db.ts';
import { ManualClock } from '../../src/common/clock.ts';
import { KeyringError } from '../../src/crypto/keyring.ts';
import { openKeyring } from './helpers.ts';
import { loadMasterKey, MasterKeyError, parseMasterKey } from '../../src/crypto/masterkey.ts';
import { offlinePublicKeyResolver, offlinePublicKeyResolverForDataDir } from '../../src/crypto/offline.ts';
import { open, seal, DecryptionFailed } from '../../src/crypto/envelope.ts';

const tmp = () => mkdtempSync(join(tmpdir(), 'pcx-keyring-'));

test('envelope: round trip, aad binding, tamper and wrong key fail', () => {
  const k = randomBytes(32);
  const s = seal(k, Buffer.from('hello'), 'row:1');
  assert.equal(open(k, s, 'row:1').toString(), 'hello');
  assert.throws(() => open(k, s, 'row:2'), DecryptionFailed);
  assert.throws(() => open(randomBytes(32), s, 'row:1'), DecryptionFailed);
  const t = Buffer.from(s);
  t[t.length - 20]! ^= 1;
  assert.throws(() => open(k, t, 'row:1'), DecryptionFailed);
});

test('master key: env hex/base64, generated file is 0600 and stable, bad values refused', () => {
  const hex = randomBytes(32).toString('hex');
  assert.deepEqual(Buffer.from(loadMasterKey(tmp(), { PORTCULLIS_MASTER_KEY: hex }).key), Buffer.from(hex, 'hex'));
  const b64 = randomBytes(32).toString('base64');
  assert.equal(Buffer.from(parseMasterKey(b64, 'x')).toString('base64'), b64);
  assert.throws(() => parseMasterKey('short', 'x'), MasterKeyError);
  assert.throws(() => parseMasterKey('secret-value-'.repeat(5), 'x'), (e: Error) => !e.message.includes('secret-value'));
  const dir = tmp();
  const a = loadMasterKey(dir, {});
  assert.equal(a.created, true);
  assert.equal(statSync(join(dir, 'master.key')).mode & 0o777, 0o600);
  const b = loadMasterKey(dir, {});
  assert.equal(b.created, false);
  assert.deepEqual(b.key, a.key);
  chmodSync(join(dir, 'master.key'), 0o644);
  assert.throws(() => loadMasterKey(dir, {}), /chmod 600/);
});

test('keyring: private keys are encrypted at rest; wrong master key fails clearly', async () => {
  const dir = tmp();
  const path = join(dir, 'portcullis.db');
  const master = randomBytes(32);
  const db = openDatabase(path);
  const ring = await openKeyring(db, { masterKey: master, clock: new ManualClock() });
  const { signature, kid } = ring.sign('audit', Buffer.from('data'));
  // Extract the raw private scalar via a second keyring and check it is not in the file.
  const rows = db.prepare('SELECT private_sealed FROM crypto_keys').all() as { private_sealed: Uint8Array }[];
  assert.equal(rows.length, 3, 'one key per purpose (session, audit, token), made on open');
  db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
  const file = readFileSync(path);
  // pkcs8 DER of an Ed25519 key starts with this fixed prefix followed by the 32-byte seed.
  const pkcs8Prefix = Buffer.from('302e020100300506032b657004220420', 'hex');
  assert.equal(file.indexOf(pkcs8Prefix), -1, 'a PKCS#8 Ed25519 private key is stored in clear');
  const pub = createPublicKey({ key: ring.publicKeyResolver(kid) as import('node:crypto').JsonWebKey, format: 'jwk' });
  assert.ok(edVerify(null, Buffer.from('data'), pub, signature));
  db.close();

  const db2 = openDatabase(path);
  await assert.rejects(openKeyring(db2, { masterKey: randomBytes(32) }), (e: unknown) => e instanceof MasterKeyError && /does not match/.test((e as Error).message));
  const again = await openKeyring(db2, { masterKey: master });
  assert.equal(again.activeKey('audit').kid, kid);
  db2.close();
});

test('keyring: rotation overlap then retirement; audit keys resolve forever; offline read', async () => {
  const dir = tmp();
  const path = join(dir, 'portcullis.db');
  const clock = new ManualClock();
  const db = openDatabase(path);
  const ring = await openKeyring(db, { masterKey: randomBytes(32), clock, overlapMs: 20 * 60_000 });
  const k1 = ring.activeKey('token');
  const t1 = await ring.signJwt('token', { sub: 'x', exp: Math.floor(clock.now() / 1000) + 600 }, { typ: 'at+jwt' });
  await assert.rejects(ring.rotate('token', { overlapMs: 60_000 }), /at least/);
  const { active: k2, previous } = await ring.rotate('token');
  assert.notEqual(k2.kid, k1.kid);
  assert.equal(previous?.kid, k1.kid);
  assert.equal(previous?.status, 'retiring');
  // Old key verifies during the overlap and is published; the new one signs.
  assert.ok(ring.verificationKey(k1.kid, 'token'));
  assert.equal(ring.verificationKey(k1.kid, 'session'), undefined, 'purpose is bound to the key');
  const jwks = ring.publicJwks();
  assert.deepEqual(new Set(jwks.keys.map((k) => k.kid)), new Set([k1.kid, k2.kid]), 'the JWKS holds token keys only');
  for (const k of jwks.keys) {
    assert.equal(k.alg, 'EdDSA');
    assert.equal(k.use, 'sig');
    assert.equal((k as { d?: string }).d, undefined);
  }
  const { payload } = await jwtVerify(t1, createLocalJWKSet(jwks), { currentDate: new Date(clock.now()) });
  assert.equal(payload.sub, 'x');
  const t2 = await ring.signJwt('token', { sub: 'y' });
  assert.match(t2, /^[\w-]+\.[\w-]+\.[\w-]+$/);
  clock.advance(20 * 60_000 + 1);
  assert.equal(ring.verificationKey(k1.kid, 'token'), undefined);
  assert.deepEqual(ring.publicJwks().keys.map((k) => k.kid), [k2.kid]);
  assert.equal((await ring.list('token')).find((k) => k.kid === k1.kid)?.status, 'retired');
  const erased = db.prepare('SELECT private_sealed FROM crypto_keys WHERE kid = ?').get(k1.kid) as { private_sealed: unknown };
  assert.equal(erased.private_sealed, null, 'retired private key erased');

  // Audit keys: the signer's kid follows rotation; retired keys still resolve.
  const signer = ring.checkpointSigner();
  const a1 = signer.kid;
  signer.sign(Buffer.from('cp'));
  await ring.rotate('audit', { immediate: true });
  assert.notEqual(signer.kid, a1);
  clock.advance(1000);
  assert.ok(ring.publicKeyResolver(a1));
  assert.equal(ring.publicKeyResolver(k2.kid), undefined, 'token keys are not audit keys');
  db.close();
  const offline = await offlinePublicKeyResolver(path);
  assert.ok(offline(a1));
  assert.ok(offline(signer.kid));
  assert.equal(offline(k2.kid), undefined);
  assert.ok((await offlinePublicKeyResolverForDataDir(dir))(a1));
});

test('keyring: named secrets are stable and sealed', async () => {
  const db = openDatabase(':memory:');
  const master = randomBytes(32);
  const ring = await openKeyring(db, { masterKey: master });
  const s = ring.secret('apikey-pepper');
  assert.equal(s.length, 32);
  assert.deepEqual(ring.secret('apikey-pepper'), s);
  const row = db.prepare("SELECT sealed FROM crypto_secrets WHERE name = 'apikey-pepper'").get() as { sealed: Uint8Array };
  assert.equal(Buffer.from(row.sealed).indexOf(Buffer.from(s)), -1);
});

test('keyring: a store made before a key purpose existed gets that purpose its own key on open', async () => {
  const dir = tmp();
  const path = join(dir, 'portcullis.db');
  const master = randomBytes(32);
  const db = openDatabase(path);
  const first = await openKeyring(db, { masterKey: master, clock: new ManualClock() });
  const session = first.activeKey('session').kid;
  // An older store: only a session key (access tokens and checkpoints had no key of their own).
  db.prepare("DELETE FROM crypto_keys WHERE purpose <> 'session'").run();
  db.close();
  const db2 = openDatabase(path);
  const ring = await openKeyring(db2, { masterKey: master, clock: new ManualClock() });
  const rows = db2.prepare('SELECT kid, purpose FROM crypto_keys ORDER BY purpose').all() as { kid: string; purpose: string }[];
  assert.deepEqual(rows.map((r) => r.purpose), ['audit', 'session', 'token']);
  assert.equal(ring.activeKey('session').kid, session, 'the existing session key is kept');
  const kids = new Set(rows.map((r) => r.kid));
  assert.equal(kids.size, 3, 'no purpose shares a key');
  assert.deepEqual(ring.publicJwks().keys.map((k) => k.kid), [ring.activeKey('token').kid]);
  db2.close();
});

test('keyring: rotations at once each replace the active key in turn; one active key per purpose remains', async () => {
  const db = openDatabase(':memory:');
  const clock = new ManualClock();
  const ring = await openKeyring(db, { masterKey: randomBytes(32), clock });
  const first = ring.activeKey('token').kid;
  const results = await Promise.all([ring.rotate('token'), ring.rotate('token'), ring.rotate('token')]);
  const active = db.prepare("SELECT kid FROM crypto_keys WHERE purpose = 'token' AND superseded_at IS NULL").all() as { kid: string }[];
  assert.equal(active.length, 1, 'exactly one active token key');
  assert.equal(ring.activeKey('token').kid, active[0]!.kid, 'memory holds the committed active key');
  // Each rotation superseded the key the one before it made: a chain, no key superseded twice.
  const previous = results.map((r) => r.previous?.kid).sort();
  assert.deepEqual(previous, [first, ...results.map((r) => r.active.kid).filter((k) => k !== active[0]!.kid)].sort());
  assert.equal((await ring.list('token')).length, 4);
});

test('keyring: only the secrets loaded at open are served', async () => {
  const ring = await openKeyring(openDatabase(':memory:'), { masterKey: randomBytes(32), secrets: ['one'] });
  assert.equal(ring.secret('one').length, 32);
  assert.throws(() => ring.secret('apikey-pepper'), (e: unknown) => e instanceof KeyringError && /not loaded/.test((e as Error).message));
});

test('keyring: a rotation made by another keyring on the store is picked up by the periodic refresh', async () => {
  const db = openDatabase(':memory:');
  const clock = new ManualClock();
  const master = randomBytes(32);
  const here = await openKeyring(db, { masterKey: master, clock });
  const there = await openKeyring(db, { masterKey: master, clock });
  const { active } = await there.rotate('token', { immediate: true });
  assert.equal(here.verificationKey(active.kid, 'token'), undefined, 'not known here yet');
  clock.advance(5_000);
  assert.equal(here.verificationKey(active.kid, 'token'), undefined, 'the refresh it starts runs in the background');
  await new Promise((r) => setImmediate(r));
  assert.ok(here.verificationKey(active.kid, 'token'), 'known after the refresh');
  assert.equal(here.activeKey('token').kid, active.kid, 'and signs with it');
});
