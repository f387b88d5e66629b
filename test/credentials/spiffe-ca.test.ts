// Portcullis' SPIFFE CA over the KeyStore port: one generation made and reused, the next one made
// before the current nears its end (both roots in the bundle), sealed at rest, concurrent opens agree.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ManualClock } from '../../src/common/clock.ts';
import { SpiffeCaStore } from '../../src/credentials/spiffe-ca.ts';
import { MasterKeyError } from '../../src/crypto/masterkey.ts';
import { SqliteDb } from '../../src/store/sqlite/db.ts';
import { SqliteStore } from '../../src/store/sqlite/index.ts';

const TD = 'prod.acme.test';
const DAY = 86_400_000;

test('spiffe ca: generations are made once, rotated before their end and read back through the store', async () => {
  const store = new SqliteStore(SqliteDb.open(':memory:'), SqliteDb.open(':memory:'));
  const master = randomBytes(32);
  const clock = new ManualClock(Date.parse('2026-01-01T00:00:00Z'));
  // Two instances (two starts, or two replicas) ensure the domain at once: one generation results.
  const [a, b] = await Promise.all([SpiffeCaStore.open(store, master, clock).ensure(TD), SpiffeCaStore.open(store, master, clock).ensure(TD)]);
  assert.equal(a.root.toString('pem'), b.root.toString('pem'));
  const gens = await store.keys.spiffeCa.generations(TD);
  assert.equal(gens.length, 1);
  assert.ok(!Buffer.from(gens[0]!.intermediateKeySealed).toString('latin1').includes('PRIVATE'), 'the intermediate key is sealed');

  const ca = SpiffeCaStore.open(store, master, clock);
  const again = await ca.ensure(TD);
  assert.equal(again.root.toString('pem'), a.root.toString('pem'), 'a live generation is reused');
  assert.equal(ca.bundle(TD)?.spiffe_sequence, 1);
  assert.equal(ca.bundle('other.test'), undefined);

  clock.advance(84 * DAY); // less than 7 days left on the intermediate (90 days)
  const next = await ca.ensure(TD);
  assert.notEqual(next.root.toString('pem'), a.root.toString('pem'));
  assert.equal(next.roots.length, 2, 'the previous root stays in the bundle while its intermediate lives');
  assert.equal(ca.bundle(TD)?.spiffe_sequence, 2);
  assert.equal(ca.bundle(TD)?.keys.length, 2);

  await assert.rejects(SpiffeCaStore.open(store, randomBytes(32), clock).ensure(TD), MasterKeyError);
});
