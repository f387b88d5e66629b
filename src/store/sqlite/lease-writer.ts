// Group commit for lease writes: the writes made during one turn of the event loop are committed
// in one transaction, on the store's connection (default) or by a worker thread on its own
// connection to the file. Every caller is answered after its transaction commits.
import { NotFound } from '../../common/errors.ts';
import type { Lease } from '../../credentials/types.ts';
import type { SqliteDb } from './db.ts';
import type { LeaseRows, LeaseWrite, LeaseWriteResult } from './lease-rows.ts';
import type { LeaseWorkerInit } from './lease-writer-worker.ts';
import { GroupCommitWorker } from './group-commit-worker.ts';
import { GroupCommit, type Pending as GroupPending } from '../group-commit.ts';

export interface LeaseWriter {
  /** Resolves once the write is committed: with the lease as it is now (update, transition). */
  write(w: LeaseWrite): Promise<Lease | undefined>;
  close(): Promise<void>;
}

type Pending = GroupPending<LeaseWrite, Lease | undefined>;

function settle(p: Pending, r: LeaseWriteResult): void {
  if (r.ok) p.resolve(r.lease);
  else if (r.notFound && p.write.op !== 'insert') p.reject(new NotFound(`lease ${p.write.id}`));
  else p.reject(new Error(r.message));
}

/** The shared group commit (../group-commit.ts) over a commit that answers each write of the batch. */
abstract class LeaseGroupCommit extends GroupCommit<LeaseWrite, Lease | undefined> implements LeaseWriter {
  protected async commit(batch: Pending[]): Promise<void> {
    let results: LeaseWriteResult[];
    try {
      results = await this.commitWrites(batch.map((p) => p.write));
    } catch (e) {
      for (const p of batch) p.reject(e);
      return;
    }
    batch.forEach((p, i) => settle(p, results[i]!));
  }

  /** Commits the writes in one transaction; one result each. Rejects when nothing was committed. */
  protected abstract commitWrites(writes: LeaseWrite[]): Promise<LeaseWriteResult[]>;
  abstract close(): Promise<void>;
}

/** Commits each batch in one transaction on the store's own connection. */
export class InlineLeaseWriter extends LeaseGroupCommit {
  readonly #db: SqliteDb;
  readonly #rows: LeaseRows;

  constructor(db: SqliteDb, rows: LeaseRows) {
    super(1); // one thread: a second batch in flight would only add commits
    this.#db = db;
    this.#rows = rows;
  }

  protected commitWrites(writes: LeaseWrite[]): Promise<LeaseWriteResult[]> {
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
export class WorkerLeaseWriter extends LeaseGroupCommit {
  /** Payload and result are JSON strings: cheaper to pass between threads than the lease objects (structured clone). */
  readonly #worker: GroupCommitWorker<string, string>;

  constructor(init: LeaseWorkerInit) {
    // Two in flight: the worker starts on the next batch as soon as it has committed one, and
    // this thread posts once per batch, not once per turn.
    super(2);
    this.#worker = new GroupCommitWorker(new URL('./lease-writer-worker.ts', import.meta.url), init, 'lease writer');
  }

  protected async commitWrites(writes: LeaseWrite[]): Promise<LeaseWriteResult[]> {
    if (this.#worker.closing) throw new Error('lease writer closed');
    return JSON.parse(await this.#worker.call(JSON.stringify(writes))) as LeaseWriteResult[];
  }

  close(): Promise<void> {
    return this.#worker.close();
  }
}
