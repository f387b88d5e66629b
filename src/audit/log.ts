// The audit log: three hash-chained streams in the store, written by group commit.
// Appends that arrive in the same tick share one transaction; every promise resolves after COMMIT
// and a failed write rejects the whole batch, so the caller's operation fails closed.
import type { StatementSync } from 'node:sqlite';
import type { Writable } from 'node:stream';
import { systemClock, type Clock } from '../common/clock.ts';
import type { Db } from '../store/sqlite.ts';
import { GENESIS, hashFields } from './chain.ts';
import { checkpointMessage } from './checkpoint.ts';
import { AuditWriteFailed } from './errors.ts';
import { prepareEvent, type PreparedEvent } from './prepare.ts';
import { exportJsonLines, queryEvents, writeJsonLines, type ExportQuery } from './query.ts';
import { migrateAudit } from './schema.ts';
import { verifyAll, type ResolverSource } from './verify.ts';
import {
  AUDIT_STREAMS,
  type AuditEventInput,
  type AuditQuery,
  type AuditRecord,
  type AuditSink,
  type AuditStreamName,
  type AuditVerification,
  type CheckpointSigner,
} from './types.ts';

export interface AuditLogOptions {
  clock?: Clock;
  /** Signs checkpoints; a function is called at each checkpoint so key rotation takes effect. */
  signer?: CheckpointSigner | (() => CheckpointSigner | undefined);
  /** Checkpoint every N events per stream (default 1,000). */
  checkpointEvery?: number;
  /** …or when this many ms passed since the last checkpoint with unsigned events (default 10 s). */
  checkpointIntervalMs?: number;
  /**
   * `full` (default) sets `PRAGMA synchronous = FULL` on the connection so a resolved append
   * survives power loss, not only a process crash; group commit keeps that to one fsync per
   * batch. `store` leaves the connection as the store configured it.
   */
  durability?: 'full' | 'store';
}

export type FollowOptions = Omit<AuditQuery, 'limit' | 'order' | 'afterSeq'> & {
  /** Start after this seq (needs `stream`); default: only events appended from now on. */
  afterSeq?: number;
  signal?: AbortSignal;
};

export type AppendListener = (records: readonly AuditRecord[]) => void;

interface Pending {
  ev: PreparedEvent;
  resolve: (r: AuditRecord) => void;
  reject: (e: unknown) => void;
}

interface HeadState {
  seq: number;
  hash: string;
  cpSeq: number;
  cpTime: number;
  dirty: boolean;
}

const FOLLOW_PAGE = 500;

// Most callers never read the returned record's payload: parse the stored canonical JSON on first
// access only. An own, enumerable accessor, so JSON.stringify, spread and deep equality see it.
function definePayload(r: AuditRecord, json: string): void {
  let value: Record<string, unknown> | undefined;
  Object.defineProperty(r, 'payload', {
    enumerable: true,
    configurable: true,
    get: () => (value ??= JSON.parse(json) as Record<string, unknown>),
    set: (v: Record<string, unknown>) => {
      value = v;
    },
  });
}



export class AuditLog implements AuditSink {
  readonly #db: Db;
  readonly #clock: Clock;
  readonly #signer: AuditLogOptions['signer'];
  readonly #every: number;
  readonly #intervalMs: number;
  readonly #insert: StatementSync;
  readonly #selectHead: StatementSync;
  readonly #upsertHead: StatementSync;
  readonly #insertCheckpoint: StatementSync;
  #queue: Pending[] = [];
  #scheduled = false;
  #checkpointRequest: 'none' | 'due' | 'force' = 'none';
  #closed = false;
  #timer: NodeJS.Timeout | undefined;
  readonly #listeners = new Set<AppendListener>();
  readonly #wakers = new Set<() => void>();
  #idle: (() => void)[] = [];

  constructor(db: Db, opts: AuditLogOptions = {}) {
    this.#db = db;
    this.#clock = opts.clock ?? systemClock;
    this.#signer = opts.signer;
    this.#every = opts.checkpointEvery ?? 1000;
    this.#intervalMs = opts.checkpointIntervalMs ?? 10_000;
    if (!Number.isSafeInteger(this.#every) || this.#every < 1) throw new RangeError('checkpointEvery must be a positive integer');
    if (!(this.#intervalMs > 0)) throw new RangeError('checkpointIntervalMs must be positive');
    migrateAudit(db);
    if ((opts.durability ?? 'full') === 'full') db.exec('PRAGMA synchronous = FULL');
    this.#insert = db.prepare(
      'INSERT INTO audit_events (stream, seq, time, type, actor, boundary, subject, decision, payload, prev_hash, hash) ' +
        'VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
    this.#selectHead = db.prepare('SELECT seq, hash, cp_seq, cp_time FROM audit_heads WHERE stream = ?');
    this.#upsertHead = db.prepare(
      'INSERT INTO audit_heads (stream, seq, hash, cp_seq, cp_time) VALUES (?, ?, ?, ?, ?) ' +
        'ON CONFLICT (stream) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, cp_seq = excluded.cp_seq, cp_time = excluded.cp_time',
    );
    this.#insertCheckpoint = db.prepare(
      'INSERT INTO audit_checkpoints (stream, seq, hash, time, prev_seq, kid, sig) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    if (this.#signer) {
      // Time-based checkpoints also happen when no event arrives; the timer must not keep the process alive.
      this.#timer = setInterval(() => this.#request('due'), Math.min(this.#intervalMs, 1000));
      this.#timer.unref();
    }
  }

  /** Appends one event; resolves with the stored record once it is committed. */
  append(event: AuditEventInput): Promise<AuditRecord> {
    if (this.#closed) return Promise.reject(new AuditWriteFailed('audit log is closed'));
    let ev: PreparedEvent;
    try {
      ev = prepareEvent(event, new Date(this.#clock.now()).toISOString());
    } catch (e) {
      return Promise.reject(e);
    }
    const { promise, resolve, reject } = Promise.withResolvers<AuditRecord>();
    this.#queue.push({ ev, resolve, reject });
    this.#schedule();
    return promise;
  }

  /** Resolves once everything appended so far has been written (or rejected). */
  flush(): Promise<void> {
    if (this.#queue.length === 0 && !this.#scheduled) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** Signs a checkpoint now for every stream with unsigned events (no-op without a signer). */
  async checkpointNow(): Promise<void> {
    this.#request('force');
    await this.flush();
  }

  /** The committed head of a stream (seq 0 and the genesis hash when empty). */
  head(stream: AuditStreamName): { seq: number; hash: string } {
    const h = this.#selectHead.get(stream) as { seq: number; hash: string } | undefined;
    return h ? { seq: h.seq, hash: h.hash } : { seq: 0, hash: GENESIS[stream] };
  }

  query(q: AuditQuery = {}): AuditRecord[] {
    return queryEvents(this.#db, q);
  }

  exportJsonLines(q: ExportQuery = {}): Generator<string> {
    return exportJsonLines(this.#db, q);
  }

  exportTo(out: Writable, q: ExportQuery = {}): Promise<number> {
    return writeJsonLines(this.#db, out, q);
  }

  verify(keys: ResolverSource): AuditVerification {
    return verifyAll(this.#db, keys);
  }

  /** Calls `listener` with each committed batch. Returns the unsubscribe function. */
  onAppend(listener: AppendListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Yields matching events as they are committed (`tail -f`), after replaying from `afterSeq`
   * when given. Reads from the store, so a slow consumer never loses events. Ends on `signal`
   * abort or close().
   */
  async *follow(opts: FollowOptions = {}): AsyncGenerator<AuditRecord> {
    const { signal, afterSeq, ...filters } = opts;
    const streams = filters.stream !== undefined ? [filters.stream] : AUDIT_STREAMS;
    queryEvents(this.#db, { ...filters, limit: 1 }); // validate filters up front
    const cursor = new Map<AuditStreamName, number>();
    for (const s of streams) cursor.set(s, afterSeq ?? this.head(s).seq);
    if (afterSeq !== undefined && filters.stream === undefined) {
      queryEvents(this.#db, { afterSeq }); // throws: afterSeq needs a stream
    }
    while (!this.#closed && !signal?.aborted) {
      let more = false;
      for (const s of streams) {
        const top = this.head(s).seq;
        const from = cursor.get(s)!;
        if (top <= from) continue;
        const page = queryEvents(this.#db, { ...filters, stream: s, afterSeq: from, limit: FOLLOW_PAGE }, top);
        if (page.length === FOLLOW_PAGE) {
          cursor.set(s, page[page.length - 1].seq);
          more = true;
        } else {
          cursor.set(s, top); // rows up to `top` that did not match are skipped for good
        }
        for (const r of page) {
          yield r;
          if (this.#closed || signal?.aborted) return;
        }
      }
      if (!more) await this.#nextCommit(signal);
    }
  }

  /** Writes pending events and final checkpoints, then refuses further appends. Does not close the Db. */
  async close(): Promise<void> {
    if (this.#closed) return;
    if (this.#timer) clearInterval(this.#timer);
    this.#request('force');
    await this.flush();
    this.#closed = true;
    for (const w of this.#wakers) w();
  }

  #nextCommit(signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        this.#wakers.delete(done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      this.#wakers.add(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  #request(kind: 'due' | 'force'): void {
    if (!this.#signer || this.#closed) return;
    if (kind === 'force' || this.#checkpointRequest === 'none') this.#checkpointRequest = kind;
    this.#schedule();
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    // setImmediate, not a microtask: everything appended during this turn of the event loop
    // (all callbacks of one I/O poll) joins the batch.
    setImmediate(() => this.#flushNow());
  }

  #flushNow(): void {
    this.#scheduled = false;
    const batch = this.#queue;
    this.#queue = [];
    const cp = this.#checkpointRequest;
    this.#checkpointRequest = 'none';
    if (batch.length > 0 || cp !== 'none') {
      let records: AuditRecord[] | undefined;
      try {
        records = this.#write(batch, cp);
      } catch (e) {
        const err = e instanceof AuditWriteFailed ? e : new AuditWriteFailed(undefined, e);
        for (const p of batch) p.reject(err);
      }
      if (records) {
        for (let i = 0; i < batch.length; i++) batch[i].resolve(records[i]);
        if (records.length > 0) this.#notify(records);
      }
    }
    if (!this.#scheduled) {
      const idle = this.#idle;
      this.#idle = [];
      for (const f of idle) f();
    }
  }

  #notify(records: AuditRecord[]): void {
    for (const l of this.#listeners) {
      try {
        l(records);
      } catch {
        // A listener's failure must not affect what was recorded.
      }
    }
    for (const w of [...this.#wakers]) w();
  }

  #write(batch: Pending[], cp: 'none' | 'due' | 'force'): AuditRecord[] {
    const db = this.#db;
    // Joining a transaction someone left open across an await would make our COMMIT theirs.
    if (db.isTransaction) throw new AuditWriteFailed('audit store connection is busy in another transaction');
    const now = this.#clock.now();
    const nowIso = new Date(now).toISOString();
    const heads = new Map<AuditStreamName, HeadState>();
    const headOf = (s: AuditStreamName): HeadState => {
      let h = heads.get(s);
      if (!h) {
        const row = this.#selectHead.get(s) as { seq: number; hash: string; cp_seq: number; cp_time: number } | undefined;
        h = row
          ? { seq: row.seq, hash: row.hash, cpSeq: row.cp_seq, cpTime: row.cp_time, dirty: false }
          : { seq: 0, hash: GENESIS[s], cpSeq: 0, cpTime: now, dirty: false };
        heads.set(s, h);
      }
      return h;
    };
    const signer = typeof this.#signer === 'function' ? this.#signer() : this.#signer;
    const records: AuditRecord[] = new Array(batch.length);
    db.exec('BEGIN IMMEDIATE');
    try {
      for (let i = 0; i < batch.length; i++) {
        const ev = batch[i].ev;
        const h = headOf(ev.stream);
        const seq = h.seq + 1;
        const f = {
          stream: ev.stream,
          seq,
          time: ev.time,
          type: ev.type,
          actor: ev.actor,
          boundary: ev.boundary,
          subject: ev.subject,
          decision: ev.decision,
          payload: ev.payload,
          prev_hash: h.hash,
        };
        const hash = hashFields(f);
        this.#insert.run(ev.stream, seq, ev.time, ev.type, ev.actor, ev.boundary, ev.subject, ev.decision, ev.payload, h.hash, hash);
        h.seq = seq;
        h.hash = hash;
        h.dirty = true;
        const r = { stream: ev.stream, seq, time: ev.time, type: ev.type, actor: ev.actor, prev_hash: f.prev_hash, hash } as AuditRecord;
        definePayload(r, ev.payload);
        if (ev.boundary !== null) r.boundary = ev.boundary;
        if (ev.subject !== null) r.subject = ev.subject;
        if (ev.decision !== null) r.decision = ev.decision;
        records[i] = r;
        if (signer && seq - h.cpSeq >= this.#every) this.#checkpoint(signer, ev.stream, h, now, nowIso);
      }
      if (signer && cp !== 'none') for (const s of AUDIT_STREAMS) headOf(s);
      if (signer) {
        for (const [s, h] of heads) {
          if (h.seq > h.cpSeq && (cp === 'force' || now - h.cpTime >= this.#intervalMs)) this.#checkpoint(signer, s, h, now, nowIso);
        }
      }
      for (const [s, h] of heads) if (h.dirty) this.#upsertHead.run(s, h.seq, h.hash, h.cpSeq, h.cpTime);
      db.exec('COMMIT');
    } catch (e) {
      try {
        if (db.isTransaction) db.exec('ROLLBACK');
      } catch {
        // The original error is the one to report.
      }
      throw e;
    }
    return records;
  }

  #checkpoint(signer: CheckpointSigner, stream: AuditStreamName, h: HeadState, now: number, time: string): void {
    const body = { stream, seq: h.seq, hash: h.hash, time, prev_seq: h.cpSeq };
    const sig = Buffer.from(signer.sign(checkpointMessage(body))).toString('base64url');
    this.#insertCheckpoint.run(stream, h.seq, h.hash, time, h.cpSeq, signer.kid, sig);
    h.cpSeq = h.seq;
    h.cpTime = now;
    h.dirty = true;
  }
}
