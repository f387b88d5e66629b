// The audit domain's storage ports: what it needs from a store, implemented in src/store/.
// The audit streams: group-committed appends, queries, scans for verification.
import type { CheckpointRow } from './checkpoint.ts';
import type { CheckpointPolicy, LinkResult } from './linker.ts';
import type { PreparedEvent } from './prepare.ts';
import type { ScanResult } from './scan.ts';
import type { AuditRecord, AuditStreamName } from './types.ts';

/** One group commit: events to link and store, and checkpoints signed since the last one. */
export interface AppendBatch {
  events: readonly PreparedEvent[];
  /** Signed checkpoints to store in the same transaction (one already stored is ignored). */
  checkpoints: readonly CheckpointRow[];
  /** The clock's ms, for time-based checkpoints. */
  now: number;
  /** `due`: also checkpoint streams whose interval has passed; `force`: every stream with unsigned events. */
  checkpoint: 'none' | 'due' | 'force';
  /** False while this log cannot sign (another replica signs): no checkpoint is marked due. */
  sign?: boolean;
}

/** Per event of the batch: seq, prev_hash, hash, raised times; and the checkpoints now due. */
export type AppendResult = LinkResult;

/**
 * Writes batches to the streams. Each batch is one transaction: it reads the heads of the streams
 * it touches, links its events onto them with `linkEvents` (src/audit/linker.ts) — which decides
 * seqs, hashes and due checkpoints —, stores the events, the heads it returned and the batch's
 * checkpoints, and commits. The promise resolves only once the batch is durable, and rejects if
 * any of it was not stored (then none of it was). Batches are applied in the order given; several
 * may be in flight and may share a transaction.
 */
export interface AuditAppender {
  /** False once the store is closed: appends are refused (fail closed). */
  readonly isOpen: boolean;
  /** Batches to hand over before waiting for the first to be answered. */
  readonly maxInFlight: number;
  /** A tick's appends beyond this many are sent at once (the appender writes while the rest are prepared). */
  readonly chunk: number;
  /** Transactions committed so far, where the appender counts them (benchmarks: commits per unit of work). */
  readonly commits?: number;
  append(batch: AppendBatch): Promise<AppendResult>;
  /** Finishes what was handed over and releases the appender's resources (not the store). */
  close(): Promise<void>;
}

export interface AppenderOptions {
  policy: CheckpointPolicy;
  /**
   * `full`: a resolved batch survives power loss, not only a process crash (SQLite:
   * synchronous = FULL). `store`: whatever the store is configured with.
   */
  durability: 'full' | 'store';
  /** `worker`: write off the caller's thread where the store can (SQLite file); `inline`: on it. */
  writer: 'worker' | 'inline';
}

/** A page of one gateway session's records (AuditReader.sessionRecords). */
export interface SessionRecordsQuery {
  type?: string;
  afterSeq?: number;
  limit: number;
}

/** A stream's committed head. */
export interface StreamHead {
  seq: number;
  hash: string;
}

/**
 * A validated query (see normalizeQuery in src/audit/query.ts). All given filters must match;
 * `identity` matches the actor or the subject. With `stream`, results are in seq order; without,
 * in (time, stream, seq) order; `order` reverses; at most `limit`.
 */
export interface AuditSearch {
  stream?: AuditStreamName;
  /** Only seq > afterSeq (with a stream). */
  afterSeq?: number;
  /** Only seq <= maxSeq. */
  maxSeq?: number;
  /** ISO-8601 UTC, as stored: time >= since, time < until. */
  since?: string;
  until?: string;
  identity?: string;
  actor?: string;
  subject?: string;
  boundary?: string;
  type?: string;
  decision?: 'allow' | 'deny';
  limit: number;
  order: 'asc' | 'desc';
}

export interface ScanOptions {
  /** Streams to scan, in this order (default: all). */
  streams?: readonly AuditStreamName[];
  /** Seqs whose recomputed hash the scan must report besides the stored checkpoints' (witnessed checkpoints). */
  extraSeqs?: ReadonlyMap<AuditStreamName, readonly number[]>;
  /**
   * Scan in parallel threads where the store can, leaving the caller's event loop free. Without,
   * each stream is scanned in one snapshot.
   */
  parallel?: boolean;
  /** Scanning threads (default: available cores, at most 4). */
  threads?: number;
  /** Streams shorter than this are scanned by one thread (default 50,000). */
  minParallel?: number;
  /** Scan no part in the caller's thread (default false). */
  offMainThread?: boolean;
  /**
   * Scan only up to each head as read at the start (a store being written to): rows appended
   * later are left for the next run. Only for parallel scans.
   */
  boundToHead?: boolean;
}

/** What verification of one stream judges: its head row, its checkpoints, and a scan of its events. */
export interface StreamScan {
  stream: AuditStreamName;
  head: StreamHead | undefined;
  checkpoints: CheckpointRow[];
  /**
   * The stream's events from seq 1, checked with ChainScan (and stitch for chunks,
   * src/audit/scan.ts) from the genesis hash, reporting hashes at every checkpoint and extra seq.
   */
  scan: ScanResult;
}

/** Reading the streams back. */
export interface AuditReader {
  /** The stream's committed head (undefined: the stream is empty). */
  head(stream: AuditStreamName): Promise<StreamHead | undefined>;
  query(search: AuditSearch): Promise<AuditRecord[]>;
  /**
   * The `session` stream's records of one gateway session (`payload.session`), in seq order,
   * through the session index (both stores): after `afterSeq`, of `type` when given, at most `limit`.
   */
  sessionRecords(session: string, opts: SessionRecordsQuery): Promise<AuditRecord[]>;
  /**
   * For verification: each stream's head and checkpoints, read together, and a scan of its events
   * in the same snapshot (or, parallel, of the rows up to the head or the last row seen then).
   */
  scanStreams(opts?: ScanOptions): Promise<StreamScan[]>;
}

/** The audit domain's whole store. */
export interface AuditStore extends AuditReader {
  /** An appender with its own write path (close it when done). */
  appender(opts: AppenderOptions): AuditAppender;
}
