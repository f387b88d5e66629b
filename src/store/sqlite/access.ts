// SQLite implementation of the access domain's storage ports (src/access/ports.ts).
import type { AccessStore } from '../../access/ports.ts';
import type { SqliteDb } from './db.ts';

export class SqliteAccessStore implements AccessStore {
  protected readonly db: SqliteDb;

  constructor(db: SqliteDb) {
    this.db = db;
  }
}
