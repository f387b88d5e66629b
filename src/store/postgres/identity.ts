// PostgreSQL implementation of the identity domain's storage ports (src/identity/ports.ts): its tables, migrations and queries.
import type { IdentityStore } from '../../identity/ports.ts';
import type { PgDb, PgDomainMigrations } from './db.ts';

export const MIGRATIONS: PgDomainMigrations = { domain: 'identity', migrations: [] };

export function pgIdentityStore(db: PgDb): IdentityStore {
  void db;
  throw new Error('#10: the PostgreSQL identity repositories are not built yet');
}
