// SQLite implementation of the credentials domain's storage ports (src/credentials/ports.ts).
import type { CredentialStore } from '../../credentials/ports.ts';
import type { SqliteDb } from './db.ts';

export class SqliteCredentialStore implements CredentialStore {
  protected readonly db: SqliteDb;

  constructor(db: SqliteDb) {
    this.db = db;
  }
}
