// The entity store's incrementally maintained ancestor sets must always equal a from-scratch
// transitive closure of the current entities, through any sequence of upserts and removals.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EntityStore } from '../../src/policy/engine/compiled/store.ts';
import type { Entity, EntityUid } from '../../src/policy/engine/types.ts';
import { Rng } from './compiled-fuzzgen.ts';

const key = (u: EntityUid): string => `${u.type}\u0000${u.id}`;

function reference(entities: Map<string, Entity>): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const [k, e] of entities) {
    const seen = new Set<string>();
    const stack = [...e.parents];
    while (stack.length > 0) {
      const p = stack.pop()!;
      const pk = key(p);
      if (seen.has(pk)) continue;
      seen.add(pk);
      const pe = entities.get(pk);
      if (pe !== undefined) stack.push(...pe.parents);
    }
    out.set(k, seen);
  }
  return out;
}

test('entity store: incremental ancestors equal a full recomputation', () => {
  const seed = Number(process.env.PORTCULLIS_FUZZ_SEED ?? 7);
  const r = new Rng(seed);
  const ids = Array.from({ length: 12 }, (_, i) => ({ type: 'G', id: `n${i}` }));
  for (let round = 0; round < 300; round++) {
    const store = new EntityStore();
    const model = new Map<string, Entity>();
    for (let step = 0; step < 25; step++) {
      if (r.chance(0.7)) {
        const batch: Entity[] = [];
        const used = new Set<string>();
        for (let j = 0, n = 1 + r.int(4); j < n; j++) {
          const u = r.pick(ids);
          if (used.has(key(u))) continue;
          used.add(key(u));
          batch.push({ uid: u, attrs: {}, parents: ids.filter(() => r.chance(0.15)) });
        }
        const next = new Map(model);
        for (const e of batch) next.set(key(e.uid), e);
        const ref = reference(next);
        const cyclic = [...ref].some(([k, a]) => a.has(k));
        if (cyclic) {
          assert.throws(() => store.upsert(batch), /cycle/, `seed ${seed} round ${round} step ${step}`);
        } else {
          store.upsert(batch);
          for (const e of batch) model.set(key(e.uid), e);
        }
      } else {
        const gone = ids.filter(() => r.chance(0.2));
        store.remove(gone);
        for (const u of gone) model.delete(key(u));
      }
      const ref = reference(model);
      for (const [k, a] of ref) {
        assert.deepEqual([...(store.ancestors(k) ?? [])].sort(), [...a].sort(), `seed ${seed} round ${round} step ${step}: ancestors of ${k}`);
      }
      for (const u of ids) if (!model.has(key(u))) assert.equal(store.ancestors(key(u)), undefined);
    }
  }
});
