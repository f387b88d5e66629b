// SQLite implementation of the crypto domain's storage ports (src/crypto/ports.ts).
import type { KeyStore } from '../../crypto/ports.ts';
import type { SqliteDb } from './db.ts';

export class SqliteKeyStore implements KeyStore {
  protected readonly db: SqliteDb;

  constructor(db: SqliteDb) {
    this.db = db;
  }
}
