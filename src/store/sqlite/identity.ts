// SQLite implementation of the identity domain's storage ports (src/identity/ports.ts).
import type { IdentityStore } from '../../identity/ports.ts';
import type { SqliteDb } from './db.ts';

export class SqliteIdentityStore implements IdentityStore {
  protected readonly db: SqliteDb;

  constructor(db: SqliteDb) {
    this.db = db;
  }
}
