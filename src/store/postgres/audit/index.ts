// PostgreSQL implementation of the audit domain's storage ports (src/audit/ports.ts): the reader
// (heads, queries, scans for verification) and the store that hands out appenders, over one
// database that every replica shares (docs/storage.md, "Audit on PostgreSQL").
import type { AppenderOptions, AuditAppender, AuditSearch, AuditStore, ScanOptions, SessionRecordsQuery, StreamHead, StreamScan } from '../../../audit/ports.ts';
import type { AuditRecord, AuditStreamName } from '../../../audit/types.ts';
import type { PgDb } from '../db.ts';
import { PgAppender } from './appender.ts';
import { WalFlusher } from './flush.ts';
import { queryEvents, sessionRecords } from './query.ts';
import { scanStreams } from './scan.ts';

export { MIGRATIONS } from './schema.ts';

/**
 * Appenders commit without waiting for the WAL flush and answer after a grouped one (appender.ts),
 * so a committed batch is visible to readers a few ms before it is durable. Reads wait for a flush
 * too before they return: a query, a follow or a verification never shows a record that a crash
 * of the server could still take back (and whose seq the chain would then give to another record).
 */
export class PgAuditStore implements AuditStore {
  readonly #db: PgDb;
  readonly #appenders = new Set<PgAppender>();
  /** One per synchronous_commit setting (`on`, the server's), opened on first use. */
  readonly #flushers = new Map<boolean, WalFlusher>();

  constructor(db: PgDb) {
    this.#db = db;
  }

  async head(stream: AuditStreamName): Promise<StreamHead | undefined> {
    // seq 0 is the row an empty stream starts with.
    const h = await this.#db.one<StreamHead>('SELECT seq, hash FROM audit_heads WHERE stream = $1 AND seq > 0', [stream]);
    await this.#durable();
    return h && { seq: h.seq, hash: h.hash };
  }

  async query(search: AuditSearch): Promise<AuditRecord[]> {
    const records = await queryEvents(this.#db, search);
    await this.#durable();
    return records;
  }

  async sessionRecords(session: string, opts: SessionRecordsQuery): Promise<AuditRecord[]> {
    const records = await sessionRecords(this.#db, session, opts);
    await this.#durable();
    return records;
  }

  async scanStreams(opts: ScanOptions = {}): Promise<StreamScan[]> {
    const scans = await scanStreams(this.#db, opts);
    await this.#durable();
    return scans;
  }

  /**
   * An appender on its own connections. `writer` makes no difference here (hashing is done on
   * this thread either way); `durability: 'full'` answers after a flush with synchronous_commit =
   * on, `store` after one with the server's setting.
   */
  appender(opts: AppenderOptions): AuditAppender {
    const a = new PgAppender(this.#db, opts, this.#flusher(opts.durability === 'full'), () => this.#appenders.delete(a));
    this.#appenders.add(a);
    return a;
  }

  /** Closes the appenders still open (their connections), then the flushers, as the store closes. */
  async close(): Promise<void> {
    await Promise.all([...this.#appenders].map((a) => a.close()));
    await Promise.all([...this.#flushers.values()].map((f) => f.close()));
    this.#flushers.clear();
  }

  /** Resolves once what the caller has read (in a snapshot taken before this call) is durable. */
  #durable(): Promise<void> {
    return this.#flusher(true).flushed();
  }

  #flusher(synchronous: boolean): WalFlusher {
    let f = this.#flushers.get(synchronous);
    if (!f) this.#flushers.set(synchronous, (f = new WalFlusher(this.#db, synchronous)));
    return f;
  }
}

export function pgAuditStore(db: PgDb): PgAuditStore {
  return new PgAuditStore(db);
}
