// PostgreSQL implementation of the broker domain's storage ports (src/broker/ports.ts): the one
// bootstrap secret's hash in `broker_bootstrap` (one row, id 1), shared by every replica.
import type { BootstrapSecret, BootstrapStore } from '../../broker/ports.ts';
import type { PgDb, PgDomainMigrations } from './db.ts';

// As on SQLite, times as ISO-8601 text (so a copied row reads the same on both stores).
export const MIGRATIONS: PgDomainMigrations = {
  domain: 'broker',
  migrations: [
    { version: 1, up: 'CREATE TABLE broker_bootstrap (id INTEGER PRIMARY KEY CHECK (id = 1), hash TEXT NOT NULL, created_at TEXT NOT NULL, used_at TEXT)' },
  ],
};

const iso = (ms: number) => new Date(ms).toISOString();

class PgBootstrapStore implements BootstrapStore {
  readonly #db: PgDb;

  constructor(db: PgDb) {
    this.#db = db;
  }

  async get(): Promise<BootstrapSecret | undefined> {
    const r = await this.#db.one<{ hash: string; created_at: string; used_at: string | null }>('SELECT hash, created_at, used_at FROM broker_bootstrap WHERE id = 1');
    return r === undefined ? undefined : { hash: r.hash, createdAt: Date.parse(r.created_at), ...(r.used_at !== null && { usedAt: Date.parse(r.used_at) }) };
  }

  async create(hash: string, createdAt: number): Promise<boolean> {
    // Two replicas creating at once: the second waits on the first's row, then does nothing.
    return (await this.#db.execute('INSERT INTO broker_bootstrap (id, hash, created_at) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING', [hash, iso(createdAt)])) > 0;
  }

  async replace(hash: string, createdAt: number): Promise<void> {
    await this.#db.execute(
      'INSERT INTO broker_bootstrap (id, hash, created_at, used_at) VALUES (1, $1, $2, NULL) ON CONFLICT (id) DO UPDATE SET hash = EXCLUDED.hash, created_at = EXCLUDED.created_at, used_at = NULL',
      [hash, iso(createdAt)],
    );
  }

  async spend(hash: string, usedAt: number): Promise<boolean> {
    // Compare-and-set in one statement: a racing spend re-checks the row after the winner's
    // COMMIT (READ COMMITTED re-evaluates the WHERE on the new row) and finds it spent.
    return (await this.#db.execute('UPDATE broker_bootstrap SET used_at = $1 WHERE id = 1 AND hash = $2 AND used_at IS NULL', [iso(usedAt), hash])) > 0;
  }
}

export function pgBootstrapStore(db: PgDb): BootstrapStore {
  return new PgBootstrapStore(db);
}
