// Group commit for lease writes: the writes made during one turn of the event loop are committed
// in one transaction, on the store's connection (default) or by a worker thread on its own
// connection to the file. Every caller is answered after its transaction commits.
import { Worker } from 'node:worker_threads';
import { NotFound } from '../../common/errors.ts';
import type { Lease } from '../../credentials/types.ts';
import type { SqliteDb } from './db.ts';
import type { LeaseRows, LeaseWrite, LeaseWriteResult } from './lease-rows.ts';
import type { LeaseWorkerInit, LeaseWorkerReply } from './lease-writer-worker.ts';

export interface LeaseWriter {
  /** Resolves once the write is committed: with the lease as it is now (update, transition). */
  write(w: LeaseWrite): Promise<Lease | undefined>;
  close(): Promise<void>;
}

interface Pending {
  write: LeaseWrite;
  resolve: (l: Lease | undefined) => void;
  reject: (e: unknown) => void;
}

function settle(p: Pending, r: LeaseWriteResult): void {
  if (r.ok) p.resolve(r.lease);
  else if (r.notFound && p.write.op !== 'insert') p.reject(new NotFound(`lease ${p.write.id}`));
  else p.reject(new Error(r.message));
}

/**
 * Collects writes and hands them on together: the writes of one turn of the event loop, and those
 * that arrive while `maxInFlight` batches are being committed, form the next batch.
 */
abstract class GroupCommit implements LeaseWriter {
  readonly #maxInFlight: number;
  #queue: Pending[] = [];
  #scheduled = false;
  #inFlight = 0;

  constructor(maxInFlight: number) {
    this.#maxInFlight = maxInFlight;
  }

  write(write: LeaseWrite): Promise<Lease | undefined> {
    const { promise, resolve, reject } = Promise.withResolvers<Lease | undefined>();
    this.#queue.push({ write, resolve, reject });
    this.#schedule();
    return promise;
  }

  #schedule(): void {
    if (this.#scheduled || this.#inFlight >= this.#maxInFlight) return; // a finishing batch reschedules
    this.#scheduled = true;
    // setImmediate, not a microtask: every write made during this turn joins the batch.
    setImmediate(() => {
      this.#scheduled = false;
      this.#send();
    });
  }

  #send(): void {
    if (this.#queue.length === 0) return;
    const batch = this.#queue;
    this.#queue = [];
    this.#inFlight++;
    this.commit(batch.map((p) => p.write))
      .then(
        (results) => batch.forEach((p, i) => settle(p, results[i]!)),
        (e: unknown) => batch.forEach((p) => p.reject(e)),
      )
      .finally(() => {
        this.#inFlight--;
        if (this.#queue.length > 0) this.#schedule();
      });
  }

  /** Commits the writes in one transaction; one result each. Rejects when nothing was committed. */
  protected abstract commit(writes: LeaseWrite[]): Promise<LeaseWriteResult[]>;
  abstract close(): Promise<void>;
}

/** Commits each batch in one transaction on the store's own connection. */
export class InlineLeaseWriter extends GroupCommit {
  readonly #db: SqliteDb;
  readonly #rows: LeaseRows;

  constructor(db: SqliteDb, rows: LeaseRows) {
    super(1); // one thread: a second batch in flight would only add commits
    this.#db = db;
    this.#rows = rows;
  }

  protected commit(writes: LeaseWrite[]): Promise<LeaseWriteResult[]> {
    // run() first waits until no other flow's transaction is open on the connection.
    return this.#db.run(() => this.#rows.applyBatch(writes));
  }

  async close(): Promise<void> {}
}

/**
 * Commits each turn's writes in a worker thread with its own connection to the store file: the
 * B-tree work, the WAL writes and the fsync happen off the event loop (and on the other core).
 * The worker writes batches that arrive while it commits together.
 */
export class WorkerLeaseWriter extends GroupCommit {
  readonly #init: LeaseWorkerInit;
  #worker: Worker | undefined;
  readonly #calls = new Map<number, { resolve: (r: LeaseWriteResult[]) => void; reject: (e: unknown) => void }>();
  #nextId = 1;
  #closing = false;

  constructor(init: LeaseWorkerInit) {
    // Two in flight: the worker starts on the next batch as soon as it has committed one, and
    // this thread posts once per batch, not once per turn.
    super(2);
    this.#init = init;
  }

  protected commit(writes: LeaseWrite[]): Promise<LeaseWriteResult[]> {
    if (this.#closing) return Promise.reject(new Error('lease writer closed'));
    const w = this.#worker ?? this.#spawn();
    const id = this.#nextId++;
    const { promise, resolve, reject } = Promise.withResolvers<LeaseWriteResult[]>();
    this.#calls.set(id, { resolve, reject });
    w.ref(); // a write in flight keeps the process alive until it is committed
    // As one JSON string: cheaper to pass between threads than the lease objects (structured clone).
    w.postMessage({ id, writes: JSON.stringify(writes) });
    return promise;
  }

  async close(): Promise<void> {
    this.#closing = true;
    const w = this.#worker;
    if (!w) return;
    w.ref(); // stay alive until the worker has committed what it has and exited
    const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
    w.postMessage({ id: 0, close: true });
    await exited;
    this.#worker = undefined;
  }

  #spawn(): Worker {
    const w = new Worker(new URL('./lease-writer-worker.ts', import.meta.url), { workerData: this.#init });
    w.on('message', (reply: LeaseWorkerReply) => {
      const call = this.#calls.get(reply.id);
      if (!call) return;
      this.#calls.delete(reply.id);
      if (this.#calls.size === 0) w.unref();
      if ('results' in reply) call.resolve(JSON.parse(reply.results) as LeaseWriteResult[]);
      else call.reject(new Error(reply.message));
    });
    const fail = (e: Error): void => {
      if (this.#worker === w) this.#worker = undefined; // the next write starts a fresh worker
      for (const c of this.#calls.values()) c.reject(e);
      this.#calls.clear();
    };
    w.on('error', fail);
    w.on('exit', (code) => fail(new Error(this.#closing ? 'lease writer closed' : `lease writer exited (code ${code})`)));
    w.unref();
    this.#worker = w;
    return w;
  }
}
