// Reading a stream for verification: its head row and checkpoints, and its events page by page
// into the audit domain's ChainScan (hashes recomputed there). Also the read snapshot that keeps
// head, checkpoints and events consistent.
import type { StatementSync } from 'node:sqlite';
import type { Db } from '../db.ts';
import { GENESIS } from '../../../audit/chain.ts';
import type { CheckpointRow } from '../../../audit/checkpoint.ts';
import type { ScanOptions, StreamHead, StreamScan } from '../../../audit/ports.ts';
import { ChainScan, emptyScan, type ScanResult, type ScanRow } from '../../../audit/scan.ts';
import { AUDIT_STREAMS, type AuditStreamName } from '../../../audit/types.ts';

// Read in pages with all(): measurably cheaper per row than iterate().
const PAGE = 8192;
const SELECT =
  'SELECT seq, time, type, actor, boundary, subject, decision, payload, prev_hash, hash FROM audit_events ' +
  `WHERE stream = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ${PAGE}`;

const statements = new WeakMap<Db, StatementSync>();

/**
 * Scans seq in [from, to]. `expectPrev` is the hash the first row must link to (undefined when
 * scanning a middle range whose predecessor another scan owns).
 */
export function scanRange(db: Db, stream: string, from: number, to: number, expectPrev: string | undefined, cpSeqs: ReadonlySet<number>): ScanResult {
  let stmt = statements.get(db);
  if (!stmt) {
    stmt = db.prepare(SELECT);
    stmt.setReturnArrays(true);
    statements.set(db, stmt);
  }
  const scan = new ChainScan(stream, from, expectPrev, cpSeqs);
  for (let after = from - 1; ; ) {
    const rows = stmt.all(stream, after, to) as unknown as ScanRow[];
    scan.rows(rows);
    if (rows.length < PAGE) break;
    after = rows[rows.length - 1][0] as number;
  }
  return scan.result;
}

export function tableExists(db: Db, name: string): boolean {
  return db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(name) !== undefined;
}

export interface StreamState {
  head: StreamHead | undefined;
  checkpoints: CheckpointRow[];
}

export function loadStreamState(db: Db, stream: AuditStreamName): StreamState {
  const head = db.prepare('SELECT seq, hash FROM audit_heads WHERE stream = ?').get(stream) as StreamHead | undefined;
  const checkpoints = db
    .prepare('SELECT stream, seq, hash, time, prev_seq, kid, sig FROM audit_checkpoints WHERE stream = ? ORDER BY seq')
    .all(stream) as unknown as CheckpointRow[];
  return { head: head && { seq: head.seq, hash: head.hash }, checkpoints: checkpoints.map((c) => ({ ...c })) };
}

/** Seqs whose recomputed hash a scan must report: the stored checkpoints' and the extra ones. */
export function checkpointSeqs(state: StreamState, extra: readonly number[] | undefined): Set<number> {
  const seqs = new Set(state.checkpoints.map((c) => c.seq));
  for (const s of extra ?? []) seqs.add(s);
  return seqs;
}

/** Runs `fn` in a read transaction, so head, checkpoints and events come from one snapshot. */
export function readSnapshot<T>(db: Db, fn: () => T): T {
  if (db.isTransaction) return fn();
  db.exec('BEGIN');
  try {
    return fn();
  } finally {
    db.exec('COMMIT');
  }
}

/** A stream of a store without audit tables (never written, or not this store's file). */
export function emptyStream(stream: AuditStreamName): StreamScan {
  return { stream, head: undefined, checkpoints: [], scan: emptyScan() };
}

/** Each stream from one snapshot, in this thread. */
export function scanInline(db: Db, opts: ScanOptions): StreamScan[] {
  const streams = opts.streams ?? AUDIT_STREAMS;
  if (!tableExists(db, 'audit_events')) return streams.map(emptyStream);
  return streams.map((stream) =>
    readSnapshot(db, () => {
      const state = loadStreamState(db, stream);
      const scan = scanRange(db, stream, 1, Number.MAX_SAFE_INTEGER, GENESIS[stream], checkpointSeqs(state, opts.extraSeqs?.get(stream)));
      return { stream, ...state, scan };
    }),
  );
}
