// SQLite implementation of the broker domain's storage ports (src/broker/ports.ts).
import type { BootstrapStore } from '../../broker/ports.ts';
import type { SqliteDb } from './db.ts';

export class SqliteBootstrapStore implements BootstrapStore {
  protected readonly db: SqliteDb;

  constructor(db: SqliteDb) {
    this.db = db;
  }
}
