// Opens the configured store. Only the embedded SQLite store exists today; the PostgreSQL store
// (scale-out issue) implements the same ports.
import type { Store } from './types.ts';
import { SqliteStore } from './sqlite/index.ts';

export type { Store } from './types.ts';
export type { UnitOfWork } from './ports.ts';

export function openStore(dataDir: string): Store {
  return SqliteStore.open(dataDir);
}
