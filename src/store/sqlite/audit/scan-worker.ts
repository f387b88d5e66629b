// Scans one seq range of one stream on its own read-only connection (parallel verification).
import { parentPort, workerData } from 'node:worker_threads';
import { DatabaseSync } from 'node:sqlite';
import { scanRange } from './scan.ts';

export interface ScanJob {
  path: string;
  stream: string;
  from: number;
  to: number;
  cpSeqs: number[];
}

const job = workerData as ScanJob;
const db = new DatabaseSync(job.path, { readOnly: true });
try {
  const r = scanRange(db, job.stream, job.from, job.to, undefined, new Set(job.cpSeqs));
  parentPort!.postMessage({ ...r, cpHashes: [...r.cpHashes] });
} finally {
  db.close();
}
