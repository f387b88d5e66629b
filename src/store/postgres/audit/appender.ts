// The PostgreSQL audit appender (AuditAppender, src/audit/ports.ts): one hash chain per stream
// shared by every replica, written in group commits that lock the heads they extend only until
// COMMIT; each batch is answered once a grouped WAL flush (flush.ts) has made it durable.
import pg from 'pg';
import type { PoolClient } from 'pg';
import type { ChainFields } from '../../../audit/chain.ts';
import { FIELDS, flattenEvents, linkEvents, type CheckpointPolicy, type LinkRequest, type LinkResult, type StoredHead } from '../../../audit/linker.ts';
import type { AppendBatch, AppendResult, AppenderOptions, AuditAppender } from '../../../audit/ports.ts';
import { AUDIT_STREAMS, type AuditStreamName } from '../../../audit/types.ts';
import { rollbackAndThrow, withClient } from '../db.ts';
import type { PgDb } from '../db.ts';
import type { WalFlusher } from './flush.ts';

/** Connections of one appender: a transaction on one stream need not wait for one on another. */
const CONNECTIONS = 2;
/** A session idle inside a transaction this long is ended by the server, releasing its locks. */
const IDLE_IN_TRANSACTION_MS = 10_000;
/** Longest wait for the heads before the batch fails. */
const LOCK_TIMEOUT_MS = 30_000;
/** Most events one transaction takes from the queue (bounds a transaction's size and lock time). */
const MAX_TX_EVENTS = 20_000;
/**
 * Up to this many events, the write goes as literals in one simple query with the COMMIT (one
 * round trip less while the heads are held); above, as parameters (cheaper to build and parse for
 * thousands of rows, where a round trip is nothing next to the insert).
 */
const INLINE_MAX_EVENTS = 100;

// The heads a batch extends, locked in stream order (so no two transactions ever deadlock), and
// the last stored checkpoint of each (only when this appender signs: the linker asks for it only
// for a due checkpoint), read by a later statement: in READ COMMITTED each statement of a
// multi-statement query takes its snapshot when it starts, i.e. after the locks were granted, so
// it sees what the transaction we waited for committed. Sent as one simple query (one round
// trip); the stream names are the fixed AUDIT_STREAMS, the only values inlined.
function lockSql(streams: readonly AuditStreamName[], checkpoints: boolean, inTx: boolean): string {
  const list = `'{${streams.join(',')}}'`;
  return (inTx ? '' : 'BEGIN; ') + `EXECUTE pcx_audit_lock(${list})` + (checkpoints ? `; EXECUTE pcx_audit_cps(${list})` : '');
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

// Prepared once per connection (planning the write statement each time cost as much as running
// it on a small batch), and run by EXECUTE inside simple queries: a transaction of a small batch
// is two round trips — lock and read; write and commit — so a stream's lock waits on this process
// once, not twice. Large batches use the write prepared at the protocol level (WRITE_BIG).
const PREPARE_SQL =
  'PREPARE pcx_audit_lock(text[]) AS SELECT stream, seq, hash, last_time, cp_seq, cp_time FROM audit_heads WHERE stream = ANY($1) ORDER BY stream FOR UPDATE; ' +
  'PREPARE pcx_audit_cps(text[]) AS SELECT stream, MAX(seq) AS s FROM audit_checkpoints WHERE stream = ANY($1) GROUP BY stream; ' +
  `PREPARE pcx_audit_write AS ${WRITE_SQL}`;

/**
 * An array parameter as a SQL literal: its text form (as pg would send it: elements quoted, `\`
 * and `"` escaped) as a string constant — E'…' with `\` doubled when it holds one, `'` doubled, as
 * pg.escapeLiteral does (which is quadratic on long strings).
 */
function arrayLiteral(values: readonly unknown[], type: 'text' | 'int8'): string {
  const items = new Array<string>(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined) items[i] = 'NULL';
    else if (type === 'int8') items[i] = String(Number(v));
    else items[i] = /[\\"]/.test(v as string) ? `"${(v as string).replace(/[\\"]/g, '\\$&')}"` : `"${v as string}"`;
  }
  const text = `{${items.join(',')}}`.replace(/'/g, "''");
  return `${text.includes('\\') ? ` E'${text.replace(/\\/g, '\\\\')}'` : `'${text}'`}::${type}[]`;
}

const WRITE_BIG = 'pcx_audit_write_params';

/** The column types of WRITE_SQL's parameters, in order. */
const WRITE_TYPES: readonly ('text' | 'int8')[] = [
  ...(['text', 'int8', 'text', 'text', 'text', 'text', 'text', 'text', 'text', 'text', 'text'] as const),
  ...(['text', 'int8', 'text', 'text', 'int8', 'text', 'text'] as const),
  ...(['text', 'int8', 'text', 'text', 'int8', 'int8'] as const),
];

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
  /** The streams its transaction locks (streamsOf). */
  streams: AuditStreamName[];
  /** Events in it. */
  n: number;
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
 * Writes batches as transactions on its own connections. Each takes the batches queued when a
 * connection is free and no transaction of this appender is under way on their streams (#take),
 * locks the heads of the streams it touches, links the events onto them, writes everything in one
 * statement and commits without waiting for the WAL flush (synchronous_commit = off: the locks are
 * released as the commit record enters the WAL, not after its fsync); each promise resolves once a
 * flush that started after that COMMIT has returned (WalFlusher, shared by the store's appenders
 * and readers). A stream's lock is held for the lock's answer, the linking, the insert and the
 * commit — never for a flush — and each replica has at most one transaction on it at a time, so
 * while the lock goes round the replicas each gathers a larger batch for its next turn.
 *
 * Why answering after the flush is enough, with other replicas chaining onto a batch before it is
 * durable: the WAL is one sequence, flushed in order. A transaction that extends a stream read its
 * head after the previous one released it, i.e. after that one's commit record was in the WAL, so
 * its own records come later in the WAL: a flush that covers a batch covers everything it was
 * chained onto, and a server crash loses a suffix of the WAL — on each stream, a suffix of the
 * chain (no gap), made only of batches nobody was answered for.
 */
export class PgAppender implements AuditAppender {
  readonly maxInFlight = 4;
  /** A tick's appends are sent in chunks of this many, so one is written while the rest are prepared. */
  readonly chunk = 2000;
  readonly #db: PgDb;
  readonly #pool: pg.Pool;
  readonly #policy: CheckpointPolicy;
  readonly #flusher: WalFlusher;
  #queue: Queued[] = [];
  /** Transactions under way (at most CONNECTIONS). */
  #busy = 0;
  /** Groups taken from the queue and not yet answered (written, or waiting for their flush). */
  #pending = 0;
  /** Streams with a transaction of this appender under way: the next one on them waits for its COMMIT. */
  readonly #writing = new Set<AuditStreamName>();
  /** Connections on which PREPARE_SQL has run. */
  readonly #prepared = new WeakSet<PoolClient>();
  #idle: (() => void)[] = [];
  #closed = false;
  readonly #onClose: () => void;

  /**
   * `flusher`: makes committed batches durable (with synchronous_commit = on for `durability:
   * 'full'`, the server's setting for `store`). `onClose`: called once it is closed (the store
   * forgets it).
   */
  constructor(db: PgDb, opts: AppenderOptions, flusher: WalFlusher, onClose: () => void = () => {}) {
    this.#db = db;
    this.#flusher = flusher;
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
      // COMMIT releases the heads without waiting for the WAL flush; the flusher waits for it.
      '-c synchronous_commit=off',
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
    this.#queue.push({ req, streams: streamsOf([req], this.#policy), n: req.events.length / FIELDS, resolve, reject });
    this.#pump();
    return promise;
  }

  async close(): Promise<void> {
    if (this.#pending > 0 || this.#queue.length > 0) await new Promise<void>((r) => this.#idle.push(r));
    if (this.#closed) return;
    this.#closed = true;
    this.#onClose();
    await this.#pool.end().catch(() => {});
  }

  // A transaction takes, in order, the queued batches none of whose streams has a transaction of
  // this appender under way (up to MAX_TX_EVENTS events); a batch left waiting holds back every
  // later one on its streams, so batches are applied in the order given on each stream. So one
  // transaction at a time per stream and replica: what arrives meanwhile waits and goes in the
  // next one, larger (fewer commits per event); a batch on another stream need not wait.
  #take(): Queued[] {
    const blocked = new Set(this.#writing);
    const group: Queued[] = [];
    const rest: Queued[] = [];
    let events = 0;
    for (const q of this.#queue) {
      if (q.streams.some((s) => blocked.has(s)) || (group.length > 0 && events + q.n > MAX_TX_EVENTS)) {
        rest.push(q);
        for (const s of q.streams) blocked.add(s);
      } else {
        group.push(q);
        events += q.n;
      }
    }
    if (group.length > 0) this.#queue = rest;
    return group;
  }

  #pump(): void {
    while (this.#busy < CONNECTIONS && this.#queue.length > 0) {
      const group = this.#take();
      if (group.length === 0) return; // each waits for a transaction under way on its streams
      const streams = [...new Set(group.flatMap((q) => q.streams))].sort();
      for (const st of streams) this.#writing.add(st);
      this.#busy++;
      this.#pending++;
      const committed = this.#write(group, streams).finally(() => {
        for (const st of streams) this.#writing.delete(st);
        this.#busy--;
        this.#pump(); // the next transaction on these streams need not wait for this one's flush
      });
      committed
        .then(async (results) => {
          await this.#flusher.flushed();
          return results;
        })
        .then(
          (results) => group.forEach((q, i) => q.resolve(results[i])),
          (err: unknown) => group.forEach((q) => q.reject(err)),
        )
        .finally(() => {
          this.#pending--;
          if (this.#pending === 0 && this.#queue.length === 0) for (const f of this.#idle.splice(0)) f();
        });
    }
  }

  async #write(group: readonly Queued[], streams: readonly AuditStreamName[]): Promise<LinkResult[]> {
    const reqs = group.map((q) => q.req);
    return withClient(this.#pool, async (client, broken) => {
      try {
        if (!this.#prepared.has(client)) {
          await client.query(PREPARE_SQL);
          this.#prepared.add(client);
        }
        const cps = this.#policy.enabled;
        let { heads, lastCp } = streams.length > 0 ? await lockHeads(client, streams, cps) : await begin(client);
        if (heads.size < streams.length) {
          await client.query(RECREATE_HEADS, [streams.filter((s) => !heads.has(s))]);
          ({ heads, lastCp } = await lockHeads(client, streams, cps, true));
        }
        // Checkpoints of this batch count as stored (they are inserted in the same statement).
        for (const r of reqs) for (const c of r.checkpoints) lastCp.set(c.stream as AuditStreamName, Math.max(lastCp.get(c.stream as AuditStreamName) ?? 0, c.seq));
        const ev: unknown[][] = [[], [], [], [], [], [], [], [], [], [], []];
        const { results, heads: changed } = linkEvents(reqs, this.#policy, {
          head: (s) => heads.get(s),
          lastCheckpoint: (s) => lastCp.get(s) ?? 0,
          insert: (f: ChainFields, hash: string) => addRow(ev, [f.stream, f.seq, f.time, f.type, f.actor, f.boundary, f.subject, f.decision, f.payload, f.prev_hash, hash]),
        });
        const cp: unknown[][] = [[], [], [], [], [], [], []];
        for (const r of reqs) for (const c of r.checkpoints) addRow(cp, [c.stream, c.seq, c.hash, c.time, c.prev_seq, c.kid, c.sig]);
        const hd: unknown[][] = [[], [], [], [], [], []];
        for (const [s, h] of changed) addRow(hd, [s, h.seq, h.hash, h.time, h.cpSeq, h.cpTime]);
        const values = [...ev, ...cp, ...hd];
        if (ev[0].length > INLINE_MAX_EVENTS) {
          await client.query({ name: WRITE_BIG, text: WRITE_SQL, values });
          await client.query('COMMIT');
        } else if (ev[0].length > 0 || cp[0].length > 0 || hd[0].length > 0) {
          await client.query(`EXECUTE pcx_audit_write(${values.map((v, i) => arrayLiteral(v, WRITE_TYPES[i]!)).join(', ')}); COMMIT`);
        } else {
          await client.query('COMMIT');
        }
        return results;
      } catch (err) {
        return rollbackAndThrow(client, broken, err);
      }
    });
  }
}

/** Appends one row to column arrays (the write statement takes one array per column). */
function addRow(cols: unknown[][], row: readonly unknown[]): void {
  for (let i = 0; i < row.length; i++) cols[i].push(row[i]);
}

/** A transaction that extends no stream (it only stores checkpoints). */
async function begin(client: PoolClient): Promise<{ heads: Map<AuditStreamName, StoredHead | undefined>; lastCp: Map<AuditStreamName, number> }> {
  await client.query('BEGIN');
  return { heads: new Map(), lastCp: new Map() };
}

/**
 * Locks the heads (BEGIN first unless `inTx`), and reads the last checkpoints if `checkpoints`; a
 * head at seq 0 is an empty stream (undefined to the linker).
 */
async function lockHeads(
  client: PoolClient,
  streams: readonly AuditStreamName[],
  checkpoints: boolean,
  inTx = false,
): Promise<{ heads: Map<AuditStreamName, StoredHead | undefined>; lastCp: Map<AuditStreamName, number> }> {
  const out = (await client.query(lockSql(streams, checkpoints, inTx))) as unknown as pg.QueryResult | pg.QueryResult[];
  const res = (Array.isArray(out) ? out : [out]).slice(inTx ? 0 : 1); // BEGIN's result first
  const heads = new Map<AuditStreamName, StoredHead | undefined>();
  for (const r of res[0].rows as HeadRow[]) {
    heads.set(r.stream, r.seq > 0 ? { seq: r.seq, hash: r.hash, time: r.last_time, cpSeq: r.cp_seq, cpTime: r.cp_time } : undefined);
  }
  const lastCp = new Map<AuditStreamName, number>();
  for (const r of (res[1]?.rows ?? []) as { stream: AuditStreamName; s: number }[]) lastCp.set(r.stream, r.s);
  return { heads, lastCp };
}
