// The identity and bootstrap repositories over SQLite: the atomic steps the ports promise (replay
// insert-if-not-seen, monotonic cut-offs, the bootstrap secret's compare-and-set spend), and
// that the migrations keep their domains and versions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SqliteDb, openDatabase } from '../../src/store/sqlite/db.ts';
import { SqliteIdentityStore } from '../../src/store/sqlite/identity.ts';
import { SqliteBootstrapStore } from '../../src/store/sqlite/bootstrap.ts';

function fresh() {
  const db = new SqliteDb(openDatabase(':memory:'));
  return { db, identity: new SqliteIdentityStore(db), bootstrap: new SqliteBootstrapStore(db) };
}

test('migrations: same domains and versions as before the ports; opening twice is a no-op', () => {
  const { db } = fresh();
  new SqliteIdentityStore(db);
  new SqliteBootstrapStore(db);
  const rows = db.raw.prepare('SELECT domain, version FROM schema_migrations ORDER BY domain, version').all();
  assert.deepEqual(rows.map((r) => `${r.domain}:${r.version}`), ['broker:1', 'identity:1', 'identity-replay:1']);
});

test('replay: remember is insert-if-not-seen; an expired entry is taken over; one of two racing callers wins', async () => {
  const { identity } = fresh();
  const r = identity.replay;
  assert.equal(await r.remember('a', 200, 100), true);
  assert.equal(await r.remember('a', 300, 150), false, 'a live entry: seen');
  assert.equal(await r.remember('a', 300, 200), false, 'expires_at == now is still live');
  assert.equal(await r.remember('a', 400, 201), true, 'expired: taken over');
  assert.equal(await r.remember('a', 500, 300), false, 'and kept until its new expiry');
  const racing = await Promise.all([1, 2, 3, 4].map(() => r.remember('b', 1000, 100)));
  assert.equal(racing.filter(Boolean).length, 1);
  assert.equal(await r.count(), 2);
  assert.equal(await r.prune(401), 1, 'only the entry that expired before now goes');
  assert.equal(await r.count(), 1);
});

test('sessions: a jti keeps its first entry; cut-offs only rise; purge drops expired entries only', async () => {
  const { identity } = fresh();
  const s = identity.sessions;
  await s.revokeJti({ jti: 'j1', identityId: 'user:a', revokedAt: 10, expiresAt: 100 });
  await s.revokeJti({ jti: 'j1', revokedAt: 20, expiresAt: 50 });
  await s.revokeJti({ jti: 'j2', revokedAt: 20, expiresAt: 40 });
  assert.equal(await s.raiseCutoff('user:a', 30), 30);
  assert.equal(await s.raiseCutoff('user:a', 25), 30, 'an earlier cut-off (another replica, clock behind) never lowers it');
  assert.equal(await s.raiseCutoff('user:a', 35), 35);
  const kept = await s.revocations();
  assert.deepEqual(kept.jtis.sort((x, y) => x.jti.localeCompare(y.jti)), [
    { jti: 'j1', identityId: 'user:a', revokedAt: 10, expiresAt: 100 },
    { jti: 'j2', revokedAt: 20, expiresAt: 40 },
  ]);
  assert.deepEqual(kept.cutoffs, [{ identityId: 'user:a', revokedBefore: 35 }]);
  assert.equal(await s.purgeRevocations(41), 1);
  assert.deepEqual((await s.revocations()).jtis.map((j) => j.jti), ['j1']);
});

test('api keys: round trip of every field; replaced keys only get shorter; revoke once', async () => {
  const { identity } = fresh();
  const k = identity.apiKeys;
  const base = { identityId: 'svc:a', identityKind: 'service-account' as const, description: 'd', hash: new Uint8Array(32).fill(7), createdAt: 1000, expiresAt: 10_000, rotationDueAt: 5000 };
  await k.insert({ id: 'apikey:1', ...base });
  await k.insert({ id: 'apikey:2', ...base, createdAt: 2000, rotatedFrom: 'apikey:1' });
  await k.insert({ id: 'apikey:3', ...base, identityId: 'svc:b' });
  const one = await k.get('apikey:1');
  assert.deepEqual({ ...one, hash: [...one!.hash] }, { id: 'apikey:1', ...base, hash: [...base.hash] });
  assert.equal(await k.get('apikey:none'), undefined);
  await k.markReplaced('apikey:1', 'apikey:2', 20_000);
  assert.equal((await k.get('apikey:1'))!.expiresAt, 10_000, 'a grace beyond the expiry does not extend it');
  await k.markReplaced('apikey:1', 'apikey:2', 3000);
  assert.equal((await k.get('apikey:1'))!.expiresAt, 3000);
  assert.equal((await k.get('apikey:1'))!.replacedBy, 'apikey:2');
  assert.deepEqual((await k.list()).map((x) => x.id), ['apikey:1', 'apikey:3', 'apikey:2']);
  assert.deepEqual((await k.list('svc:a')).map((x) => x.id), ['apikey:1', 'apikey:2']);
  assert.equal(await k.revoke('apikey:1', 4000, 'leaked'), true);
  assert.equal(await k.revoke('apikey:1', 5000, 'again'), false);
  const revoked = await k.get('apikey:1');
  assert.deepEqual([revoked!.revokedAt, revoked!.revokedReason], [4000, 'leaked']);
  assert.deepEqual(await k.unrevokedIds('svc:a'), ['apikey:2']);
  await k.touch('apikey:2', 6000);
  assert.equal((await k.get('apikey:2'))!.lastUsedAt, 6000);
});

test('bootstrap: create once; spend is a compare-and-set (one of two racing logins wins); replace voids the old secret', async () => {
  const { bootstrap: b } = fresh();
  assert.equal(await b.get(), undefined);
  assert.equal(await b.spend('h1', 1000), false, 'nothing to spend');
  assert.equal(await b.create('h1', Date.parse('2026-01-01T00:00:00Z')), true);
  assert.equal(await b.create('h2', 0), false, 'the first secret stays');
  assert.deepEqual(await b.get(), { hash: 'h1', createdAt: Date.parse('2026-01-01T00:00:00Z') });
  assert.equal(await b.spend('h2', 1000), false, 'not the stored secret');
  const racing = await Promise.all([b.spend('h1', 2000), b.spend('h1', 2001)]);
  assert.deepEqual(racing.sort(), [false, true]);
  assert.equal((await b.get())!.usedAt, 2000);
  assert.equal(await b.spend('h1', 3000), false, 'spent is spent');
  await b.replace('h3', 4000);
  assert.deepEqual(await b.get(), { hash: 'h3', createdAt: 4000 });
  assert.equal(await b.spend('h1', 5000), false, 'the replaced secret is void');
  assert.equal(await b.spend('h3', 5000), true);
});
