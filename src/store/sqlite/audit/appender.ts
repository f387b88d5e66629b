// The audit appenders (AuditAppender, src/audit/ports.ts): batches written inline on the store's
// audit connection, or by a worker thread with its own connection to audit.db (the default for a
// file), both one transaction per batch through ChainWriter.
import type { SqliteDb } from '../db.ts';
import { ChainWriter } from './writer.ts';
import { flattenEvents, type LinkRequest, type LinkResult } from '../../../audit/linker.ts';
import type { AppendBatch, AppendResult, AuditAppender } from '../../../audit/ports.ts';
import type { WorkerInit } from './writer-worker.ts';
import { GroupCommitWorker } from '../group-commit-worker.ts';

/** Measured on 2 cores (bench/audit.ts): smaller chunks cost more commits, larger ones idle the worker. */
const WORKER_CHUNK = 2000;

function request(batch: AppendBatch): LinkRequest {
  return { events: flattenEvents(batch.events), checkpoints: batch.checkpoints, now: batch.now, checkpoint: batch.checkpoint, ...(batch.sign !== undefined && { sign: batch.sign }) };
}

export class InlineAppender implements AuditAppender {
  readonly maxInFlight = 1;
  readonly chunk = Infinity; // one thread: splitting a tick would only add commits
  readonly #db: SqliteDb;
  readonly #writer: ChainWriter;
  commits = 0;

  constructor(db: SqliteDb, init: Omit<WorkerInit, 'path'>) {
    this.#db = db;
    db.raw.exec(`PRAGMA synchronous = ${Number(init.synchronous) | 0}`);
    this.#writer = new ChainWriter(db.raw, init.policy);
  }

  get isOpen(): boolean {
    return this.#db.isOpen;
  }

  append(batch: AppendBatch): Promise<AppendResult> {
    this.commits++;
    return this.#db.run(() => this.#writer.write(request(batch)));
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

export class WorkerAppender implements AuditAppender {
  // Batches queued in the worker while it commits are written together (one fsync), so several
  // may be sent: no idle gap, and a big tick is cut into chunks the worker starts on while the
  // caller still prepares the rest.
  readonly maxInFlight = 4;
  readonly chunk = WORKER_CHUNK;
  readonly #db: SqliteDb;
  readonly #worker: GroupCommitWorker<LinkRequest, LinkResult>;

  /** `db`: the store's audit connection, whose closing closes this appender's store too. */
  constructor(db: SqliteDb, init: WorkerInit) {
    this.#db = db;
    this.#worker = new GroupCommitWorker(new URL('./writer-worker.ts', import.meta.url), init, 'audit writer');
  }

  get isOpen(): boolean {
    return this.#db.isOpen;
  }

  get commits(): number {
    return this.#worker.commits;
  }

  append(batch: AppendBatch): Promise<AppendResult> {
    return this.#worker.call(request(batch));
  }

  close(): Promise<void> {
    return this.#worker.close();
  }
}
