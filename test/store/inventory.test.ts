// The identity repository's contract over both stores: insert refuses an existing id (one of two
// replicas declaring it wins), update keeps what it must keep, every field round-trips, and what
// one replica writes the other reads.
import assert from 'node:assert/strict';
import { forEachStore } from './stores.ts';
import { withReplicas } from './replicas.ts';
import type { Identity } from '../../src/inventory/identities.ts';

const ROW: Identity = {
  id: 'workload:github/acme/api', kind: 'workload', boundary: 'platform', environment: 'prod', owner: 'team:platform', purpose: 'orders API',
  labels: { a: 'b' }, parents: [], status: 'active', source: 'trust', trust: 'ci', bound_trusts: null,
  created_at: '2026-01-01T00:00:00.000Z', updated_at: '2026-01-01T00:00:00.000Z', last_authenticated_at: null,
};

forEachStore('identities: insert refuses an existing id; update keeps trust, created_at and last authentication', async (open) => {
  const repo = (await open()).inventory.identities;
  assert.deepEqual(await repo.list(), []);
  assert.equal(await repo.get(ROW.id), undefined);
  assert.equal(await repo.insert(ROW), true);
  assert.equal(await repo.insert({ ...ROW, purpose: 'other' }), false);
  assert.equal((await repo.get(ROW.id))?.purpose, ROW.purpose);
  assert.equal(await repo.touchAuthenticated(ROW.id, '2026-02-01T00:00:00.000Z'), true);
  assert.equal(await repo.touchAuthenticated('workload:none', '2026-02-01T00:00:00.000Z'), false);
  const next = { ...ROW, trust: 'changed', created_at: 'x', last_authenticated_at: null, source: 'config' as const, bound_trusts: ['ci'], updated_at: '2026-03-01T00:00:00.000Z' };
  assert.equal(await repo.update(next), true);
  assert.deepEqual(await repo.get(ROW.id), { ...next, trust: 'ci', created_at: ROW.created_at, last_authenticated_at: '2026-02-01T00:00:00.000Z' });
  assert.equal(await repo.update({ ...ROW, id: 'workload:none' }), false);
  assert.deepEqual((await repo.list()).map((i) => i.id), [ROW.id]);
});

forEachStore('identities: every field round-trips (nulls, empty and full labels, parents, bound trusts, status)', async (open) => {
  const repo = (await open()).inventory.identities;
  const bare: Identity = { ...ROW, id: 'user:bare', kind: 'user', owner: null, purpose: null, labels: {}, parents: [], trust: null, bound_trusts: [], source: 'api' };
  const full: Identity = {
    ...ROW, id: 'agent:full', kind: 'agent', labels: { tier: 'gold', 'z-key': 'é ✓', a: '' }, parents: [{ type: 'Team', id: 'payments' }, { type: 'Role', id: 'portcullis-admin' }],
    status: 'suspended', bound_trusts: ['gh', 'ci'], last_authenticated_at: '2026-01-02T03:04:05.678Z',
  };
  for (const i of [bare, full, { ...ROW }]) assert.equal(await repo.insert(i), true);
  assert.deepEqual(await repo.get('user:bare'), bare);
  assert.deepEqual(await repo.get('agent:full'), full);
  assert.deepEqual(Object.keys((await repo.get('agent:full'))!.labels), ['tier', 'z-key', 'a'], 'labels keep their order');
  assert.deepEqual((await repo.get(ROW.id))!.bound_trusts, null, 'not bound yet stays null, not []');
  const all = await repo.list();
  assert.deepEqual(all.map((i) => i.id).sort(), ['agent:full', 'user:bare', ROW.id].sort());
  assert.deepEqual(all.find((i) => i.id === 'agent:full'), full);
  await repo.update({ ...full, status: 'offboarded', labels: {}, parents: [], bound_trusts: null, owner: null, updated_at: '2026-05-01T00:00:00.000Z' });
  assert.deepEqual(await repo.get('agent:full'), { ...full, status: 'offboarded', labels: {}, parents: [], bound_trusts: null, owner: null, updated_at: '2026-05-01T00:00:00.000Z' });
});

forEachStore('identities: two replicas declaring the same ids at once: one insert wins each; status changed on one is read on the other', async (open, kind) => {
  await withReplicas(kind, open, async (a, b) => {
    const ids = Array.from({ length: 10 }, (_, i) => `workload:w${i}`);
    const results = await Promise.all(
      ids.flatMap((id) => [a, b, a, b].map((s, j) => s.inventory.identities.insert({ ...ROW, id, purpose: `by ${j}` }).then((won) => ({ id, j, won })))),
    );
    for (const id of ids) {
      const winners = results.filter((r) => r.id === id && r.won);
      assert.equal(winners.length, 1, `${id} inserted once`);
      assert.equal((await b.inventory.identities.get(id))!.purpose, `by ${winners[0]!.j}`, 'the winner\'s row is the one stored');
    }
    assert.equal(await a.inventory.identities.update({ ...ROW, id: 'workload:w0', status: 'suspended', updated_at: '2026-04-01T00:00:00.000Z' }), true);
    assert.equal((await b.inventory.identities.get('workload:w0'))!.status, 'suspended');
    assert.equal(await b.inventory.identities.touchAuthenticated('workload:w1', '2026-04-02T00:00:00.000Z'), true);
    assert.equal((await a.inventory.identities.get('workload:w1'))!.last_authenticated_at, '2026-04-02T00:00:00.000Z');
    assert.equal((await a.inventory.identities.list()).length, 10);
  });
});
