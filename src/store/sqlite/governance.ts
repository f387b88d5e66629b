// SQLite implementation of the governance ports (src/governance/ports.ts): the shared tables and
// statements of src/store/rows/governance.ts over the state file's connection.
import type { GovernanceStore } from '../../governance/ports.ts';
import { GOVERNANCE_MIGRATIONS, sqlGovernanceStore } from '../rows/governance.ts';
import type { SqliteDb } from './db.ts';
import { migrate } from './db.ts';

type Bind = Parameters<ReturnType<SqliteDb['raw']['prepare']>['run']>;

export function sqliteGovernanceStore(db: SqliteDb): GovernanceStore {
  migrate(db.raw, 'governance', GOVERNANCE_MIGRATIONS);
  return sqlGovernanceStore({
    all: (sql, values = []) => db.run((raw) => raw.prepare(sql).all(...(values as Bind)) as Record<string, unknown>[]),
    run: (sql, values = []) => db.run((raw) => Number(raw.prepare(sql).run(...(values as Bind)).changes)),
  });
}
