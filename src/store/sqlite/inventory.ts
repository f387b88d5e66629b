// SQLite implementation of the inventory domain's storage ports (src/inventory/ports.ts).
import type { InventoryStore } from '../../inventory/ports.ts';
import type { SqliteDb } from './db.ts';

export class SqliteInventoryStore implements InventoryStore {
  protected readonly db: SqliteDb;

  constructor(db: SqliteDb) {
    this.db = db;
  }
}
