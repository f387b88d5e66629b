// PostgreSQL implementation of the policy domain's storage ports (src/policy/ports.ts): its tables, migrations and queries.
import type { PolicyStoreRepository } from '../../policy/ports.ts';
import type { PgDb, PgDomainMigrations } from './db.ts';

export const MIGRATIONS: PgDomainMigrations = { domain: 'policy', migrations: [] };

export function pgPolicyStore(db: PgDb): PolicyStoreRepository {
  void db;
  throw new Error('#10: the PostgreSQL policy repositories are not built yet');
}
