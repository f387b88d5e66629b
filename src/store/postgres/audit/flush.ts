// Durability of the audit appender's commits on PostgreSQL: the appender commits without waiting
// for the WAL flush (a stream's head is never held through an fsync); a batch is answered, and a
// read returns rows, only once one of these grouped flushes covers what they committed or saw.
import pg from 'pg';
import type { PgDb } from '../db.ts';

// A transaction that writes nothing but a logical-decoding message (no table, no row, no lock).
// With synchronous_commit on, its COMMIT returns once the WAL is flushed through its own commit
// record — so through every record inserted before it, whichever session inserted it — and, with
// synchronous standbys, once they confirmed it. Nothing is written (no xid, no commit record, no
// fsync) when the WAL is already flushed as far as it was inserted and no standby must confirm,
// nor when this session's commits do not wait for the flush anyway (synchronous_commit off: the
// server's setting, for `durability: 'store'`); on a standby nothing is needed: it only ever shows
// WAL the primary had flushed.
const FLUSH_SQL =
  "SELECT CASE WHEN pg_is_in_recovery() OR current_setting('synchronous_commit') = 'off' THEN NULL " +
  "WHEN current_setting('synchronous_standby_names') = '' AND pg_current_wal_flush_lsn() >= pg_current_wal_insert_lsn() THEN NULL " +
  "ELSE pg_logical_emit_message(true, 'portcullis.audit.flush', '') END";

/**
 * Flushes the WAL on a connection of its own, one flush at a time: every caller that asked while
 * a flush was under way shares the next one (group flush). A flush covers what was inserted in the
 * WAL before it started, so `flushed()` resolves with the first flush that starts after the call.
 */
export class WalFlusher {
  readonly #pool: pg.Pool;
  #waiting: PromiseWithResolvers<void>[] = [];
  /** The flushes under way and queued, until no caller waits. */
  #running: Promise<void> | undefined;

  /** `synchronous`: the flush commits with synchronous_commit = on; else with the server's setting. */
  constructor(db: PgDb, synchronous: boolean) {
    const base = db.pool.options;
    this.#pool = new pg.Pool({
      ...base,
      max: 1,
      application_name: `${base.application_name ?? 'portcullis'}-audit-flush`,
      allowExitOnIdle: true,
      options: [base.options, synchronous && '-c synchronous_commit=on'].filter(Boolean).join(' '),
    });
    this.#pool.on('error', () => {}); // an idle connection lost: the pool opens another
  }

  /** Resolves once the WAL is durable through everything inserted in it before this call. */
  flushed(): Promise<void> {
    const w = Promise.withResolvers<void>();
    this.#waiting.push(w);
    this.#running ??= this.#run();
    return w.promise;
  }

  async close(): Promise<void> {
    await this.#running;
    await this.#pool.end().catch(() => {});
  }

  async #run(): Promise<void> {
    while (this.#waiting.length > 0) {
      const group = this.#waiting.splice(0);
      try {
        await this.#flush();
        for (const w of group) w.resolve();
      } catch (err) {
        for (const w of group) w.reject(err);
      }
    }
    this.#running = undefined;
  }

  // A connection found broken (dropped while idle) is replaced once; a second failure is the
  // server's answer, and the waiters fail (closed).
  async #flush(): Promise<void> {
    try {
      await this.#pool.query(FLUSH_SQL);
    } catch {
      await this.#pool.query(FLUSH_SQL);
    }
  }
}
