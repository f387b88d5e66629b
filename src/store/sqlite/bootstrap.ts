// SQLite implementation of the broker domain's storage ports (src/broker/ports.ts): the one
// bootstrap secret's hash in `broker_bootstrap` (one row, id 1; times as ISO-8601 text).
import type { BootstrapSecret, BootstrapStore } from '../../broker/ports.ts';
import type { SqliteDb } from './db.ts';
import { migrate } from './db.ts';

const BROKER_MIGRATIONS = [
  { version: 1, up: 'CREATE TABLE broker_bootstrap (id INTEGER PRIMARY KEY CHECK (id = 1), hash TEXT NOT NULL, created_at TEXT NOT NULL, used_at TEXT)' },
] as const;

const iso = (ms: number) => new Date(ms).toISOString();

export class SqliteBootstrapStore implements BootstrapStore {
  readonly #db: SqliteDb;

  /** Brings the table up to date (at store open, before any flow runs). */
  constructor(db: SqliteDb) {
    migrate(db.raw, 'broker', BROKER_MIGRATIONS);
    this.#db = db;
  }

  get(): Promise<BootstrapSecret | undefined> {
    return this.#db.run((raw) => {
      const r = raw.prepare('SELECT hash, created_at, used_at FROM broker_bootstrap WHERE id = 1').get() as
        | { hash: string; created_at: string; used_at: string | null }
        | undefined;
      return r === undefined ? undefined : { hash: r.hash, createdAt: Date.parse(r.created_at), ...(r.used_at !== null && { usedAt: Date.parse(r.used_at) }) };
    });
  }

  create(hash: string, createdAt: number): Promise<boolean> {
    return this.#db.run(
      (raw) => raw.prepare('INSERT INTO broker_bootstrap (id, hash, created_at) VALUES (1, ?, ?) ON CONFLICT (id) DO NOTHING').run(hash, iso(createdAt)).changes > 0,
    );
  }

  async replace(hash: string, createdAt: number): Promise<void> {
    await this.#db.run((raw) =>
      raw
        .prepare('INSERT INTO broker_bootstrap (id, hash, created_at, used_at) VALUES (1, ?, ?, NULL) ON CONFLICT (id) DO UPDATE SET hash = excluded.hash, created_at = excluded.created_at, used_at = NULL')
        .run(hash, iso(createdAt)),
    );
  }

  spend(hash: string, usedAt: number): Promise<boolean> {
    return this.#db.run(
      (raw) => raw.prepare('UPDATE broker_bootstrap SET used_at = ? WHERE id = 1 AND hash = ? AND used_at IS NULL').run(iso(usedAt), hash).changes > 0,
    );
  }
}
