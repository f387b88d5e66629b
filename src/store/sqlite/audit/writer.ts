// The chain writer: one transaction per batch. Stores the checkpoints signed since the last batch,
// reads the heads, lets the audit domain link the events (linkEvents: seqs, hashes, due
// checkpoints), inserts them and advances the heads. Stateless between calls, so it runs the same
// inline or in the writer worker.
import type { StatementSync } from 'node:sqlite';
import type { Db } from '../db.ts';
import { linkEvents, type CheckpointPolicy, type LinkRequest, type LinkResult, type StoredHead } from '../../../audit/linker.ts';
import type { ChainFields } from '../../../audit/chain.ts';
import type { AuditStreamName } from '../../../audit/types.ts';

export class ChainWriter {
  readonly #db: Db;
  readonly #policy: CheckpointPolicy;
  readonly #insert: StatementSync;
  readonly #selectHead: StatementSync;
  readonly #upsertHead: StatementSync;
  readonly #insertCheckpoint: StatementSync;
  readonly #lastCheckpoint: StatementSync;

  constructor(db: Db, policy: CheckpointPolicy) {
    this.#db = db;
    this.#policy = policy;
    this.#insert = db.prepare(
      'INSERT INTO audit_events (stream, seq, time, type, actor, boundary, subject, decision, payload, prev_hash, hash) ' +
        'VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
    this.#selectHead = db.prepare('SELECT seq, hash, last_time, cp_seq, cp_time FROM audit_heads WHERE stream = ?');
    this.#upsertHead = db.prepare(
      'INSERT INTO audit_heads (stream, seq, hash, last_time, cp_seq, cp_time) VALUES (?, ?, ?, ?, ?, ?) ' +
        'ON CONFLICT (stream) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, last_time = excluded.last_time, ' +
        'cp_seq = excluded.cp_seq, cp_time = excluded.cp_time',
    );
    // OR IGNORE: a checkpoint re-sent after a failed batch must not wedge every later batch.
    this.#insertCheckpoint = db.prepare(
      'INSERT OR IGNORE INTO audit_checkpoints (stream, seq, hash, time, prev_seq, kid, sig) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    this.#lastCheckpoint = db.prepare('SELECT MAX(seq) AS s FROM audit_checkpoints WHERE stream = ?');
  }

  write(req: LinkRequest): LinkResult {
    return this.writeAll([req])[0];
  }

  /**
   * Writes requests that queued up behind each other as one transaction (one fsync): the same
   * group commit as within a request, all stored or none. Results are per request; due
   * checkpoints go with the last.
   */
  writeAll(reqs: readonly LinkRequest[]): LinkResult[] {
    const db = this.#db;
    // Joining a transaction someone left open across an await would make our COMMIT theirs.
    if (db.isTransaction) throw new Error('audit store connection is busy in another transaction');
    const insert = this.#insert;
    const io = {
      head: (s: AuditStreamName): StoredHead | undefined => {
        const row = this.#selectHead.get(s) as { seq: number; hash: string; last_time: string; cp_seq: number; cp_time: number } | undefined;
        return row && { seq: row.seq, hash: row.hash, time: row.last_time, cpSeq: row.cp_seq, cpTime: row.cp_time };
      },
      lastCheckpoint: (s: AuditStreamName): number => (this.#lastCheckpoint.get(s) as { s: number | null }).s ?? 0,
      insert: (f: ChainFields, hash: string): void => {
        insert.run(f.stream, f.seq, f.time, f.type, f.actor, f.boundary, f.subject, f.decision, f.payload, f.prev_hash, hash);
      },
    };
    db.exec('BEGIN IMMEDIATE');
    try {
      // Stored first, so a checkpoint due in this batch links to them. Repeats (a checkpoint
      // re-sent with a later request) are ignored on insert.
      for (const r of reqs) for (const c of r.checkpoints) this.#insertCheckpoint.run(c.stream, c.seq, c.hash, c.time, c.prev_seq, c.kid, c.sig);
      const { results, heads } = linkEvents(reqs, this.#policy, io);
      for (const [s, h] of heads) this.#upsertHead.run(s, h.seq, h.hash, h.time, h.cpSeq, h.cpTime);
      db.exec('COMMIT');
      return results;
    } catch (e) {
      try {
        if (db.isTransaction) db.exec('ROLLBACK');
      } catch {
        // The original error is the one to report.
      }
      throw e;
    }
  }
}
