// The identity registry over its store port: reads from memory, writes through the repository in a
// transaction, the cache updated only once a write committed (the repository's contract over both
// stores is test/store/inventory.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../../src/common/clock.ts';
import { Conflict, InvalidInput, NotFound } from '../../src/common/errors.ts';
import { IdentityRegistry } from '../../src/inventory/identities.ts';
import { SqliteDb, openDatabase } from '../../src/store/sqlite/db.ts';
import { SqliteStore } from '../../src/store/sqlite/index.ts';

const BOUNDARIES = ['platform', 'payments'];
const API = { id: 'workload:github/acme/api', kind: 'workload' as const, boundary: 'platform', environment: 'prod', owner: 'team:platform', purpose: 'orders API' };

function memoryStore(): SqliteStore {
  return new SqliteStore(SqliteDb.open(':memory:'), SqliteDb.open(':memory:'));
}

test('registry: writes go through the store and survive a reopen; reads come from memory', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pcx-inv-'));
  const clock = new ManualClock();
  let store = SqliteStore.open(dir);
  let reg = await IdentityRegistry.open(store, clock, BOUNDARIES);
  const declared = await reg.declare({ ...API, parents: [{ type: 'Team', id: 'platform' }] }, 'config');
  assert.equal(reg.get(API.id), declared);
  await reg.register({ id: 'user:alice@example.com', kind: 'user', boundary: 'platform', environment: 'default' }, 'corp-sso');
  await reg.setStatus('user:alice@example.com', 'suspended');
  await reg.touchAuthenticated(API.id);
  await store.close();

  store = SqliteStore.open(dir);
  reg = await IdentityRegistry.open(store, clock, BOUNDARIES);
  const api = reg.require(API.id);
  assert.deepEqual({ ...api, last_authenticated_at: null }, { ...declared, last_authenticated_at: null });
  assert.equal(api.last_authenticated_at, new Date(clock.now()).toISOString());
  const alice = reg.require('user:alice@example.com');
  assert.equal(alice.status, 'suspended');
  assert.equal(alice.trust, 'corp-sso');
  assert.deepEqual(alice.bound_trusts, ['corp-sso']);
  assert.deepEqual(reg.members('Team', 'platform'), [API.id]);
  await store.close();
});

test('registry: an unchanged re-declaration writes nothing and returns the object already held', async () => {
  const store = memoryStore();
  const reg = await IdentityRegistry.open(store, new ManualClock(), BOUNDARIES);
  const first = await reg.declare(API, 'config');
  let writes = 0;
  const repo = store.inventory.identities;
  const update = repo.update.bind(repo);
  repo.update = (i) => (writes++, update(i));
  assert.equal(await reg.declare(API, 'config'), first);
  assert.equal(writes, 0);
  const changed = await reg.declare({ ...API, purpose: 'orders API v2' }, 'config');
  assert.notEqual(changed, first);
  assert.equal(writes, 1);
  await assert.rejects(reg.declare(API, 'api'), Conflict, 'the API cannot declare an existing identity');
});

test('registry: a refused or failed write leaves memory and the store as they were', async () => {
  const store = memoryStore();
  const reg = await IdentityRegistry.open(store, new ManualClock(), BOUNDARIES);
  const before = await reg.declare(API, 'config');
  await assert.rejects(reg.update(API.id, { boundary: 'nowhere' }), InvalidInput);
  await assert.rejects(reg.update('workload:nobody', { purpose: 'x' }), NotFound);
  await reg.setStatus(API.id, 'offboarded');
  await assert.rejects(reg.setStatus(API.id, 'active'), Conflict, 'offboarding is final');
  assert.equal(reg.get(API.id)?.status, 'offboarded');

  // The store fails mid-write: the transaction rolls back and the cache keeps the committed state.
  const repo = store.inventory.identities;
  const update = repo.update.bind(repo);
  repo.update = async () => {
    throw new Error('disk full');
  };
  await assert.rejects(reg.update(API.id, { purpose: 'never stored' }), /disk full/);
  repo.update = update;
  assert.equal(reg.get(API.id)?.purpose, before.purpose);
  assert.equal((await repo.get(API.id))?.purpose, before.purpose);
});

test('registry: concurrent writes to one identity are serialised and none is lost', async () => {
  const store = memoryStore();
  const reg = await IdentityRegistry.open(store, new ManualClock(), BOUNDARIES);
  const input = { id: 'agent:bot', kind: 'agent' as const, boundary: 'platform', environment: 'prod' };
  // Two first logins at once register one identity; both get it back, only the first made it.
  const [a, b] = await Promise.all([reg.register(input, 'ci'), reg.register(input, 'other-ci')]);
  assert.equal(a.identity.trust, 'ci');
  assert.deepEqual([a.created, b.created], [true, false]);
  assert.deepEqual(b.identity, a.identity);
  // Patches of different fields at once: each applies to the stored identity, so both land.
  await Promise.all([reg.update('agent:bot', { purpose: 'builds' }), reg.update('agent:bot', { labels: { tier: 'gold' } }), reg.bind('agent:bot', ['ci', 'gh'])]);
  const stored = (await store.inventory.identities.get('agent:bot'))!;
  assert.equal(stored.purpose, 'builds');
  assert.deepEqual(stored.labels, { tier: 'gold' });
  assert.deepEqual(stored.bound_trusts, ['ci', 'gh']);
  assert.deepEqual(reg.get('agent:bot'), stored, 'memory holds what the last committed write stored');
});

test('inventory migrations keep their domain and versions (existing data directories still open)', () => {
  const db = openDatabase(':memory:');
  void new SqliteStore(new SqliteDb(db), SqliteDb.open(':memory:'));
  const rows = db.prepare("SELECT version FROM schema_migrations WHERE domain = 'inventory' ORDER BY version").all() as { version: number }[];
  assert.deepEqual(rows.map((r) => r.version), [1, 2]);
});

test('registry: server-side paging over 100k identities visits each match once, in id order, with filters and text search', async () => {
  const store = memoryStore();
  const at = new Date(0).toISOString();
  const n = 100_000;
  // Inserted through the repository (the registry reads it whole at open), in a shuffled order.
  const ids = Array.from({ length: n }, (_, i) => `workload:fleet/svc-${String((i * 7919) % n).padStart(6, '0')}`);
  await store.transaction(async () => {
    for (const [i, id] of ids.entries()) {
      await store.inventory.identities.insert({
        id, kind: 'workload', boundary: i % 2 ? 'platform' : 'payments', environment: 'prod', owner: `team:t${i % 10}`, purpose: i % 1000 === 1 ? 'Billing export' : 'fleet', labels: {}, parents: [],
        status: i % 3 === 0 ? 'suspended' : 'active', source: 'api', trust: null, bound_trusts: null, created_at: at, updated_at: at, last_authenticated_at: null,
      });
    }
  });
  const reg = await IdentityRegistry.open(store, new ManualClock(), BOUNDARIES);
  const seen: string[] = [];
  let after: string | undefined;
  for (let pages = 0; ; pages++) {
    assert.ok(pages <= 100, 'at most 100 pages of 1000');
    const p = reg.page({}, { limit: 1000, ...(after !== undefined && { after }) });
    assert.equal(p.total, n);
    seen.push(...p.identities.map((i) => i.id));
    if (p.next_after === null) break;
    assert.equal(p.next_after, p.identities.at(-1)!.id);
    after = p.next_after;
  }
  assert.equal(seen.length, n, 'every identity once');
  assert.deepEqual(seen, [...ids].sort(), 'in id order');

  // Filters and the text search select the same identities as the unpaged list.
  const filter = { boundary: 'platform', status: 'active' as const, q: 'BILLING' };
  const all = reg.list(filter).map((i) => i.id);
  assert.ok(all.length > 0 && all.length < 100);
  const first = reg.page(filter, { limit: 10 });
  assert.equal(first.total, all.length);
  const rest = reg.page(filter, { limit: 1000, after: first.next_after! });
  assert.deepEqual([...first.identities, ...rest.identities].map((i) => i.id), [...all].sort());
  assert.equal(rest.next_after, null);
  await store.close();
});
