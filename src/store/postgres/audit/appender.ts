// The PostgreSQL audit appender (AuditAppender, src/audit/ports.ts): one hash chain per stream
// shared by every replica, written in group commits that lock the heads they extend.
import pg from 'pg';
import type { PoolClient } from 'pg';
import type { ChainFields } from '../../../audit/chain.ts';
import { FIELDS, flattenEvents, linkEvents, type CheckpointPolicy, type LinkRequest, type LinkResult, type StoredHead } from '../../../audit/linker.ts';
import type { AppendBatch, AppendResult, AppenderOptions, AuditAppender } from '../../../audit/ports.ts';
import { AUDIT_STREAMS, type AuditStreamName } from '../../../audit/types.ts';
import type { PgDb } from '../db.ts';

/** Connections of one appender: one holds the heads while the next waits on them, its BEGIN sent. */
const CONNECTIONS = 2;
/** A session idle inside a transaction this long is ended by the server, releasing its locks. */
const IDLE_IN_TRANSACTION_MS = 10_000;
/** Longest wait for the heads before the batch fails. */
const LOCK_TIMEOUT_MS = 30_000;
/** Most events one transaction takes from the queue (bounds a transaction's size and lock time). */
const MAX_TX_EVENTS = 20_000;

// The heads a batch extends, locked in stream order (so no two transactions ever deadlock), and
// the last stored checkpoint of each, read by a later statement: in READ COMMITTED each statement
// of a multi-statement query takes its snapshot when it starts, i.e. after the locks were granted,
// so it sees what the transaction we waited for committed. Sent as one simple query (one round
// trip); the stream names are the fixed AUDIT_STREAMS, the only values inlined.
function lockSql(streams: readonly AuditStreamName[]): string {
  const list = streams.map((s) => `'${s}'`).join(', ');
  return (
    'BEGIN; ' +
    `SELECT stream, seq, hash, last_time, cp_seq, cp_time FROM audit_heads WHERE stream IN (${list}) ORDER BY stream FOR UPDATE; ` +
    `SELECT stream, MAX(seq) AS s FROM audit_checkpoints WHERE stream IN (${list}) GROUP BY stream`
  );
}

// A head row deleted by hand is recreated empty: the batch then fails on the primary key (the
// events are still there), as on SQLite — fail closed rather than fork the chain.
const RECREATE_HEADS =
  "INSERT INTO audit_heads (stream, seq, hash, last_time, cp_seq, cp_time, sorted_from) SELECT s, 0, '', '', 0, 0, 1 FROM unnest($1::text[]) s " +
  'ON CONFLICT (stream) DO NOTHING';

// Events, the batch's checkpoints (one already stored is ignored: a re-sent checkpoint must not
// wedge later batches) and the new heads, in one statement.
const WRITE_SQL =
  'WITH ev AS (INSERT INTO audit_events (stream, seq, time, type, actor, boundary, subject, decision, payload, prev_hash, hash) ' +
  'SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[])), ' +
  'cp AS (INSERT INTO audit_checkpoints (stream, seq, hash, time, prev_seq, kid, sig) ' +
  'SELECT * FROM unnest($12::text[], $13::int8[], $14::text[], $15::text[], $16::int8[], $17::text[], $18::text[]) ON CONFLICT (stream, seq) DO NOTHING), ' +
  'hd AS (UPDATE audit_heads h SET seq = v.seq, hash = v.hash, last_time = v.last_time, cp_seq = v.cp_seq, cp_time = v.cp_time ' +
  'FROM unnest($19::text[], $20::int8[], $21::text[], $22::text[], $23::int8[], $24::int8[]) AS v(stream, seq, hash, last_time, cp_seq, cp_time) ' +
  'WHERE h.stream = v.stream) ' +
  'SELECT 1';

interface HeadRow {
  stream: AuditStreamName;
  seq: number;
  hash: string;
  last_time: string;
  cp_seq: number;
  cp_time: number;
}

interface Queued {
  req: LinkRequest;
  resolve: (r: LinkResult) => void;
  reject: (e: unknown) => void;
}

/** The streams a transaction's linkEvents reads (and may write): those of its events, all when a checkpoint is requested. */
function streamsOf(reqs: readonly LinkRequest[], policy: CheckpointPolicy): AuditStreamName[] {
  const set = new Set<AuditStreamName>();
  for (const r of reqs) {
    if (policy.enabled && r.sign !== false && r.checkpoint !== 'none') return [...AUDIT_STREAMS].sort();
    for (let o = 0; o < r.events.length; o += FIELDS) set.add(r.events[o] as AuditStreamName);
  }
  return [...set].sort();
}

/**
 * Writes batches as transactions on its own connections. Each takes every batch queued when a
 * connection is free (in order), locks the heads of the streams it touches, links the events onto
 * them, writes everything in one statement and commits; each promise resolves after COMMIT. The
 * next transaction on a stream sends its locking query as soon as the previous one holds its
 * locks, so it waits on them in the server and starts the moment they are released: batches are
 * applied in the order given on each stream, and a stream's lock is held for the lock's answer,
 * the linking, the insert and the commit.
 */
export class PgAppender implements AuditAppender {
  readonly maxInFlight = 4;
  /** A tick's appends are sent in chunks of this many, so one is written while the rest are prepared. */
  readonly chunk = 2000;
  readonly #db: PgDb;
  readonly #pool: pg.Pool;
  readonly #policy: CheckpointPolicy;
  #queue: Queued[] = [];
  #busy = 0;
  /** Per stream, settles once the last transaction started on it holds its locks (or failed): the next may ask for them. */
  readonly #locked = new Map<AuditStreamName, Promise<void>>();
  #idle: (() => void)[] = [];
  #closed = false;
  readonly #onClose: () => void;

  /** `onClose`: called once it is closed (the store forgets it). */
  constructor(db: PgDb, opts: AppenderOptions, onClose: () => void = () => {}) {
    this.#db = db;
    this.#onClose = onClose;
    this.#policy = opts.policy;
    const base = db.pool.options;
    const settings = [
      base.options,
      // A replica that stops mid-transaction (frozen, cut off) holds the heads it locked: the
      // server ends its session after this long, so the other replicas' appends resume.
      `-c idle_in_transaction_session_timeout=${IDLE_IN_TRANSACTION_MS}`,
      // Fail the batch (closed) rather than wait on the heads without end.
      `-c lock_timeout=${LOCK_TIMEOUT_MS}`,
      // `full`: COMMIT returns once the WAL is flushed, whatever the server's default.
      opts.durability === 'full' && '-c synchronous_commit=on',
    ];
    this.#pool = new pg.Pool({
      ...base,
      max: CONNECTIONS,
      application_name: `${base.application_name ?? 'portcullis'}-audit`,
      allowExitOnIdle: true,
      options: settings.filter(Boolean).join(' '),
    });
    this.#pool.on('error', () => {}); // an idle connection lost: the pool opens another
  }

  get isOpen(): boolean {
    return this.#db.isOpen && !this.#closed;
  }

  append(batch: AppendBatch): Promise<AppendResult> {
    if (!this.isOpen) return Promise.reject(new Error('audit appender is closed'));
    const { promise, resolve, reject } = Promise.withResolvers<LinkResult>();
    const req: LinkRequest = { events: flattenEvents(batch.events), checkpoints: batch.checkpoints, now: batch.now, checkpoint: batch.checkpoint, ...(batch.sign !== undefined && { sign: batch.sign }) };
    this.#queue.push({ req, resolve, reject });
    this.#pump();
    return promise;
  }

  async close(): Promise<void> {
    if (this.#busy > 0 || this.#queue.length > 0) await new Promise<void>((r) => this.#idle.push(r));
    if (this.#closed) return;
    this.#closed = true;
    this.#onClose();
    await this.#pool.end().catch(() => {});
  }

  #pump(): void {
    while (this.#busy < CONNECTIONS && this.#queue.length > 0) {
      let n = 0;
      let events = 0;
      while (n < this.#queue.length && (n === 0 || events + this.#queue[n].req.events.length / FIELDS <= MAX_TX_EVENTS)) {
        events += this.#queue[n].req.events.length / FIELDS;
        n++;
      }
      const group = this.#queue.splice(0, n);
      const streams = streamsOf(
        group.map((q) => q.req),
        this.#policy,
      );
      // Batches are applied in order on each stream; one on other streams need not wait.
      const prev = Promise.all(streams.map((st) => this.#locked.get(st))).then(() => {});
      const { promise: locked, resolve: onLocked } = Promise.withResolvers<void>();
      for (const st of streams) this.#locked.set(st, locked);
      this.#busy++;
      this.#write(group, streams, prev, onLocked)
        .then(
          (results) => group.forEach((q, i) => q.resolve(results[i])),
          (err: unknown) => group.forEach((q) => q.reject(err)),
        )
        .finally(() => {
          onLocked(); // in case it failed before locking
          this.#busy--;
          this.#pump();
          if (this.#busy === 0 && this.#queue.length === 0) for (const f of this.#idle.splice(0)) f();
        });
    }
  }

  async #write(group: readonly Queued[], streams: readonly AuditStreamName[], prev: Promise<void>, onLocked: () => void): Promise<LinkResult[]> {
    const reqs = group.map((q) => q.req);
    const client = await this.#pool.connect();
    let broken = false;
    try {
      await prev;
      let { heads, lastCp } = streams.length > 0 ? await lockHeads(client, streams) : await begin(client);
      if (heads.size < streams.length) {
        await client.query(RECREATE_HEADS, [streams.filter((s) => !heads.has(s))]);
        ({ heads, lastCp } = await lockHeads(client, streams, true));
      }
      onLocked();
      // Checkpoints of this batch count as stored (they are inserted in the same statement).
      for (const r of reqs) for (const c of r.checkpoints) lastCp.set(c.stream as AuditStreamName, Math.max(lastCp.get(c.stream as AuditStreamName) ?? 0, c.seq));
      const ev: unknown[][] = [[], [], [], [], [], [], [], [], [], [], []];
      const { results, heads: changed } = linkEvents(reqs, this.#policy, {
        head: (s) => heads.get(s),
        lastCheckpoint: (s) => lastCp.get(s) ?? 0,
        insert: (f: ChainFields, hash: string) => {
          ev[0].push(f.stream);
          ev[1].push(f.seq);
          ev[2].push(f.time);
          ev[3].push(f.type);
          ev[4].push(f.actor);
          ev[5].push(f.boundary);
          ev[6].push(f.subject);
          ev[7].push(f.decision);
          ev[8].push(f.payload);
          ev[9].push(f.prev_hash);
          ev[10].push(hash);
        },
      });
      const cp: unknown[][] = [[], [], [], [], [], [], []];
      for (const r of reqs) {
        for (const c of r.checkpoints) {
          cp[0].push(c.stream);
          cp[1].push(c.seq);
          cp[2].push(c.hash);
          cp[3].push(c.time);
          cp[4].push(c.prev_seq);
          cp[5].push(c.kid);
          cp[6].push(c.sig);
        }
      }
      const hd: unknown[][] = [[], [], [], [], [], []];
      for (const [s, h] of changed) {
        hd[0].push(s);
        hd[1].push(h.seq);
        hd[2].push(h.hash);
        hd[3].push(h.time);
        hd[4].push(h.cpSeq);
        hd[5].push(h.cpTime);
      }
      if (ev[0].length > 0 || cp[0].length > 0 || hd[0].length > 0) await client.query(WRITE_SQL, [...ev, ...cp, ...hd]);
      await client.query('COMMIT');
      return results;
    } catch (err) {
      try {
        await client.query('ROLLBACK');
      } catch {
        broken = true;
      }
      throw err;
    } finally {
      client.release(broken);
    }
  }
}

/** A transaction that extends no stream (it only stores checkpoints). */
async function begin(client: PoolClient): Promise<{ heads: Map<AuditStreamName, StoredHead | undefined>; lastCp: Map<AuditStreamName, number> }> {
  await client.query('BEGIN');
  return { heads: new Map(), lastCp: new Map() };
}

/** Locks the heads (BEGIN first unless `inTx`); a head at seq 0 is an empty stream (undefined to the linker). */
async function lockHeads(client: PoolClient, streams: readonly AuditStreamName[], inTx = false): Promise<{ heads: Map<AuditStreamName, StoredHead | undefined>; lastCp: Map<AuditStreamName, number> }> {
  let sql = lockSql(streams);
  if (inTx) sql = sql.slice('BEGIN; '.length);
  const res = (await client.query(sql)) as unknown as pg.QueryResult[];
  const [headRes, cpRes] = res.slice(-2);
  const heads = new Map<AuditStreamName, StoredHead | undefined>();
  for (const r of headRes.rows as HeadRow[]) {
    heads.set(r.stream, r.seq > 0 ? { seq: r.seq, hash: r.hash, time: r.last_time, cpSeq: r.cp_seq, cpTime: r.cp_time } : undefined);
  }
  const lastCp = new Map<AuditStreamName, number>();
  for (const r of cpRes.rows as { stream: AuditStreamName; s: number }[]) lastCp.set(r.stream, r.s);
  return { heads, lastCp };
}
