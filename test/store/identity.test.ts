// The identity repositories' contract over both stores: replay is insert-if-not-seen (expired
// entries taken over, first use wins across replicas), cut-offs only rise, a jti keeps its first
// entry, API keys round-trip and revoke once — and what one replica writes the other reads.
import assert from 'node:assert/strict';
import { forEachStore } from './stores.ts';
import { withReplicas } from './replicas.ts';
import type { StoredApiKey } from '../../src/identity/ports.ts';

forEachStore('replay: remember is insert-if-not-seen; an expired entry is taken over; prune drops expired entries only', async (open) => {
  const r = (await open()).identity.replay;
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
  assert.equal(await r.prune(401), 0);
});

forEachStore('replay: two replicas remembering the same ids at once: first use wins, once per id', async (open, kind) => {
  await withReplicas(kind, open, async (a, b) => {
    const ids = Array.from({ length: 20 }, (_, i) => `jti-${i}`);
    const calls = ids.flatMap((id) => [a, b, a, b].map((s) => s.identity.replay.remember(id, 1000, 100).then((fresh) => ({ id, fresh }))));
    const results = await Promise.all(calls);
    for (const id of ids) assert.equal(results.filter((x) => x.id === id && x.fresh).length, 1, `${id}: exactly one caller told it was fresh`);
    assert.equal(await b.identity.replay.count(), 20);
    // An expired entry taken over by both at once: again exactly one wins.
    const again = await Promise.all([a, b, a, b].map((s) => s.identity.replay.remember('jti-0', 3000, 2000)));
    assert.equal(again.filter(Boolean).length, 1);
    assert.equal(await a.identity.replay.remember('jti-0', 3000, 2500), false, 'the takeover is seen by the other replica');
    assert.equal(await b.identity.replay.prune(1001), 19, 'pruned on one replica: the expired entries of both');
    assert.equal(await a.identity.replay.count(), 1);
  });
});

forEachStore('sessions: a jti keeps its first entry; cut-offs only rise; purge drops expired entries only', async (open) => {
  const s = (await open()).identity.sessions;
  assert.deepEqual(await s.revocations(), { jtis: [], cutoffs: [] });
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
  assert.equal(await s.purgeRevocations(100), 0, 'expires_at == before is kept');
});

forEachStore('sessions: revocations and cut-offs written on one replica are read on the other; racing cut-offs keep the largest', async (open, kind) => {
  await withReplicas(kind, open, async (a, b) => {
    await a.identity.sessions.revokeJti({ jti: 'j1', identityId: 'user:a', revokedAt: 10, expiresAt: 100 });
    assert.deepEqual((await b.identity.sessions.revocations()).jtis, [{ jti: 'j1', identityId: 'user:a', revokedAt: 10, expiresAt: 100 }]);
    // Both replicas revoke one token at once: one entry, whichever came first.
    await Promise.all([a, b].map((s, i) => s.identity.sessions.revokeJti({ jti: 'j2', revokedAt: 20 + i, expiresAt: 200 })));
    const j2 = (await a.identity.sessions.revocations()).jtis.filter((j) => j.jti === 'j2');
    assert.equal(j2.length, 1);
    // Cut-offs raised from both at once, in any order: every answer is at least what was asked, the largest stays.
    const asked = Array.from({ length: 16 }, (_, i) => 1000 + ((i * 7) % 16));
    const stored = await Promise.all(asked.map((v, i) => (i % 2 === 0 ? a : b).identity.sessions.raiseCutoff('user:b', v)));
    stored.forEach((v, i) => assert.ok(v >= asked[i]!, `answer ${v} below the asked ${asked[i]}`));
    assert.deepEqual((await b.identity.sessions.revocations()).cutoffs, [{ identityId: 'user:b', revokedBefore: Math.max(...asked) }]);
    assert.equal(await a.identity.sessions.raiseCutoff('user:b', 5), Math.max(...asked));
  });
});

const BASE = {
  identityId: 'svc:a',
  identityKind: 'service-account' as const,
  description: 'd',
  hash: new Uint8Array(32).fill(7),
  createdAt: 1000,
  expiresAt: 10_000,
  rotationDueAt: 5000,
};

forEachStore('api keys: round trip of every field; replaced keys only get shorter; revoke once; list order and filter', async (open) => {
  const k = (await open()).identity.apiKeys;
  await k.insert({ id: 'apikey:1', ...BASE });
  await k.insert({ id: 'apikey:2', ...BASE, createdAt: 2000, rotatedFrom: 'apikey:1' });
  await k.insert({ id: 'apikey:3', ...BASE, identityId: 'svc:b' });
  // Bytewise id order within one creation time (as SQLite compares text), whatever the server's collation.
  await k.insert({ id: 'apikey:B', ...BASE, identityId: 'svc:c' });
  await k.insert({ id: 'apikey:a', ...BASE, identityId: 'svc:c' });
  const one = await k.get('apikey:1');
  assert.deepEqual(one, { id: 'apikey:1', ...BASE });
  assert.ok(one!.hash instanceof Uint8Array && !Buffer.isBuffer(one!.hash), 'the hash comes back as a plain Uint8Array');
  const full: StoredApiKey = { id: 'apikey:full', ...BASE, identityId: 'svc:d', hash: Uint8Array.from([0, 1, 255, 128]), revokedAt: 1, revokedReason: 'r', rotatedFrom: 'x', replacedBy: 'y', lastUsedAt: 2 };
  await k.insert(full);
  assert.deepEqual(await k.get('apikey:full'), full);
  assert.equal(await k.get('apikey:none'), undefined);
  await k.markReplaced('apikey:1', 'apikey:2', 20_000);
  assert.equal((await k.get('apikey:1'))!.expiresAt, 10_000, 'a grace beyond the expiry does not extend it');
  await k.markReplaced('apikey:1', 'apikey:2', 3000);
  assert.equal((await k.get('apikey:1'))!.expiresAt, 3000);
  assert.equal((await k.get('apikey:1'))!.replacedBy, 'apikey:2');
  assert.deepEqual((await k.list()).map((x) => x.id), ['apikey:1', 'apikey:3', 'apikey:B', 'apikey:a', 'apikey:full', 'apikey:2']);
  assert.deepEqual((await k.list('svc:a')).map((x) => x.id), ['apikey:1', 'apikey:2']);
  assert.deepEqual(await k.list('svc:none'), []);
  assert.equal(await k.revoke('apikey:1', 4000, 'leaked'), true);
  assert.equal(await k.revoke('apikey:1', 5000, 'again'), false);
  assert.equal(await k.revoke('apikey:none', 5000, 'none'), false);
  const revoked = await k.get('apikey:1');
  assert.deepEqual([revoked!.revokedAt, revoked!.revokedReason], [4000, 'leaked']);
  assert.deepEqual(await k.unrevokedIds('svc:a'), ['apikey:2']);
  await k.touch('apikey:2', 6000);
  assert.equal((await k.get('apikey:2'))!.lastUsedAt, 6000);
});

forEachStore('api keys: two replicas revoking one key at once: one revokes it; the other replica reads its status', async (open, kind) => {
  await withReplicas(kind, open, async (a, b) => {
    for (let i = 0; i < 10; i++) await a.identity.apiKeys.insert({ id: `apikey:${i}`, ...BASE });
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => [a, b].map((s, j) => s.identity.apiKeys.revoke(`apikey:${i}`, 4000 + j, `by ${j}`).then((won) => ({ i, j, won })))).flat(),
    );
    for (let i = 0; i < 10; i++) {
      const winners = results.filter((r) => r.i === i && r.won);
      assert.equal(winners.length, 1, `apikey:${i} revoked once`);
      const seen = await (i % 2 === 0 ? a : b).identity.apiKeys.get(`apikey:${i}`);
      assert.deepEqual([seen!.revokedAt, seen!.revokedReason], [4000 + winners[0]!.j, `by ${winners[0]!.j}`], 'the winner\'s revocation is the one stored');
    }
    assert.deepEqual(await b.identity.apiKeys.unrevokedIds('svc:a'), []);
    await b.identity.apiKeys.insert({ id: 'apikey:new', ...BASE, createdAt: 9000 });
    assert.deepEqual(await a.identity.apiKeys.unrevokedIds('svc:a'), ['apikey:new']);
  });
});
