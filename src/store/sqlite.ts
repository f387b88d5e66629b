// The embedded store: one SQLite file per data directory through node:sqlite.
// Each domain owns its tables and its migrations (see docs/storage.md), so a domain can
// gain a PostgreSQL implementation of its repository interface without touching the others.
import { DatabaseSync } from 'node:sqlite';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';

export type Db = DatabaseSync;

export interface Migration {
  version: number;
  /** SQL run once, inside a transaction. */
  up: string;
}

/**
 * After a checkpoint the WAL is truncated back to at most this many bytes, so a burst of writes
 * does not leave a WAL file the size of the burst on a small volume (SQLite's default keeps it).
 */
export const JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024;

/**
 * Settings for every connection to the store (the audit writer opens its own). Audit appends
 * maintain secondary indexes (actor, subject) whose inserts land all over their B-trees: a 64 MiB
 * page cache and fewer WAL checkpoints took batched raw inserts from about 50k to 85k rows/s here.
 */
export const CONNECTION_PRAGMAS = `PRAGMA busy_timeout = 5000;
           PRAGMA cache_size = -65536;
           PRAGMA wal_autocheckpoint = 4000;
           PRAGMA journal_size_limit = ${JOURNAL_SIZE_LIMIT};`;

export function openDatabase(path: string): Db {
  if (path !== ':memory:') {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    // Create the file owner-only first: SQLite gives its -wal and -shm files the same mode.
    closeSync(openSync(path, 'a', 0o600));
  }
  const db = new DatabaseSync(path);
  // Larger pages suit the audit rows (about 600 bytes); only takes effect on a new, empty file.
  db.exec(`PRAGMA page_size = 8192;
           PRAGMA journal_mode = WAL;
           PRAGMA synchronous = NORMAL;
           PRAGMA foreign_keys = ON;
           ${CONNECTION_PRAGMAS}
           CREATE TABLE IF NOT EXISTS schema_migrations (
             domain TEXT NOT NULL, version INTEGER NOT NULL, applied_at TEXT NOT NULL,
             PRIMARY KEY (domain, version));`);
  return db;
}

/** Applies a domain's pending migrations in order, each in its own transaction. */
export function migrate(db: Db, domain: string, migrations: readonly Migration[]): void {
  const row = db.prepare('SELECT MAX(version) AS v FROM schema_migrations WHERE domain = ?').get(domain) as
    | { v: number | null }
    | undefined;
  const current = row?.v ?? 0;
  for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
    if (m.version <= current) continue;
    transaction(db, () => {
      db.exec(m.up);
      db.prepare('INSERT INTO schema_migrations (domain, version, applied_at) VALUES (?, ?, ?)').run(
        domain,
        m.version,
        new Date().toISOString(),
      );
    });
  }
}

/** Runs `fn` in a transaction (nested calls join the outer one). */
export function transaction<T>(db: Db, fn: () => T): T {
  if (db.isTransaction) return fn();
  db.exec('BEGIN IMMEDIATE');
  try {
    const out = fn();
    db.exec('COMMIT');
    return out;
  } catch (e) {
    db.exec('ROLLBACK');
    throw e;
  }
}
