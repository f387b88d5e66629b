// SQLite implementation of the signals domain's storage ports (src/signals/ports.ts): the context
// facts CAEP events set, one row per identity and fact, the latest event kept.
import type { SignalFact, SignalFactRepository, SignalStore } from '../../signals/ports.ts';
import { factFromRow, type FactRow } from '../rows/signals.ts';
import type { SqliteDb } from './db.ts';
import { SqliteRepo } from './repo.ts';
import { migrate } from './db.ts';

const SIGNAL_MIGRATIONS = [
  {
    version: 1,
    up: `CREATE TABLE signal_facts (
           identity_id TEXT NOT NULL,
           kind TEXT NOT NULL,
           value TEXT NOT NULL,
           event_at INTEGER NOT NULL,
           transmitter TEXT NOT NULL,
           PRIMARY KEY (identity_id, kind));`,
  },
] as const;

export class SqliteSignalStore implements SignalStore {
  readonly facts: SqliteSignalFactRepository;

  constructor(db: SqliteDb) {
    migrate(db.raw, 'signals', SIGNAL_MIGRATIONS);
    this.facts = new SqliteSignalFactRepository(db);
  }
}

class SqliteSignalFactRepository extends SqliteRepo implements SignalFactRepository {
  put(f: SignalFact): Promise<boolean> {
    // One statement: a new fact is inserted, an older one replaced, a newer one left as it is.
    return this.run(
      (s) =>
        s(
          `INSERT INTO signal_facts (identity_id, kind, value, event_at, transmitter) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (identity_id, kind) DO UPDATE SET value = excluded.value, event_at = excluded.event_at, transmitter = excluded.transmitter
           WHERE signal_facts.event_at <= excluded.event_at`,
        ).run(f.identityId, f.kind, f.value, f.eventAt, f.transmitter).changes > 0,
    );
  }

  list(identityId?: string): Promise<SignalFact[]> {
    return this.run((s) => {
      const rows = identityId === undefined ? s('SELECT * FROM signal_facts').all() : s('SELECT * FROM signal_facts WHERE identity_id = ?').all(identityId);
      return (rows as unknown as FactRow[]).map(factFromRow);
    });
  }
}
