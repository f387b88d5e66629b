// The store's public face outside src/store/: its port types, and the offline public-key reader.
// Only the embedded SQLite store exists today; the PostgreSQL store (#10) implements the same ports.
import { ReadOnlyPublicKeys } from './sqlite/keys.ts';
import type { PublicKeyReader } from '../crypto/ports.ts';

export type { Store } from './types.ts';
export type { UnitOfWork } from './ports.ts';

/** The signing keys' public halves in a state file, read-only and without the master key (offline audit verification). */
export function openPublicKeyReader(stateFile: string): PublicKeyReader {
  return new ReadOnlyPublicKeys(stateFile);
}
