// The bootstrap secret's contract over both stores: created once, spent by compare-and-set,
// replaced to void the old one — and one-shot across replicas (two racing: exactly one wins).
import assert from 'node:assert/strict';
import { forEachStore } from './stores.ts';
import { withReplicas } from './replicas.ts';
import type { Store } from '../../src/store/index.ts';

forEachStore('bootstrap: create once; spend is a compare-and-set (one of two racing logins wins); replace voids the old secret', async (open) => {
  const b = (await open()).bootstrap;
  assert.equal(await b.get(), undefined);
  assert.equal(await b.spend('h1', 1000), false, 'nothing to spend');
  assert.equal(await b.create('h1', Date.parse('2026-01-01T00:00:00Z')), true);
  assert.equal(await b.create('h2', 0), false, 'the first secret stays');
  assert.deepEqual(await b.get(), { hash: 'h1', createdAt: Date.parse('2026-01-01T00:00:00Z') });
  assert.equal(await b.spend('h2', 1000), false, 'not the stored secret');
  const racing = await Promise.all([b.spend('h1', 2000), b.spend('h1', 2001)]);
  assert.deepEqual([...racing].sort(), [false, true]);
  assert.equal((await b.get())!.usedAt, racing[0] ? 2000 : 2001, 'the winner\'s time is stored');
  assert.equal(await b.spend('h1', 3000), false, 'spent is spent');
  await b.replace('h3', 4000);
  assert.deepEqual(await b.get(), { hash: 'h3', createdAt: 4000 });
  assert.equal(await b.spend('h1', 5000), false, 'the replaced secret is void');
  assert.equal(await b.spend('h3', 5000), true);
  await b.replace('h4', 6000);
  assert.deepEqual(await b.get(), { hash: 'h4', createdAt: 6000 }, 'replacing a spent secret stores it unspent');
});

forEachStore('bootstrap: replace on an empty store stores the first secret', async (open) => {
  const b = (await open()).bootstrap;
  await b.replace('h1', 1000);
  assert.deepEqual(await b.get(), { hash: 'h1', createdAt: 1000 });
  assert.equal(await b.create('h2', 2000), false);
});

/** The broker's first start (src/broker/bootstrap.ts): under the bootstrap lock, create unless there is one. */
function firstStart(s: Store, hash: string): Promise<boolean> {
  return s.transaction(async () => {
    await s.lock('broker:bootstrap');
    if ((await s.bootstrap.get()) !== undefined) return false;
    return s.bootstrap.create(hash, 1000);
  });
}

forEachStore('bootstrap: two replicas racing the bootstrap: exactly one creates it, exactly one login spends it', async (open, kind) => {
  for (let round = 0; round < 5; round++) {
    await withReplicas(kind, open, async (a, b) => {
      // The bare port: both create at once.
      const created = await Promise.all([a, b, a, b].map((s, i) => s.bootstrap.create(`h${i}`, 1000 + i)));
      assert.equal(created.filter(Boolean).length, 1, 'one create stored the secret');
      const winner = created.indexOf(true);
      assert.deepEqual(await b.bootstrap.get(), { hash: `h${winner}`, createdAt: 1000 + winner });
      // Two logins with the secret, one on each replica.
      const spent = await Promise.all([a, b, a, b].map((s, i) => s.bootstrap.spend(`h${winner}`, 2000 + i)));
      assert.equal(spent.filter(Boolean).length, 1, 'one login spent it');
      assert.equal((await a.bootstrap.get())!.usedAt, 2000 + spent.indexOf(true));
    });
    await withReplicas(kind, open, async (a, b) => {
      // The broker's first start on both replicas at once: one creates, the other sees it.
      const started = await Promise.all([firstStart(a, 'ha'), firstStart(b, 'hb')]);
      assert.equal(started.filter(Boolean).length, 1);
      assert.equal((await a.bootstrap.get())!.hash, started[0] ? 'ha' : 'hb');
    });
  }
});
