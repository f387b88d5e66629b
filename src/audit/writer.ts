// The chain writer: one transaction per batch. Assigns seqs, links and hashes each event, stores
// it, advances the stream's head row, stores checkpoints signed since the last batch, and reports
// which checkpoints are now due. Stateless between calls (heads are read inside the
// transaction), so it runs the same inline or in the writer worker.
import type { StatementSync } from 'node:sqlite';
import type { Db } from '../store/sqlite/db.ts';
import { GENESIS, hashFields, scratchFields } from './chain.ts';
import type { CheckpointRow } from './checkpoint.ts';
import { AUDIT_STREAMS, type AuditStreamName } from './types.ts';

/** Events flattened for cheap transfer to a worker: FIELDS values per event. */
export type WireEvents = (string | null)[];
export const FIELDS = 8; // stream, time, type, actor, boundary, subject, decision, payload

export interface WriteRequest {
  events: WireEvents;
  /** Signed checkpoints to store in this transaction. */
  checkpoints: CheckpointRow[];
  now: number;
  /** `due`: also checkpoint streams whose interval has passed; `force`: every stream with unsigned events. */
  checkpoint: 'none' | 'due' | 'force';
}

export interface DueCheckpoint {
  stream: AuditStreamName;
  seq: number;
  hash: string;
}

export interface WriteResult {
  /** Per event, in order. */
  seqs: number[];
  prevs: string[];
  hashes: string[];
  /** Events whose time was raised to their stream's last time, as [index, time] pairs (usually none). */
  clamped: [number, string][];
  /** Checkpoints to sign now (the caller signs them and passes them to a later write). */
  due: DueCheckpoint[];
}

export interface CheckpointPolicy {
  enabled: boolean;
  every: number;
  intervalMs: number;
}

interface Head {
  seq: number;
  hash: string;
  /** Time of the last event: a stream's times never go back (time ranges are seq ranges). */
  time: string;
  /** Last seq a checkpoint was requested for, and when. */
  cpSeq: number;
  cpTime: number;
  dirty: boolean;
}

export class ChainWriter {
  readonly #db: Db;
  readonly #policy: CheckpointPolicy;
  readonly #insert: StatementSync;
  readonly #selectHead: StatementSync;
  readonly #upsertHead: StatementSync;
  readonly #insertCheckpoint: StatementSync;

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
  }

  write(req: WriteRequest): WriteResult {
    return this.writeAll([req])[0];
  }

  /**
   * Writes requests that queued up behind each other as one transaction (one fsync): the same
   * group commit as within a request, all stored or none. Results are per request; due
   * checkpoints go with the last.
   */
  writeAll(reqs: readonly WriteRequest[]): WriteResult[] {
    const db = this.#db;
    // Joining a transaction someone left open across an await would make our COMMIT theirs.
    if (db.isTransaction) throw new Error('audit store connection is busy in another transaction');
    const now = reqs[reqs.length - 1].now;
    let checkpoint: WriteRequest['checkpoint'] = 'none';
    for (const r of reqs) if (r.checkpoint === 'force' || (r.checkpoint === 'due' && checkpoint === 'none')) checkpoint = r.checkpoint;
    const results: WriteResult[] = reqs.map((r) => {
      const n = r.events.length / FIELDS;
      return { seqs: new Array(n), prevs: new Array(n), hashes: new Array(n), clamped: [], due: [] };
    });
    const res = results[results.length - 1]; // takes the due checkpoints
    const heads = new Map<AuditStreamName, Head>();
    const headOf = (s: AuditStreamName): Head => {
      let h = heads.get(s);
      if (!h) {
        const row = this.#selectHead.get(s) as { seq: number; hash: string; last_time: string; cp_seq: number; cp_time: number } | undefined;
        h = row
          ? { seq: row.seq, hash: row.hash, time: row.last_time, cpSeq: row.cp_seq, cpTime: row.cp_time, dirty: false }
          : { seq: 0, hash: GENESIS[s], time: '', cpSeq: 0, cpTime: now, dirty: false };
        heads.set(s, h);
      }
      return h;
    };
    const { enabled, every, intervalMs } = this.#policy;
    const due = (s: AuditStreamName, h: Head): void => {
      res.due.push({ stream: s, seq: h.seq, hash: h.hash });
      h.cpSeq = h.seq;
      h.cpTime = now;
      h.dirty = true;
    };
    const f = scratchFields();
    db.exec('BEGIN IMMEDIATE');
    try {
      // Repeats (a checkpoint re-sent with a later request) are ignored on insert.
      for (const r of reqs) for (const c of r.checkpoints) this.#insertCheckpoint.run(c.stream, c.seq, c.hash, c.time, c.prev_seq, c.kid, c.sig);
      for (let k = 0; k < reqs.length; k++) {
        const events = reqs[k].events;
        const out = results[k];
        const n = events.length / FIELDS;
        for (let i = 0, o = 0; i < n; i++, o += FIELDS) {
          const stream = events[o] as AuditStreamName;
          const h = headOf(stream);
          f.stream = stream;
          f.seq = h.seq + 1;
          f.time = events[o + 1]!;
          // The clock went back (or another process's clock is ahead): keep the stream in time
          // order, before hashing, so the stored time is the hashed time. ISO-8601 UTC strings of
          // one format compare as their instants.
          if (f.time < h.time) {
            f.time = h.time;
            out.clamped.push([i, f.time]);
          }
          f.type = events[o + 2]!;
          f.actor = events[o + 3]!;
          f.boundary = events[o + 4];
          f.subject = events[o + 5];
          f.decision = events[o + 6];
          f.payload = events[o + 7]!;
          f.prev_hash = h.hash;
          const hash = hashFields(f);
          this.#insert.run(stream, f.seq, f.time, f.type, f.actor, f.boundary, f.subject, f.decision, f.payload, f.prev_hash, hash);
          out.seqs[i] = f.seq;
          out.prevs[i] = f.prev_hash;
          out.hashes[i] = hash;
          h.seq = f.seq;
          h.hash = hash;
          h.time = f.time;
          h.dirty = true;
          if (enabled && h.seq - h.cpSeq >= every) due(stream, h);
        }
      }
      if (enabled && checkpoint !== 'none') for (const s of AUDIT_STREAMS) headOf(s);
      if (enabled) {
        for (const [s, h] of heads) {
          if (h.seq > h.cpSeq && (checkpoint === 'force' || now - h.cpTime >= intervalMs)) due(s, h);
        }
      }
      for (const [s, h] of heads) if (h.dirty) this.#upsertHead.run(s, h.seq, h.hash, h.time, h.cpSeq, h.cpTime);
      db.exec('COMMIT');
    } catch (e) {
      try {
        if (db.isTransaction) db.exec('ROLLBACK');
      } catch {
        // The original error is the one to report.
      }
      throw e;
    }
    return results;
  }
}
