// PostgreSQL implementation of the governance ports (src/governance/ports.ts): the shared tables
// and statements of src/store/rows/governance.ts, `?` placeholders rewritten to `$n`.
import type { GovernanceStore } from '../../governance/ports.ts';
import { GOVERNANCE_MIGRATIONS, sqlGovernanceStore } from '../rows/governance.ts';
import type { PgDb, PgDomainMigrations } from './db.ts';

export const MIGRATIONS: PgDomainMigrations = { domain: 'governance', migrations: GOVERNANCE_MIGRATIONS };

const numbered = (sql: string) => {
  let n = 0;
  return sql.replaceAll('?', () => `$${++n}`);
};

export function pgGovernanceStore(db: PgDb): GovernanceStore {
  return sqlGovernanceStore({
    all: (sql, values = []) => db.query(numbered(sql), values),
    run: (sql, values = []) => db.execute(numbered(sql), values),
  });
}
