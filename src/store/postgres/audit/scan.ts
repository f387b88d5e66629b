// Reading streams for verification on PostgreSQL: each stream's head row, checkpoints and events
// from one REPEATABLE READ, read-only snapshot, the events page by page into the audit domain's
// ChainScan (hashes recomputed there).
import type { QueryArrayResult } from 'pg';
import { GENESIS } from '../../../audit/chain.ts';
import type { CheckpointRow } from '../../../audit/checkpoint.ts';
import type { ScanOptions, StreamHead, StreamScan } from '../../../audit/ports.ts';
import { ChainScan, type ScanRow } from '../../../audit/scan.ts';
import { AUDIT_STREAMS } from '../../../audit/types.ts';
import { withClient } from '../db.ts';
import type { PgDb } from '../db.ts';

// Small enough that hashing a page (a few ms) leaves the event loop free between pages.
const PAGE = 4096;
const SELECT =
  'SELECT seq, time, type, actor, boundary, subject, decision, payload, prev_hash, hash FROM audit_events ' +
  `WHERE stream = $1 AND seq > $2 ORDER BY seq LIMIT ${PAGE}`;

/**
 * Each stream in its own snapshot, on one connection. Parallel scanning is not done on PostgreSQL
 * (`parallel`, `threads`, `offMainThread` are ignored): the rows are hashed in this thread page by
 * page, the next page read while one is hashed, and the event loop runs between pages. A snapshot
 * is bounded by construction, so `boundToHead` holds too.
 */
export async function scanStreams(db: PgDb, opts: ScanOptions): Promise<StreamScan[]> {
  const streams = opts.streams ?? AUDIT_STREAMS;
  return withClient(db.pool, async (client, broken) => {
    try {
      const out: StreamScan[] = [];
      for (const stream of streams) {
        // The scan must walk the primary key in order whatever the statistics say (a table never
        // analysed yet is estimated tiny, and every page would sort the rest of the stream).
        await client.query(
          'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off; SET LOCAL enable_sort = off',
        );
        try {
          const h = (await client.query<StreamHead>('SELECT seq, hash FROM audit_heads WHERE stream = $1', [stream])).rows[0];
          // seq 0 is the row an empty stream starts with: no head yet.
          const head = h && h.seq > 0 ? { seq: h.seq, hash: h.hash } : undefined;
          const checkpoints = (
            await client.query<CheckpointRow>('SELECT stream, seq, hash, time, prev_seq, kid, sig FROM audit_checkpoints WHERE stream = $1 ORDER BY seq', [stream])
          ).rows.map((c) => ({ ...c }));
          const cpSeqs = new Set(checkpoints.map((c) => c.seq));
          for (const s of opts.extraSeqs?.get(stream) ?? []) cpSeqs.add(s);
          const scan = new ChainScan(stream, 1, GENESIS[stream], cpSeqs);
          const page = (after: number): Promise<QueryArrayResult> => client.query({ text: SELECT, values: [stream, after], rowMode: 'array' });
          let next: Promise<QueryArrayResult> | undefined = page(0);
          while (next) {
            const rows = (await next).rows as ScanRow[];
            next = rows.length === PAGE ? page(rows[rows.length - 1][0] as number) : undefined;
            scan.rows(rows);
          }
          out.push({ stream, head, checkpoints, scan: scan.result });
        } finally {
          await client.query('COMMIT');
        }
      }
      return out;
    } catch (err) {
      broken(); // a failed snapshot may leave the connection mid-transaction
      throw err;
    }
  });
}
