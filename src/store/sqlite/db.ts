// The embedded store's connection: one SQLite file through node:sqlite, its pragmas, migrations
// and the async unit of work (transactions that join across awaits, see SqliteDb). Only files
// under src/store/ use it; domains reach storage through their repository ports.
import { DatabaseSync } from 'node:sqlite';
import { AsyncLocalStorage } from 'node:async_hooks';
import type { UnitOfWork } from '../ports.ts';
import type { SqlDialect } from '../rows/sql.ts';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';

export type Db = DatabaseSync;

/** SQLite's SQL for the shared row modules (src/store/rows/): `?` placeholders, JSON bound as TEXT. */
export const SQLITE_SQL: SqlDialect = {
  placeholder: () => '?',
  jsonPlaceholder: () => '?',
  oneOf(column, list, values) {
    if (list.length === 0) return '0';
    values.push(...list);
    return `${column} IN (${list.map(() => '?').join(', ')})`;
  },
};

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

/**
 * One SQLite connection shared by the repositories of a store, with an async unit of work.
 * node:sqlite is synchronous and a connection has one transaction, so while one flow's
 * transaction is open across awaits, statements from other flows must not run inside it: every
 * repository call first `settle()`s — it returns at once unless another flow's transaction is
 * open, and then waits for it to end. The flow a transaction belongs to is tracked with
 * AsyncLocalStorage, so repositories need no transaction handle.
 */
export class SqliteDb implements UnitOfWork {
  static readonly #flow = new AsyncLocalStorage<object>();
  readonly raw: DatabaseSync;
  #tx: object | undefined;
  #ended: Promise<void> = Promise.resolve();

  constructor(raw: DatabaseSync) {
    this.raw = raw;
  }

  static open(path: string): SqliteDb {
    return new SqliteDb(openDatabase(path));
  }

  get isOpen(): boolean {
    return this.raw.isOpen;
  }

  close(): void {
    if (this.raw.isOpen) this.raw.close();
  }

  /** True while the calling flow is inside one of this connection's transactions. */
  get inTransaction(): boolean {
    return this.#tx !== undefined && SqliteDb.#flow.getStore() === this.#tx;
  }

  /** Waits until no other flow's transaction is open on this connection. */
  async settle(): Promise<void> {
    while (this.#tx !== undefined && SqliteDb.#flow.getStore() !== this.#tx) await this.#ended;
  }

  /** Runs synchronous statements once no other flow's transaction is open. */
  async run<T>(fn: (db: DatabaseSync) => T): Promise<T> {
    await this.settle();
    return fn(this.raw);
  }

  /**
   * Runs synchronous statements atomically: inside the caller's transaction if it has one,
   * otherwise in a transaction of their own (no await can split them).
   */
  async atomic<T>(fn: (db: DatabaseSync) => T): Promise<T> {
    await this.settle();
    if (this.inTransaction || this.raw.isTransaction) return fn(this.raw);
    return transaction(this.raw, () => fn(this.raw));
  }

  async transaction<T>(fn: () => Promise<T>): Promise<T> {
    if (this.inTransaction) return fn();
    // Check and take in the same turn: no await between the last check and setting #tx.
    while (this.#tx !== undefined) await this.#ended;
    const token = {};
    let end!: () => void;
    this.#tx = token;
    this.#ended = new Promise((resolve) => (end = resolve));
    try {
      this.raw.exec('BEGIN IMMEDIATE');
      const out = await SqliteDb.#flow.run(token, fn);
      this.raw.exec('COMMIT');
      return out;
    } catch (err) {
      if (this.raw.isOpen && this.raw.isTransaction) this.raw.exec('ROLLBACK');
      throw err;
    } finally {
      this.#tx = undefined;
      end();
    }
  }

  async lock(key: string): Promise<void> {
    if (!this.inTransaction) throw new Error(`lock(${key}) outside a transaction`);
  }
}
