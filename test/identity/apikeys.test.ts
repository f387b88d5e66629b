import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase } from '../../src/store/sqlite/db.ts';
import { ManualClock } from '../../src/common/clock.ts';
import { openKeyring } from '../crypto/helpers.ts';
import { ApiKeyService, looksLikeApiKey, findApiKeys } from '../../src/identity/apikeys.ts';
import { checksum } from '../../src/identity/apikey-format.ts';
import { InvalidInput, Conflict } from '../../src/common/errors.ts';
import { refused, identityStore } from './helpers.ts';

const DAY = 86_400_000;

async function setup(path = ':memory:') {
  const clock = new ManualClock();
  const db = openDatabase(path);
  const keyring = await openKeyring(db, { masterKey: randomBytes(32), clock });
  const store = identityStore(db);
  const keys = ApiKeyService.open({ repository: store.apiKeys, unitOfWork: store.unitOfWork, keyring, clock, maxTtlMs: 90 * DAY, defaultRotationMs: 30 * DAY });
  return { clock, db, keys };
}

test('api keys: format, checksum recognisable offline, scanner finds only valid keys', async () => {
  const { keys } = await setup();
  const { key, record } = await keys.mint({ identityId: 'apikey:billing-legacy' });
  assert.match(key, /^pcx_[0-9A-Za-z]{48}$/);
  assert.ok(looksLikeApiKey(key));
  assert.equal(record.id, `apikey:${key.slice(4, 14)}`);
  // One changed character breaks the checksum.
  const i = 20;
  const flipped = key.slice(0, i) + (key[i] === 'a' ? 'b' : 'a') + key.slice(i + 1);
  assert.equal(looksLikeApiKey(flipped), false);
  assert.equal(looksLikeApiKey(key.replace('pcx_', 'pcy_')), false);
  assert.equal(looksLikeApiKey(key + 'x'), false);
  assert.equal(looksLikeApiKey('pcx_' + 'A'.repeat(48)), checksum('A'.repeat(42)) === 'AAAAAA');
  const text = `config:\n  token: ${key}\n  other: ${flipped}\n`;
  assert.deepEqual(findApiKeys(text), [key]);
});

test('api keys: only an HMAC is stored; the secret appears once', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pcx-ak-'));
  const path = join(dir, 'p.db');
  const { db, keys } = await setup(path);
  const { key, record } = await keys.mint({ identityId: 'service-account:billing', description: 'billing cron' });
  assert.ok(!JSON.stringify(record).includes(key.slice(14, 46)));
  assert.ok(!JSON.stringify(await keys.list()).includes(key.slice(14, 46)));
  db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
  const file = readFileSync(path);
  assert.equal(file.indexOf(Buffer.from(key)), -1);
  assert.equal(file.indexOf(Buffer.from(key.slice(14, 46))), -1, 'secret part not in the db');
  const row = db.prepare('SELECT hash FROM identity_apikeys').get() as { hash: Uint8Array };
  assert.equal(row.hash.length, 32);
});

test('api keys: verify facts are api-key/low; bad secret, unknown id, malformed', async () => {
  const { keys } = await setup();
  const v = keys.verifier();
  const { key, record } = await keys.mint({ identityId: 'service-account:billing', identityKind: 'service-account' });
  const ok = await v.verify({ type: 'api_key', key });
  assert.equal(ok.identityId, 'service-account:billing');
  assert.equal(ok.kind, 'service-account');
  assert.equal(ok.facts.method, 'api-key');
  assert.equal(ok.facts.assurance, 'low');
  assert.equal(ok.evidence.key_id, record.id);
  assert.ok(!JSON.stringify(ok).includes(key));
  // Same id, different secret, valid checksum.
  const body = key.slice(4, 14) + 'Z'.repeat(32);
  await refused(v.verify({ type: 'api_key', key: `pcx_${body}${checksum(body)}` }), 'bad_secret', key);
  const other = 'Q'.repeat(42);
  await refused(v.verify({ type: 'api_key', key: `pcx_${other}${checksum(other)}` }), 'unknown_key');
  await refused(v.verify({ type: 'api_key', key: key.slice(0, -1) + (key.endsWith('0') ? '1' : '0') }), 'malformed');
  await refused(v.verify({ type: 'api_key', key: 'sk_live_123' }), 'malformed');
  await refused(v.verify({ type: 'api_key', key: 'pcx_' + 'a'.repeat(5000) }), 'malformed');
});

test('api keys: mandatory capped expiry, rotation due date, expiry enforced', async () => {
  const { keys, clock } = await setup();
  await assert.rejects(keys.mint({ identityId: 'x', ttlMs: 365 * DAY }), InvalidInput);
  await assert.rejects(keys.mint({ identityId: 'x', ttlMs: 0 }), InvalidInput);
  const { key, record } = await keys.mint({ identityId: 'x', ttlMs: 10 * DAY, rotationMs: 3 * DAY });
  assert.equal(Date.parse(record.expires_at) - clock.now(), 10 * DAY);
  assert.equal(Date.parse(record.rotate_by) - clock.now(), 3 * DAY);
  const dflt = (await keys.mint({ identityId: 'x' })).record;
  assert.equal(Date.parse(dflt.expires_at) - clock.now(), 90 * DAY, 'expiry defaults to the max TTL');
  clock.advance(4 * DAY);
  assert.equal((await keys.get(record.id))?.rotation_due, true);
  const v = await keys.verifier().verify({ type: 'api_key', key });
  assert.equal(v.attributes.api_key_rotation_due, true);
  clock.advance(6 * DAY);
  await refused(keys.verifier().verify({ type: 'api_key', key }), 'expired');
  assert.equal((await keys.get(record.id))?.status, 'expired');
});

test('api keys: revoke is immediate; revokeAllFor covers every key of an identity', async () => {
  const { keys } = await setup();
  const a = await keys.mint({ identityId: 'svc:a' });
  const b = await keys.mint({ identityId: 'svc:a' });
  await keys.mint({ identityId: 'svc:b' });
  await keys.revoke(a.record.id, 'leaked');
  await refused(keys.verifier().verify({ type: 'api_key', key: a.key }), 'revoked');
  assert.equal((await keys.get(a.record.id))?.status, 'revoked');
  assert.deepEqual(await keys.revokeAllFor('svc:a'), [b.record.id]);
  await refused(keys.verifier().verify({ type: 'api_key', key: b.key }), 'revoked');
  assert.equal((await keys.list('svc:b'))[0]?.status, 'active');
});

test('api keys: rotate gives a new key; the old one works for the grace period only', async () => {
  const { keys, clock } = await setup();
  const old = await keys.mint({ identityId: 'svc:a', ttlMs: 30 * DAY });
  const r = await keys.rotate(old.record.id);
  assert.notEqual(r.key, old.key);
  assert.equal(r.record.rotated_from, old.record.id);
  assert.equal(r.previous.replaced_by, r.record.id);
  assert.equal(Date.parse(r.record.expires_at) - clock.now(), 30 * DAY);
  await keys.verifier().verify({ type: 'api_key', key: old.key });
  await keys.verifier().verify({ type: 'api_key', key: r.key });
  await assert.rejects(keys.rotate(old.record.id), Conflict);
  clock.advance(3_600_000);
  await refused(keys.verifier().verify({ type: 'api_key', key: old.key }), 'expired');
  await keys.verifier().verify({ type: 'api_key', key: r.key });
  const now = await keys.rotate(r.record.id, { graceMs: 0 });
  await refused(keys.verifier().verify({ type: 'api_key', key: r.key }), 'expired');
  await keys.verifier().verify({ type: 'api_key', key: now.key });
});
