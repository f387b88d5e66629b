// PostgreSQL implementation of the access domain's storage ports (src/access/ports.ts): its tables, migrations and queries.
import type { AccessStore } from '../../access/ports.ts';
import type { PgDb, PgDomainMigrations } from './db.ts';

export const MIGRATIONS: PgDomainMigrations = { domain: 'access', migrations: [] };

export function pgAccessStore(db: PgDb): AccessStore {
  void db;
  throw new Error('#10: the PostgreSQL access repositories are not built yet');
}
