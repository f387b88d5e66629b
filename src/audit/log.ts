// The audit log: three hash-chained streams in the store, written by group commit.
// Appends that arrive while the previous batch is being written (at least one tick) share one
// transaction; every promise resolves once the store has made it durable and a failed write
// rejects the whole batch, so the caller's operation fails closed. Checkpoints are signed here,
// after the events they cover are committed, and stored with the next batch.
import type { Writable } from 'node:stream';
import { systemClock, type Clock } from '../common/clock.ts';
import { GENESIS } from './chain.ts';
import { checkpointMessage, type CheckpointRow } from './checkpoint.ts';
import { AuditWriteFailed } from './errors.ts';
import type { DueCheckpoint } from './linker.ts';
import type { AppendResult, AuditAppender, AuditStore, SessionRecordsQuery, StreamHead } from './ports.ts';
import { prepareEvent, type PreparedEvent } from './prepare.ts';
import { AUDIT_QUERY_MAX_LIMIT, exportJsonLines, normalizeQuery, queryEvents, writeJsonLines, type ExportQuery } from './query.ts';
import { verifyAll, type VerifyOptions } from './verify.ts';
import { Witnesses, readWitnessFile, type WitnessOptions } from './witness.ts';
import { closeSync, openSync } from 'node:fs';
import {
  AUDIT_STREAMS,
  type AuditEventInput,
  type AuditQuery,
  type AuditRecord,
  type AuditSink,
  type AuditStreamName,
  type AuditVerification,
  type CheckpointSigner,
  type PublicKeyResolver,
} from './types.ts';

export interface AuditLogOptions {
  clock?: Clock;
  /**
   * Whether this log signs checkpoints now (default: always). Replicas sharing a store sign on one
   * of them at a time; the others link events without marking checkpoints due.
   */
  signs?: () => boolean;
  /** Other processes append to the same store (replicas): followers also look every this many ms. */
  followPollMs?: number;
  /** Signs checkpoints; a function is called at each checkpoint so key rotation takes effect. */
  signer?: CheckpointSigner | (() => CheckpointSigner | undefined);
  /** Checkpoint every N events per stream (default 1,000). */
  checkpointEvery?: number;
  /** …or when this many ms passed since the last checkpoint with unsigned events (default 10 s). */
  checkpointIntervalMs?: number;
  /**
   * `full` (default): a resolved append survives power loss, not only a process crash (SQLite:
   * `PRAGMA synchronous = FULL`); group commit keeps that to one fsync per batch. `store`: as the
   * store is configured.
   */
  durability?: 'full' | 'store';
  /**
   * `worker` (default): batches are written off this thread where the store can (SQLite file: a
   * worker thread on its own connection), so hashing, inserts and fsync leave the event loop.
   * `inline`: on this thread (always for SQLite `:memory:`).
   */
  writer?: 'worker' | 'inline';
  /**
   * Publish every signed checkpoint outside the store as it is made (docs/audit.md, Witness):
   * `file` is appended to (created at start: an unwritable path fails here), `url` gets a POST.
   */
  witness?: WitnessOptions;
  /** Called after each batch is written or fails (metrics): its events and how long it took. */
  onBatch?: (events: number, seconds: number, ok: boolean) => void;
  /**
   * How long a batch may wait for appends announced with `expect()`: the recent commit duration,
   * kept within [minMs, maxMs] (default 0.25–5 ms).
   */
  gather?: { minMs?: number; maxMs?: number };
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
  readonly #store: AuditStore;
  readonly #clock: Clock;
  readonly #signer: AuditLogOptions['signer'];
  readonly #signs: () => boolean;
  readonly #followPollMs: number | undefined;
  readonly #writer: AuditAppender;
  #queue: Pending[] = [];
  #scheduled = false;
  /** Batches handed to the writer and not yet answered. */
  #inFlight = 0;
  readonly #maxInFlight: number;
  /** A tick's appends beyond this many go to the worker at once, so it writes while this thread prepares the rest. */
  readonly #chunk: number;
  #lastWriteFailed = false;
  #checkpointRequest: 'none' | 'due' | 'force' = 'none';
  /** Signed checkpoints waiting to be stored with the next batch. */
  #signed: CheckpointRow[] = [];
  /** Per stream, the seq of the last checkpoint signed (prev_seq of the next). */
  readonly #lastSigned = new Map<AuditStreamName, number>();
  /** Per stream, when this log last signed a checkpoint (epoch ms). */
  readonly #lastSignedAt = new Map<AuditStreamName, number>();
  readonly #onBatch: AuditLogOptions['onBatch'];
  #closed = false;
  #timer: NodeJS.Timeout | undefined;
  readonly #listeners = new Set<AppendListener>();
  readonly #wakers = new Set<() => void>();
  #idle: (() => void)[] = [];
  #isoMs = NaN;
  #iso = '';
  readonly #witness: Witnesses | undefined;
  /** Appends announced by `expect()` and not yet made: when each was announced (performance.now()). */
  readonly #expected = new Set<{ at: number }>();
  /** How long the last batches took to commit (ms, moving average): the longest a batch waits for announced appends. */
  #commitMs = 1;
  #gatherTimer: NodeJS.Timeout | undefined;
  readonly #gatherMinMs: number;
  readonly #gatherMaxMs: number;
  /** When the first append of the queued batch came (performance.now()). */
  #queuedAt = 0;

  constructor(store: AuditStore, opts: AuditLogOptions = {}) {
    this.#store = store;
    this.#clock = opts.clock ?? systemClock;
    this.#signer = opts.signer;
    this.#signs = opts.signs ?? (() => true);
    this.#followPollMs = opts.followPollMs;
    this.#onBatch = opts.onBatch;
    this.#gatherMinMs = opts.gather?.minMs ?? 0.25;
    this.#gatherMaxMs = Math.max(this.#gatherMinMs, opts.gather?.maxMs ?? 5);
    const every = opts.checkpointEvery ?? 1000;
    const intervalMs = opts.checkpointIntervalMs ?? 10_000;
    if (!Number.isSafeInteger(every) || every < 1) throw new RangeError('checkpointEvery must be a positive integer');
    if (!(intervalMs > 0)) throw new RangeError('checkpointIntervalMs must be positive');
    if (opts.witness?.file !== undefined) {
      // Exists from the start, so verify can require it; an unwritable path fails here, not later.
      try {
        closeSync(openSync(opts.witness.file, 'a', 0o640));
      } catch (err) {
        throw new Error(`audit witness file ${opts.witness.file} cannot be opened for appending (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
      }
    }
    this.#witness = opts.witness && (opts.witness.file !== undefined || opts.witness.url !== undefined) ? new Witnesses(opts.witness) : undefined;
    const policy = { enabled: opts.signer !== undefined, every, intervalMs };
    this.#writer = store.appender({ policy, durability: opts.durability ?? 'full', writer: opts.writer ?? 'worker' });
    this.#maxInFlight = this.#writer.maxInFlight;
    this.#chunk = this.#writer.chunk;
    if (this.#signer) {
      // Time-based checkpoints also happen when no event arrives; the timer must not keep the process alive.
      this.#timer = setInterval(() => this.#request('due'), Math.min(intervalMs, 1000));
      this.#timer.unref();
    }
  }

  /** Events appended and not yet handed to the writer, plus batches being written (metrics). */
  get backlog(): { queued: number; batchesInFlight: number } {
    return { queued: this.#queue.length, batchesInFlight: this.#inFlight };
  }

  /** Store transactions that wrote this log's batches so far, where the store counts them (benchmarks). */
  get commits(): number | undefined {
    return this.#writer.commits;
  }

  /** When this log last signed a checkpoint of `stream` (epoch ms), if it has. */
  lastCheckpointAt(stream: AuditStreamName): number | undefined {
    return this.#lastSignedAt.get(stream);
  }

  /** Appends one event; resolves with the stored record once it is committed. */
  append(event: AuditEventInput): Promise<AuditRecord> {
    if (this.#closed) return Promise.reject(new AuditWriteFailed('audit log is closed'));
    if (!this.#writer.isOpen) return Promise.reject(new AuditWriteFailed('audit store is closed'));
    let ev: PreparedEvent;
    try {
      ev = prepareEvent(event, this.#isoNow());
    } catch (e) {
      return Promise.reject(e);
    }
    const { promise, resolve, reject } = Promise.withResolvers<AuditRecord>();
    if (this.#queue.length === 0) this.#queuedAt = performance.now();
    this.#queue.push({ ev, resolve, reject });
    if (this.#queue.length >= this.#chunk && this.#inFlight < this.#maxInFlight) this.#send();
    else this.#schedule();
    return promise;
  }

  /**
   * Announces an append that will follow shortly (a gateway statement sent upstream, whose record
   * is appended when its result arrives); call the returned function once it was appended or will
   * not be. A batch ready to be written waits for announced appends made less than one commit's
   * duration ago, so that concurrent sessions' records share one commit (one fsync) instead of
   * the first arrival starting a commit that the others must wait behind. Nothing announced,
   * nothing waits (one client pays no delay); an announced append that does not come within the
   * window is not waited for.
   */
  expect(): () => void {
    const e = { at: performance.now() };
    this.#expected.add(e);
    return () => {
      this.#expected.delete(e);
    };
  }

  // Appends in the same millisecond share the formatted time.
  #isoNow(): string {
    const ms = this.#clock.now();
    if (ms !== this.#isoMs) {
      this.#isoMs = ms;
      this.#iso = new Date(ms).toISOString();
    }
    return this.#iso;
  }

  /** Resolves once everything appended so far has been written (or rejected), checkpoints included. */
  async flush(): Promise<void> {
    if (!this.#isIdle()) await new Promise<void>((resolve) => this.#idle.push(resolve));
    await this.#witness?.flush(); // the witness file too (never the HTTP sink)
  }

  /** The configured witness publishers (file, url), if any. */
  get witness(): Witnesses | undefined {
    return this.#witness;
  }

  /**
   * Forgets which checkpoints this log signed last: another signer (a replica that led meanwhile)
   * may have stored later ones, so the next checkpoint links to what the store holds.
   */
  forgetSigned(): void {
    this.#lastSigned.clear();
  }

  /** Signs a checkpoint now for every stream with unsigned events (no-op without a signer). */
  async checkpointNow(): Promise<void> {
    this.#request('force');
    await this.flush();
  }

  /** The committed head of a stream (seq 0 and the genesis hash when empty). */
  async head(stream: AuditStreamName): Promise<StreamHead> {
    return (await this.#store.head(stream)) ?? { seq: 0, hash: GENESIS[stream] };
  }

  query(q: AuditQuery = {}): Promise<AuditRecord[]> {
    return queryEvents(this.#store, q);
  }

  /** One gateway session's records (`payload.session` in the `session` stream), in seq order, by its index. */
  sessionRecords(session: string, opts: SessionRecordsQuery): Promise<AuditRecord[]> {
    return this.#store.sessionRecords(session, { ...opts, limit: Math.min(Math.max(1, Math.floor(opts.limit)), AUDIT_QUERY_MAX_LIMIT) });
  }

  exportJsonLines(q: ExportQuery = {}): AsyncGenerator<string> {
    return exportJsonLines(this.#store, q);
  }

  exportTo(out: Writable, q: ExportQuery = {}): Promise<number> {
    return writeJsonLines(this.#store, out, q);
  }

  /** Verifies every stream now, each from one consistent snapshot (in this thread on SQLite). */
  verify(keys: PublicKeyResolver): Promise<AuditVerification> {
    return verifyAll(this.#store, keys);
  }

  /**
   * Verifies without blocking the event loop (SQLite file: worker threads on read-only
   * connections, up to each head as it was at the start). For `GET /v1/audit/verify`.
   */
  async verifyAsync(keys: PublicKeyResolver, opts: Omit<VerifyOptions, 'parallel' | 'boundToHead' | 'offMainThread'> = {}): Promise<AuditVerification> {
    // The witness is read before the store's heads: everything it holds was committed before.
    const file = this.#witness?.file;
    let witness = opts.witness;
    if (witness === undefined && file) {
      await file.flush();
      witness = await readWitnessFile(file.path, keys);
    }
    return verifyAll(this.#store, keys, { ...opts, ...(witness && { witness }), parallel: true, boundToHead: true, offMainThread: true });
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
    normalizeQuery({ ...filters, afterSeq, limit: 1 }); // validate filters up front
    const streams = filters.stream !== undefined ? [filters.stream] : AUDIT_STREAMS;
    const cursor = new Map<AuditStreamName, number>();
    for (const s of streams) cursor.set(s, afterSeq ?? (await this.head(s)).seq);
    while (!this.#closed && !signal?.aborted) {
      let more = false;
      for (const s of streams) {
        const top = (await this.head(s)).seq;
        const from = cursor.get(s)!;
        if (top <= from) continue;
        const page = await queryEvents(this.#store, { ...filters, stream: s, afterSeq: from, limit: FOLLOW_PAGE }, top);
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

  /** Writes pending events and final checkpoints, then refuses further appends. Does not close the store. */
  async close(): Promise<void> {
    if (this.#closed) return;
    if (this.#timer) clearInterval(this.#timer);
    this.#request('force');
    await this.flush(); // with the store closed this rejects what is queued instead
    this.#closed = true;
    for (const w of [...this.#wakers]) w();
    await this.#writer.close();
    await this.#witness?.close();
  }

  /**
   * Resolves at this log's next commit — or, when other replicas write the same store, after
   * `followPollMs` at the latest, so their events reach a follower too.
   */
  #nextCommit(signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve) => {
      const timer = this.#followPollMs === undefined ? undefined : setTimeout(() => done(), this.#followPollMs);
      const done = (): void => {
        if (timer) clearTimeout(timer);
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
    if (this.#scheduled || this.#inFlight >= this.#maxInFlight) return; // a finishing batch reschedules
    this.#scheduled = true;
    // setImmediate, not a microtask: everything appended during this turn of the event loop
    // (all callbacks of one I/O poll) joins the batch.
    setImmediate(() => this.#flushNow());
  }

  #hasWork(): boolean {
    return this.#queue.length > 0 || this.#checkpointRequest !== 'none' || (this.#signed.length > 0 && !this.#lastWriteFailed);
  }

  #isIdle(): boolean {
    return !this.#scheduled && this.#inFlight === 0 && !this.#hasWork();
  }

  #flushNow(): void {
    this.#scheduled = false;
    if (this.#queue.length > 0 && this.#expected.size > 0 && this.#gathering()) return;
    this.#send();
  }

  /**
   * Whether the queued batch waits for announced appends (`expect`): while one announced less
   * than a commit's duration ago is outstanding, and for at most that long after the batch's first
   * append (a timer flushes then). Each announced append that arrives schedules a flush itself.
   */
  #gathering(): boolean {
    const now = performance.now();
    const window = Math.min(Math.max(this.#commitMs, this.#gatherMinMs), this.#gatherMaxMs);
    const deadline = this.#queuedAt + window;
    let fresh = false;
    if (!this.#closed && now < deadline) {
      for (const e of this.#expected) {
        if (now - e.at < window) {
          fresh = true;
          break;
        }
      }
    }
    if (!fresh) {
      if (this.#gatherTimer !== undefined) clearTimeout(this.#gatherTimer);
      this.#gatherTimer = undefined;
      return false;
    }
    this.#gatherTimer ??= setTimeout(() => {
      this.#gatherTimer = undefined;
      this.#schedule();
    }, deadline - now);
    return true;
  }

  #send(): void {
    if (this.#gatherTimer !== undefined) clearTimeout(this.#gatherTimer);
    this.#gatherTimer = undefined;
    if (!this.#hasWork()) return this.#settleIdle();
    const batch = this.#queue;
    this.#queue = [];
    const checkpoint = this.#checkpointRequest;
    this.#checkpointRequest = 'none';
    const checkpoints = [...this.#signed];
    if (!this.#writer.isOpen) {
      this.#fail(batch, new AuditWriteFailed('audit store is closed'));
      return this.#settleIdle();
    }
    const events: PreparedEvent[] = new Array(batch.length);
    for (let i = 0; i < batch.length; i++) events[i] = batch[i].ev;
    this.#inFlight++;
    const started = performance.now();
    this.#writer.append({ events, checkpoints, now: this.#clock.now(), checkpoint, sign: this.#signs() }).then(
      (res) => {
        const ms = performance.now() - started;
        this.#commitMs += (ms - this.#commitMs) / 4;
        this.#onBatch?.(events.length, ms / 1000, true);
        this.#lastWriteFailed = false;
        if (checkpoints.length > 0) {
          const stored = new Set(checkpoints);
          this.#signed = this.#signed.filter((c) => !stored.has(c));
        }
        this.#done(batch, res);
      },
      (e: unknown) => {
        this.#onBatch?.(events.length, (performance.now() - started) / 1000, false);
        this.#lastWriteFailed = true; // signed checkpoints stay queued for the next batch
        this.#fail(batch, e instanceof AuditWriteFailed ? e : new AuditWriteFailed(undefined, e));
        this.#inFlight--;
        if (this.#hasWork()) this.#schedule(); // excludes the kept checkpoints: no retry loop
        else this.#settleIdle();
      },
    );
  }

  #done(batch: Pending[], res: AppendResult): void {
    for (const [i, time] of res.clamped) batch[i].ev.time = time; // what was stored and hashed
    const records: AuditRecord[] = new Array(batch.length);
    for (let i = 0; i < batch.length; i++) {
      const ev = batch[i].ev;
      const r = { stream: ev.stream, seq: res.seqs[i], time: ev.time, type: ev.type, actor: ev.actor, prev_hash: res.prevs[i], hash: res.hashes[i] } as AuditRecord;
      definePayload(r, ev.payload);
      if (ev.boundary !== null) r.boundary = ev.boundary;
      if (ev.subject !== null) r.subject = ev.subject;
      if (ev.decision !== null) r.decision = ev.decision;
      records[i] = r;
      batch[i].resolve(r);
    }
    this.#sign(res.due);
    this.#inFlight--;
    if (records.length > 0) this.#notify(records);
    if (this.#hasWork()) this.#schedule();
    else this.#settleIdle();
  }

  #sign(due: readonly DueCheckpoint[]): void {
    if (due.length === 0) return;
    let signer: CheckpointSigner | undefined;
    try {
      signer = typeof this.#signer === 'function' ? this.#signer() : this.#signer;
    } catch {
      signer = undefined;
    }
    if (!signer) return; // no key right now: the next due checkpoint covers these events
    const time = new Date(this.#clock.now()).toISOString();
    for (const d of due) {
      // What this log signed last, else what the store held when the checkpoint became due.
      const prev = this.#lastSigned.get(d.stream) ?? d.prevStored;
      if (d.seq <= prev) continue;
      const body = { stream: d.stream, seq: d.seq, hash: d.hash, time, prev_seq: prev };
      try {
        const sig = Buffer.from(signer.sign(checkpointMessage(body))).toString('base64url');
        const row = { ...body, kid: signer.kid, sig };
        this.#signed.push(row);
        this.#lastSigned.set(d.stream, d.seq);
        this.#lastSignedAt.set(d.stream, this.#clock.now());
        this.#witness?.publish(row);
      } catch {
        // A signer failure skips this checkpoint; the events themselves are committed and chained.
      }
    }
  }

  #fail(batch: Pending[], e: unknown): void {
    for (const p of batch) p.reject(e);
  }

  #settleIdle(): void {
    if (!this.#isIdle()) return;
    const idle = this.#idle;
    this.#idle = [];
    for (const f of idle) f();
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
}
