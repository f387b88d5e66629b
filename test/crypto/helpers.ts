// Test helpers: the store over a connection a test opened itself, and a keyring on it.
import type { DatabaseSync } from 'node:sqlite';
import { SqliteDb, openDatabase } from '../../src/store/sqlite/db.ts';
import { SqliteStore } from '../../src/store/sqlite/index.ts';
import { Keyring } from '../../src/crypto/keyring.ts';
import type { KeyringOptions } from '../../src/crypto/keyring.ts';

/** A SqliteStore whose state file is `db` (audit streams in memory). */
export function storeOver(db: DatabaseSync): SqliteStore {
  return new SqliteStore(new SqliteDb(db), new SqliteDb(openDatabase(':memory:')));
}

/** Opens a keyring on `db` through the store's KeyStore. */
export function openKeyring(db: DatabaseSync, options: KeyringOptions): Promise<Keyring> {
  return Keyring.open(storeOver(db), options);
}
