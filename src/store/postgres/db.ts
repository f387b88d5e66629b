// The PostgreSQL store's connection pool: parameterised queries, the async unit of work
// (transactions that join across awaits through AsyncLocalStorage, like SqliteDb), named
// transaction locks, and migrations run once under an advisory lock. Only src/store/ uses it.
import { AsyncLocalStorage } from 'node:async_hooks';
import pg from 'pg';
import type { PoolClient, QueryResultRow } from 'pg';
import type { UnitOfWork } from '../ports.ts';
import type { SqlDialect } from '../rows/sql.ts';
import { PortcullisError } from '../../common/errors.ts';

/** One domain's migration: SQL run once, in a transaction, with the others of its domain in order. */
export interface PgMigration {
  version: number;
  up: string;
}

/** A domain's migrations, as each repository module declares them. */
export interface PgDomainMigrations {
  domain: string;
  migrations: readonly PgMigration[];
}

/** The store's schema is newer than this build knows (a newer replica migrated it): refuse to run on it. */
export class StoreSchemaTooNew extends PortcullisError {
  constructor(domain: string, found: number, known: number) {
    super('store_schema_too_new', 503, `the store's ${domain} schema is at version ${found} but this Portcullis knows only up to ${known}: upgrade this replica (a newer one migrated the store)`);
  }
}

/** The store could not be reached or refused us; the message says which and never carries the URL's password. */
export class StoreUnavailable extends PortcullisError {
  constructor(detail: string) {
    super('store_unavailable', 503, `the PostgreSQL store is unavailable: ${detail}`);
  }
}

/**
 * Runs `fn` on one pooled connection and releases it after. The server lost while the client is out
 * of the pool is reported on the client as well as to the statement under way (which fails with
 * it); unheard, it would be an uncaught exception. A client that saw it, or that `fn` marks with
 * `broken()` (e.g. a failed ROLLBACK), is destroyed instead of going back to the pool.
 */
export async function withClient<T>(pool: pg.Pool, fn: (client: PoolClient, broken: () => void) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken = false;
  const lost = (): void => void (broken = true);
  client.on('error', lost);
  try {
    return await fn(client, lost);
  } finally {
    client.off('error', lost);
    client.release(broken);
  }
}

/** Rolls back after `err` and rethrows it; a ROLLBACK that fails marks the connection broken. */
export async function rollbackAndThrow(client: PoolClient, broken: () => void, err: unknown): Promise<never> {
  try {
    await client.query('ROLLBACK');
  } catch {
    broken();
  }
  throw err;
}

/** Key of the session-level advisory lock held while migrating (any 64-bit constant; "pcx-migr"). */
const MIGRATION_LOCK = 0x7063782d6d696772n;

// int8 (counts, epoch milliseconds) as JavaScript numbers: every such value we store is below 2^53.
const TYPES = {
  getTypeParser: ((oid: number, format?: string) => (oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text'))) as typeof pg.types.getTypeParser,
};

/** PostgreSQL's SQL for the shared row modules (src/store/rows/): `$n` placeholders, JSON cast to JSONB, lists (of text) bound as one array. */
export const PG_SQL: SqlDialect = {
  placeholder: (n) => `$${n}`,
  jsonPlaceholder: (n) => `$${n}::jsonb`,
  oneOf: (column, list, values) => `${column} = ANY($${values.push([...list])}::text[])`,
};

export interface PgDbOptions {
  /** Most connections the pool opens (default 10). */
  pool?: number;
  /** Name the server shows for our connections (pg_stat_activity). */
  applicationName?: string;
}

/** Strips credentials from a PostgreSQL error or URL before it reaches a message. */
export function redactUrl(text: string): string {
  return text.replace(/(postgres(?:ql)?:\/\/)[^@\s/]*@/gi, '$1…@');
}

/**
 * A pool of connections to one database. `query` runs on the calling flow's transaction client
 * when it is inside `transaction`, otherwise on any pooled connection (autocommit).
 */
export class PgDb implements UnitOfWork {
  static readonly #flow = new AsyncLocalStorage<{ db: PgDb; client: PoolClient }>();
  readonly pool: pg.Pool;
  readonly url: string;
  #open = true;

  private constructor(url: string, opts: PgDbOptions) {
    this.url = url;
    this.pool = new pg.Pool({
      connectionString: url,
      max: opts.pool ?? 10,
      application_name: opts.applicationName ?? 'portcullis',
      types: TYPES,
      connectionTimeoutMillis: 10_000,
      idleTimeoutMillis: 30_000,
    });
    // An idle client losing its server is reported here; the pool drops it and opens another.
    this.pool.on('error', () => {});
  }

  /** Connects (checking the server answers) and returns the pool. */
  static async open(url: string, opts: PgDbOptions = {}): Promise<PgDb> {
    const db = new PgDb(url, opts);
    try {
      await db.pool.query('SELECT 1');
    } catch (err) {
      await db.close();
      throw new StoreUnavailable(redactUrl((err as Error).message));
    }
    return db;
  }

  get isOpen(): boolean {
    return this.#open;
  }

  async close(): Promise<void> {
    if (!this.#open) return;
    this.#open = false;
    await this.pool.end().catch(() => {});
  }

  /** True while the calling flow is inside one of this pool's transactions. */
  get inTransaction(): boolean {
    return PgDb.#flow.getStore()?.db === this;
  }

  /** Runs one statement (on the flow's transaction if any) and returns its rows. */
  async query<R extends QueryResultRow = Record<string, unknown>>(sql: string, params: readonly unknown[] = []): Promise<R[]> {
    const tx = PgDb.#flow.getStore();
    const runner = tx?.db === this ? tx.client : this.pool;
    const res = await runner.query<R>(sql, params as unknown[]);
    return res.rows;
  }

  /** Runs one statement and returns how many rows it changed. */
  async execute(sql: string, params: readonly unknown[] = []): Promise<number> {
    const tx = PgDb.#flow.getStore();
    const runner = tx?.db === this ? tx.client : this.pool;
    const res = await runner.query(sql, params as unknown[]);
    return res.rowCount ?? 0;
  }

  /** The first row of a query, or undefined. */
  async one<R extends QueryResultRow = Record<string, unknown>>(sql: string, params: readonly unknown[] = []): Promise<R | undefined> {
    return (await this.query<R>(sql, params))[0];
  }

  /**
   * Runs `fn` in a transaction on one pooled connection (READ COMMITTED; ordering that matters is
   * made explicit with `lock`). Nested calls join the outer transaction.
   */
  async transaction<T>(fn: () => Promise<T>): Promise<T> {
    if (this.inTransaction) return fn();
    return withClient(this.pool, async (client, broken) => {
      try {
        await client.query('BEGIN');
        const out = await PgDb.#flow.run({ db: this, client }, fn);
        await client.query('COMMIT');
        return out;
      } catch (err) {
        return rollbackAndThrow(client, broken, err);
      }
    });
  }

  /** Holds a transaction-scoped advisory lock named `key` until the transaction ends. */
  async lock(key: string): Promise<void> {
    if (!this.inTransaction) throw new Error(`lock(${key}) outside a transaction`);
    await this.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [key]);
  }

  /** Sends a notification at commit (inside a transaction) or at once (outside). */
  async notify(channel: string, payload: string): Promise<void> {
    await this.query('SELECT pg_notify($1, $2)', [channel, payload]);
  }

  /**
   * Applies every domain's pending migrations, each in its own transaction, under a session-level
   * advisory lock so that replicas starting together migrate once; then refuses to go on if any
   * domain's schema is newer than this build knows.
   */
  async migrate(domains: readonly PgDomainMigrations[]): Promise<{ applied: { domain: string; version: number }[] }> {
    const applied: { domain: string; version: number }[] = [];
    await withClient(this.pool, async (client) => {
      await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK.toString()]);
      try {
        await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
            domain TEXT NOT NULL, version INTEGER NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (domain, version))`);
        const rows = (await client.query<{ domain: string; v: number }>('SELECT domain, MAX(version) AS v FROM schema_migrations GROUP BY domain')).rows;
        const current = new Map(rows.map((r) => [r.domain, Number(r.v)]));
        for (const d of domains) {
          const known = Math.max(0, ...d.migrations.map((m) => m.version));
          const at = current.get(d.domain) ?? 0;
          if (at > known) throw new StoreSchemaTooNew(d.domain, at, known);
          for (const m of [...d.migrations].sort((a, b) => a.version - b.version)) {
            if (m.version <= at) continue;
            await client.query('BEGIN');
            try {
              await client.query(m.up);
              await client.query('INSERT INTO schema_migrations (domain, version) VALUES ($1, $2)', [d.domain, m.version]);
              await client.query('COMMIT');
            } catch (err) {
              await client.query('ROLLBACK');
              throw err;
            }
            applied.push({ domain: d.domain, version: m.version });
          }
        }
      } finally {
        await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK.toString()]);
      }
    });
    return { applied };
  }

  /** Throws StoreSchemaTooNew if any domain is past what this build knows; true if some migration is pending. */
  async pending(domains: readonly PgDomainMigrations[]): Promise<boolean> {
    const exists = await this.one<{ t: string | null }>("SELECT to_regclass('schema_migrations')::text AS t");
    if (!exists?.t) return domains.some((d) => d.migrations.length > 0);
    const rows = await this.query<{ domain: string; v: number }>('SELECT domain, MAX(version) AS v FROM schema_migrations GROUP BY domain');
    const current = new Map(rows.map((r) => [r.domain, Number(r.v)]));
    let pending = false;
    for (const d of domains) {
      const known = Math.max(0, ...d.migrations.map((m) => m.version));
      const at = current.get(d.domain) ?? 0;
      if (at > known) throw new StoreSchemaTooNew(d.domain, at, known);
      if (at < known) pending = true;
    }
    return pending;
  }
}
