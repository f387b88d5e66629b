// PostgreSQL implementation of the audit domain's storage ports (src/audit/ports.ts): the reader
// (heads, queries, scans for verification) and the store that hands out appenders, over one
// database that every replica shares (docs/storage.md, "Audit on PostgreSQL").
import type { AppenderOptions, AuditAppender, AuditSearch, AuditStore, ScanOptions, StreamHead, StreamScan } from '../../../audit/ports.ts';
import type { AuditRecord, AuditStreamName } from '../../../audit/types.ts';
import type { PgDb } from '../db.ts';
import { PgAppender } from './appender.ts';
import { queryEvents } from './query.ts';
import { scanStreams } from './scan.ts';

export { MIGRATIONS } from './schema.ts';

export class PgAuditStore implements AuditStore {
  readonly #db: PgDb;
  readonly #appenders = new Set<PgAppender>();

  constructor(db: PgDb) {
    this.#db = db;
  }

  async head(stream: AuditStreamName): Promise<StreamHead | undefined> {
    // seq 0 is the row an empty stream starts with.
    const h = await this.#db.one<StreamHead>('SELECT seq, hash FROM audit_heads WHERE stream = $1 AND seq > 0', [stream]);
    return h && { seq: h.seq, hash: h.hash };
  }

  query(search: AuditSearch): Promise<AuditRecord[]> {
    return queryEvents(this.#db, search);
  }

  scanStreams(opts: ScanOptions = {}): Promise<StreamScan[]> {
    return scanStreams(this.#db, opts);
  }

  /**
   * An appender on its own connections. `writer` makes no difference here (hashing is done on
   * this thread either way); `durability: 'full'` commits with synchronous_commit = on.
   */
  appender(opts: AppenderOptions): AuditAppender {
    const a = new PgAppender(this.#db, opts, () => this.#appenders.delete(a));
    this.#appenders.add(a);
    return a;
  }

  /** Closes the appenders still open (their connections), as the store closes. */
  async close(): Promise<void> {
    await Promise.all([...this.#appenders].map((a) => a.close()));
  }
}

export function pgAuditStore(db: PgDb): PgAuditStore {
  return new PgAuditStore(db);
}
