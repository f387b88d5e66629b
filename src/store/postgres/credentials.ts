// PostgreSQL implementation of the credentials domain's storage ports (src/credentials/ports.ts): its tables, migrations and queries.
import type { CredentialStore } from '../../credentials/ports.ts';
import type { PgDb, PgDomainMigrations } from './db.ts';

export const MIGRATIONS: PgDomainMigrations = { domain: 'credentials', migrations: [] };

export function pgCredentialStore(db: PgDb): CredentialStore {
  void db;
  throw new Error('#10: the PostgreSQL credentials repositories are not built yet');
}
