// Opens the configured store. Only the embedded SQLite store exists today; the PostgreSQL store
// (scale-out issue) implements the same ports.
import type { Store } from './types.ts';
import { SqliteStore } from './sqlite/index.ts';
import { ReadOnlyPublicKeys } from './sqlite/keys.ts';
import type { PublicKeyReader } from '../crypto/ports.ts';

export type { Store } from './types.ts';
export type { UnitOfWork } from './ports.ts';

export function openStore(dataDir: string): Store {
  return SqliteStore.open(dataDir);
}

/** The signing keys' public halves in a state file, read-only and without the master key (offline audit verification). */
export function openPublicKeyReader(stateFile: string): PublicKeyReader {
  return new ReadOnlyPublicKeys(stateFile);
}
