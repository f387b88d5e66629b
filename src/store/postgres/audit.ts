// PostgreSQL implementation of the audit domain's storage ports (src/audit/ports.ts): its tables, migrations and queries.
import type { AuditStore } from '../../audit/ports.ts';
import type { PgDb, PgDomainMigrations } from './db.ts';

export const MIGRATIONS: PgDomainMigrations = { domain: 'audit', migrations: [] };

export function pgAuditStore(db: PgDb): AuditStore {
  void db;
  throw new Error('#10: the PostgreSQL audit repositories are not built yet');
}
