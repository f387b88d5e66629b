// SQLite implementation of the policy domain's storage ports (src/policy/ports.ts).
import type { PolicyStoreRepository } from '../../policy/ports.ts';
import type { SqliteDb } from './db.ts';

export class SqlitePolicyStore implements PolicyStoreRepository {
  protected readonly db: SqliteDb;

  constructor(db: SqliteDb) {
    this.db = db;
  }
}
