// SQLite implementation of the audit domain's storage ports (src/audit/ports.ts) over audit.db:
// the reader (heads, queries, scans for verification) and the store that also migrates the
// tables and hands out appenders (inline, or a worker thread with synchronous=FULL).
import type { SqliteDb } from '../db.ts';
import type { AppenderOptions, AuditAppender, AuditReader, AuditSearch, AuditStore, ScanOptions, SessionRecordsQuery, StreamHead, StreamScan } from '../../../audit/ports.ts';
import type { AuditRecord, AuditStreamName } from '../../../audit/types.ts';
import { InlineAppender, WorkerAppender } from './appender.ts';
import { queryEvents, sessionRecords } from './query.ts';
import { scanFileParallel } from './scan-parallel.ts';
import { scanInline } from './scan.ts';
import { migrateAudit } from './schema.ts';

/** FULL: a committed audit batch survives power loss (2 in `PRAGMA synchronous`). */
const SYNCHRONOUS_FULL = 2;

/** Reads the streams; works on a read-only connection and on a store from before migration 2. */
export class SqliteAuditReader implements AuditReader {
  protected readonly db: SqliteDb;

  constructor(db: SqliteDb) {
    this.db = db;
  }

  head(stream: AuditStreamName): Promise<StreamHead | undefined> {
    return this.db.run((raw) => {
      const h = raw.prepare('SELECT seq, hash FROM audit_heads WHERE stream = ?').get(stream) as StreamHead | undefined;
      return h && { seq: h.seq, hash: h.hash };
    });
  }

  query(search: AuditSearch): Promise<AuditRecord[]> {
    return this.db.run((raw) => queryEvents(raw, search));
  }

  sessionRecords(session: string, opts: SessionRecordsQuery): Promise<AuditRecord[]> {
    return this.db.run((raw) => sessionRecords(raw, session, opts));
  }

  async scanStreams(opts: ScanOptions = {}): Promise<StreamScan[]> {
    const path = this.db.raw.location();
    // In parallel on a file (worker threads read it on their own connections); else in one snapshot per stream.
    if (opts.parallel && path !== null) return scanFileParallel(path, opts);
    return this.db.run((raw) => scanInline(raw, opts));
  }
}

export class SqliteAuditStore extends SqliteAuditReader implements AuditStore {
  /** Migrates the audit tables (the connection must be writable). */
  constructor(db: SqliteDb) {
    super(db);
    migrateAudit(db.raw);
  }

  appender(opts: AppenderOptions): AuditAppender {
    const raw = this.db.raw;
    const synchronous = opts.durability === 'full' ? SYNCHRONOUS_FULL : (raw.prepare('PRAGMA synchronous').get() as { synchronous: number }).synchronous;
    const path = raw.location();
    if (path !== null && opts.writer === 'worker') return new WorkerAppender(this.db, { path, synchronous, policy: opts.policy });
    return new InlineAppender(this.db, { synchronous, policy: opts.policy });
  }
}
