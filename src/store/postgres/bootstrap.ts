// PostgreSQL implementation of the bootstrap domain's storage ports (src/broker/ports.ts): its tables, migrations and queries.
import type { BootstrapStore } from '../../broker/ports.ts';
import type { PgDb, PgDomainMigrations } from './db.ts';

export const MIGRATIONS: PgDomainMigrations = { domain: 'broker', migrations: [] };

export function pgBootstrapStore(db: PgDb): BootstrapStore {
  void db;
  throw new Error('#10: the PostgreSQL bootstrap repositories are not built yet');
}
