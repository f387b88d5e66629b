// Parallel scan of audit.db for verification: each stream's seq range is cut into chunks scanned
// at once (this thread and worker threads, each on its own read-only connection), then stitched
// by the audit domain (a chunk's first prev_hash must equal the previous chunk's last hash). The
// verdict is the same as an inline scan's; only the wall time differs.
import { availableParallelism } from 'node:os';
import { DatabaseSync } from 'node:sqlite';
import { Worker } from 'node:worker_threads';
import { GENESIS } from '../../../audit/chain.ts';
import type { ScanOptions, StreamScan } from '../../../audit/ports.ts';
import { stitch, type ScanResult } from '../../../audit/scan.ts';
import { AUDIT_STREAMS } from '../../../audit/types.ts';
import { checkpointSeqs, emptyStream, loadStreamState, readSnapshot, scanRange, tableExists } from './scan.ts';
import type { ScanJob } from './scan-worker.ts';

export async function scanFileParallel(path: string, opts: ScanOptions): Promise<StreamScan[]> {
  const threads = Math.max(1, opts.threads ?? Math.min(availableParallelism(), 4));
  const minParallel = opts.minParallel ?? 50_000;
  const streams = opts.streams ?? AUDIT_STREAMS;
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    if (!tableExists(db, 'audit_events')) return streams.map(emptyStream);
    const out: StreamScan[] = [];
    for (const stream of streams) {
      const { state, maxSeq } = readSnapshot(db, () => ({
        state: loadStreamState(db, stream),
        maxSeq: (db.prepare('SELECT MAX(seq) AS m FROM audit_events WHERE stream = ?').get(stream) as { m: number | null }).m ?? 0,
      }));
      // Without a head row there is nothing to bound by (and its absence is itself reported).
      const to = opts.boundToHead && state.head ? Math.min(state.head.seq, maxSeq) : maxSeq;
      const cpSeqs = [...checkpointSeqs(state, opts.extraSeqs?.get(stream))];
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
      out.push({ stream, ...state, scan });
    }
    return out;
  } finally {
    db.close();
  }
}

function inWorker(job: ScanJob): Promise<ScanResult> {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL('./scan-worker.ts', import.meta.url), { workerData: job });
    w.once('message', (r: Omit<ScanResult, 'cpHashes'> & { cpHashes: [number, string][] }) => resolve({ ...r, cpHashes: new Map(r.cpHashes) }));
    w.once('error', reject);
    w.once('exit', (code) => {
      if (code !== 0) reject(new Error(`verification worker exited (code ${code})`));
    });
  });
}
