// PostgreSQL implementation of the signals domain's storage ports (src/signals/ports.ts): the
// context facts CAEP events set, shared by every replica.
import type { SignalFact, SignalFactRepository, SignalStore } from '../../signals/ports.ts';
import type { PgDb, PgDomainMigrations } from './db.ts';
import { factFromRow, type FactRow } from '../rows/signals.ts';

// Same table and columns as SQLite (migration `signals` 1 there).
export const MIGRATIONS: PgDomainMigrations = {
  domain: 'signals',
  migrations: [
    {
      version: 1,
      up: `CREATE TABLE signal_facts (
             identity_id TEXT NOT NULL,
             kind TEXT NOT NULL,
             value TEXT NOT NULL,
             event_at BIGINT NOT NULL,
             transmitter TEXT NOT NULL,
             PRIMARY KEY (identity_id, kind));`,
    },
  ],
};

export function pgSignalStore(db: PgDb): SignalStore {
  return { facts: new PgSignalFactRepository(db) };
}

class PgSignalFactRepository implements SignalFactRepository {
  readonly #db: PgDb;

  constructor(db: PgDb) {
    this.#db = db;
  }

  async put(f: SignalFact): Promise<boolean> {
    // One statement, as on SQLite: two replicas storing one fact at once keep the later event.
    const n = await this.#db.execute(
      `INSERT INTO signal_facts (identity_id, kind, value, event_at, transmitter) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (identity_id, kind) DO UPDATE SET value = EXCLUDED.value, event_at = EXCLUDED.event_at, transmitter = EXCLUDED.transmitter
       WHERE signal_facts.event_at <= EXCLUDED.event_at`,
      [f.identityId, f.kind, f.value, f.eventAt, f.transmitter],
    );
    return n > 0;
  }

  async list(identityId?: string): Promise<SignalFact[]> {
    const rows = identityId === undefined
      ? await this.#db.query<FactRow>('SELECT * FROM signal_facts')
      : await this.#db.query<FactRow>('SELECT * FROM signal_facts WHERE identity_id = $1', [identityId]);
    return rows.map(factFromRow);
  }
}
