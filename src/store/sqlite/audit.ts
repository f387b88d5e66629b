// SQLite implementation of the audit domain's storage ports (src/audit/ports.ts).
import type { AuditStore } from '../../audit/ports.ts';
import type { SqliteDb } from './db.ts';

export class SqliteAuditStore implements AuditStore {
  protected readonly db: SqliteDb;

  constructor(db: SqliteDb) {
    this.db = db;
  }
}
