// Parallel verification of a database file: each stream's seq range is cut into chunks scanned
// at once (this thread and worker threads, each on its own read-only connection), then stitched:
// a chunk's first prev_hash must equal the previous chunk's last hash. The verdict is the same as
// verifyAll's; only the wall time differs.
import { availableParallelism } from 'node:os';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { Worker } from 'node:worker_threads';
import { NotFound } from '../common/errors.ts';
import { GENESIS } from './chain.ts';
import { CheckpointVerifier } from './checkpoint.ts';
import { scanRange, type ScanResult } from './scan.ts';
import { AUDIT_STREAMS, type AuditStreamName, type AuditVerification, type StreamVerification } from './types.ts';
import { AUDIT_DB_FILE, EMPTY_SCAN, checkpointSeqs, judge, loadStreamState, readSnapshot, resolverFor, tableExists, withWitness, type ResolverSource } from './verify.ts';
import type { WitnessedCheckpoints } from './witness.ts';
import type { ScanJob } from './verify-worker.ts';

export interface ParallelVerifyOptions {
  /** Scanning threads including this one (default: available cores, at most 4). */
  threads?: number;
  /**
   * Verify only up to each head row read at the start (for a store that is being written to).
   * Rows appended after the start are left for the next run. Default false (offline).
   */
  boundToHead?: boolean;
  /** Streams shorter than this are scanned in this thread alone (default 50,000). */
  minParallel?: number;
  /** Scan chunk 0 in a worker too, leaving this thread's event loop free (default false). */
  offMainThread?: boolean;
  /** Witnessed checkpoints to check the store against (read before the store's heads). */
  witness?: WitnessedCheckpoints;
}

/** Like verifyDataDir, in parallel. */
export function verifyDataDirParallel(dir: string, keys: ResolverSource, opts: ParallelVerifyOptions = {}): Promise<AuditVerification> {
  const path = join(dir, AUDIT_DB_FILE);
  if (!existsSync(path)) return Promise.reject(new NotFound(`database ${path}`));
  return verifyFileParallel(path, keys, opts);
}

export async function verifyFileParallel(path: string, keys: ResolverSource, opts: ParallelVerifyOptions = {}): Promise<AuditVerification> {
  const threads = Math.max(1, opts.threads ?? Math.min(availableParallelism(), 4));
  const minParallel = opts.minParallel ?? 50_000;
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const verifier = new CheckpointVerifier(resolverFor(keys, db));
    const streams: StreamVerification[] = [];
    const hasTables = tableExists(db, 'audit_events');
    for (const stream of AUDIT_STREAMS) {
      const witnessed = opts.witness ? (opts.witness.byStream.get(stream) ?? []) : undefined;
      if (!hasTables) {
        streams.push(judge(stream, { head: undefined, cps: [], ...(witnessed && { witnessed }) }, EMPTY_SCAN, verifier));
        continue;
      }
      const { state, maxSeq } = readSnapshot(db, () => ({
        state: { ...loadStreamState(db, stream), ...(witnessed && { witnessed }) },
        maxSeq: (db.prepare('SELECT MAX(seq) AS m FROM audit_events WHERE stream = ?').get(stream) as { m: number | null }).m ?? 0,
      }));
      // Without a head row there is nothing to bound by (and its absence is itself reported).
      const to = opts.boundToHead && state.head ? Math.min(state.head.seq, maxSeq) : maxSeq;
      const cpSeqs = [...checkpointSeqs(state)];
      const chunks = to < minParallel || threads === 1 ? 1 : threads;
      let scan: ScanResult;
      if (chunks === 1 && !opts.offMainThread) {
        scan = scanRange(db, stream, 1, to, GENESIS[stream], new Set(cpSeqs));
      } else {
        const size = Math.ceil(to / chunks);
        const parts: Promise<ScanResult>[] = [];
        for (let i = 0; i < chunks; i++) {
          const from = i * size + 1;
          const end = i === chunks - 1 ? to : (i + 1) * size;
          parts.push(inWorker({ path, stream, from, to: end, cpSeqs }));
        }
        scan = stitch(stream, await Promise.all(parts), size, to);
      }
      streams.push(judge(stream, state, scan, verifier));
    }
    return withWitness(streams, opts.witness);
  } finally {
    db.close();
  }
}

function inWorker(job: ScanJob): Promise<ScanResult> {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL('./verify-worker.ts', import.meta.url), { workerData: job });
    w.once('message', (r: Omit<ScanResult, 'cpHashes'> & { cpHashes: [number, string][] }) => resolve({ ...r, cpHashes: new Map(r.cpHashes) }));
    w.once('error', reject);
    w.once('exit', (code) => {
      if (code !== 0) reject(new Error(`verification worker exited (code ${code})`));
    });
  });
}

/** Joins chunk scans (chunk i covers seq i*size+1 … min((i+1)*size, to)) into one scan of the stream. */
export function stitch(stream: AuditStreamName, parts: readonly ScanResult[], size: number, to: number): ScanResult {
  const out: ScanResult = { count: 0, lastSeq: 0, lastHash: '', firstSeq: 0, firstPrev: null, firstSelfOk: false, bad: null, cpHashes: new Map() };
  let prevHash = GENESIS[stream]; // chunk 0 was scanned without a predecessor: its link to genesis is checked here
  let prevEnd = 0; // the previous chunk must have ended exactly here…
  let prevLast = 0; // …where it did end
  parts.forEach((p, i) => {
    const from = i * size + 1;
    const end = Math.min((i + 1) * size, to);
    out.count += p.count;
    if (p.count > 0) {
      out.lastSeq = p.lastSeq;
      out.lastHash = p.lastHash;
    }
    if (out.bad || from > to) return;
    if (i > 0 && prevLast !== prevEnd) {
      // Rows missing at the end of the previous chunk: the first missing one is the break.
      const missing = prevLast + 1;
      out.bad = { seq: missing, reason: p.count > 0 ? `event seq ${missing} is missing (next stored is ${p.firstSeq})` : `event seq ${missing} is missing` };
      return;
    }
    if (p.count === 0) {
      const next = parts.slice(i + 1).find((q) => q.count > 0);
      out.bad = { seq: from, reason: next ? `event seq ${from} is missing (next stored is ${next.firstSeq})` : `event seq ${from} is missing` };
      return;
    }
    if (p.firstPrev !== null && p.firstPrev !== prevHash) {
      // Same blame rule as scanRange: a self-consistent row means the one before was rewritten.
      out.bad =
        p.firstSelfOk && from > 1
          ? { seq: from - 1, reason: `event seq ${from - 1} was rewritten (seq ${from} does not link to it)` }
          : { seq: from, reason: `event seq ${from} does not link to the previous event` };
      return;
    }
    for (const [k, v] of p.cpHashes) out.cpHashes.set(k, v);
    if (p.bad) {
      out.bad = p.bad;
      return;
    }
    prevHash = p.lastHash;
    prevEnd = end;
    prevLast = p.lastSeq;
  });
  return out;
}
