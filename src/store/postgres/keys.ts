// PostgreSQL implementation of the keys domain's storage ports (src/crypto/ports.ts): its tables, migrations and queries.
import type { KeyStore } from '../../crypto/ports.ts';
import type { PgDb, PgDomainMigrations } from './db.ts';

export const MIGRATIONS: PgDomainMigrations = { domain: 'crypto', migrations: [] };

export function pgKeyStore(db: PgDb): KeyStore {
  void db;
  throw new Error('#10: the PostgreSQL keys repositories are not built yet');
}
