// Group commit for lease writes: the writes made during one turn of the event loop are committed
// in one transaction, on the store's connection (default) or by a worker thread on its own
// connection to the file. Every caller is answered after its transaction commits.
import { NotFound } from '../../common/errors.ts';
import type { Lease } from '../../credentials/types.ts';
import type { SqliteDb } from './db.ts';
import type { LeaseRows, LeaseWrite, LeaseWriteResult } from './lease-rows.ts';
import type { LeaseWorkerInit } from './lease-writer-worker.ts';
import { GroupCommitWorker } from './group-commit-worker.ts';

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
  /** Payload and result are JSON strings: cheaper to pass between threads than the lease objects (structured clone). */
  readonly #worker: GroupCommitWorker<string, string>;

  constructor(init: LeaseWorkerInit) {
    // Two in flight: the worker starts on the next batch as soon as it has committed one, and
    // this thread posts once per batch, not once per turn.
    super(2);
    this.#worker = new GroupCommitWorker(new URL('./lease-writer-worker.ts', import.meta.url), init, 'lease writer');
  }

  protected async commit(writes: LeaseWrite[]): Promise<LeaseWriteResult[]> {
    if (this.#worker.closing) throw new Error('lease writer closed');
    return JSON.parse(await this.#worker.call(JSON.stringify(writes))) as LeaseWriteResult[];
  }

  close(): Promise<void> {
    return this.#worker.close();
  }
}
