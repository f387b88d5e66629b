// The base of the SQLite repositories: the store's connection and a cache of its prepared statements.
import type { StatementSync } from 'node:sqlite';
import type { SqliteDb } from './db.ts';

/**
 * Prepared statements of one connection, made on first use. Every statement shape is fixed or one
 * of a few filter combinations, so the cache stays small.
 */
export class Statements {
  readonly #db: SqliteDb;
  readonly #cache = new Map<string, StatementSync>();

  constructor(db: SqliteDb) {
    this.#db = db;
  }

  get(sql: string): StatementSync {
    let s = this.#cache.get(sql);
    if (!s) this.#cache.set(sql, (s = this.#db.raw.prepare(sql)));
    return s;
  }
}

/** A repository over the store's connection; its statements are cached (shared with other repositories when `sql` is given). */
export class SqliteRepo {
  protected readonly db: SqliteDb;
  protected readonly sql: Statements;

  constructor(db: SqliteDb, sql: Statements = new Statements(db)) {
    this.db = db;
    this.sql = sql;
  }

  /** Runs statements once no other flow's transaction is open. */
  protected run<T>(fn: (s: (sql: string) => StatementSync) => T): Promise<T> {
    return this.db.run(() => fn((q) => this.sql.get(q)));
  }

  /** Runs statements atomically: in the caller's transaction if it has one, otherwise in one of their own. */
  protected atomic<T>(fn: (s: (sql: string) => StatementSync) => T): Promise<T> {
    return this.db.atomic(() => fn((q) => this.sql.get(q)));
  }
}
