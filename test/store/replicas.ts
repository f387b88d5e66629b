// Two replicas on one store for the contract tests' races: on PostgreSQL two stores (two pools)
// opened on one fresh database; on SQLite (one process, one writer) the same store twice.
import type { Store } from '../../src/store/index.ts';
import { PostgresStore } from '../../src/store/postgres/index.ts';
import { freshStoreUrl } from './pg.ts';
import type { StoreKind } from './stores.ts';

/** Runs `fn` with two replicas of one new, empty store of `kind`; closes them after. */
export async function withReplicas<T>(kind: StoreKind, open: () => Promise<Store>, fn: (a: Store, b: Store) => Promise<T>): Promise<T> {
  if (kind === 'sqlite') {
    const s = await open();
    return fn(s, s);
  }
  const url = await freshStoreUrl();
  const a = await PostgresStore.open(url, { pool: 4 });
  try {
    const b = await PostgresStore.open(url, { pool: 4 });
    try {
      return await fn(a, b);
    } finally {
      await b.close();
    }
  } finally {
    await a.close();
  }
}
