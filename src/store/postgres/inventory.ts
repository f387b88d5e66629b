// PostgreSQL implementation of the inventory domain's storage ports (src/inventory/ports.ts): its tables, migrations and queries.
import type { InventoryStore } from '../../inventory/ports.ts';
import type { PgDb, PgDomainMigrations } from './db.ts';

export const MIGRATIONS: PgDomainMigrations = { domain: 'inventory', migrations: [] };

export function pgInventoryStore(db: PgDb): InventoryStore {
  void db;
  throw new Error('#10: the PostgreSQL inventory repositories are not built yet');
}
