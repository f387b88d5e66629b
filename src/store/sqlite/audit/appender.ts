// The audit appenders (AuditAppender, src/audit/ports.ts): batches written inline on the store's
// audit connection, or by a worker thread with its own connection to audit.db (the default for a
// file), both one transaction per batch through ChainWriter.
import { Worker } from 'node:worker_threads';
import type { SqliteDb } from '../db.ts';
import { ChainWriter } from './writer.ts';
import { flattenEvents, type LinkRequest, type LinkResult } from '../../../audit/linker.ts';
import type { AppendBatch, AppendResult, AuditAppender } from '../../../audit/ports.ts';
import type { WorkerInit, WorkerReply } from './writer-worker.ts';

/** Measured on 2 cores (bench/audit.ts): smaller chunks cost more commits, larger ones idle the worker. */
const WORKER_CHUNK = 2000;

function request(batch: AppendBatch): LinkRequest {
  return { events: flattenEvents(batch.events), checkpoints: batch.checkpoints, now: batch.now, checkpoint: batch.checkpoint };
}

export class InlineAppender implements AuditAppender {
  readonly maxInFlight = 1;
  readonly chunk = Infinity; // one thread: splitting a tick would only add commits
  readonly #db: SqliteDb;
  readonly #writer: ChainWriter;

  constructor(db: SqliteDb, init: Omit<WorkerInit, 'path'>) {
    this.#db = db;
    db.raw.exec(`PRAGMA synchronous = ${Number(init.synchronous) | 0}`);
    this.#writer = new ChainWriter(db.raw, init.policy);
  }

  get isOpen(): boolean {
    return this.#db.isOpen;
  }

  append(batch: AppendBatch): Promise<AppendResult> {
    return this.#db.run(() => this.#writer.write(request(batch)));
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

interface Call {
  resolve: (r: LinkResult) => void;
  reject: (e: unknown) => void;
}

export class WorkerAppender implements AuditAppender {
  // Batches queued in the worker while it commits are written together (one fsync), so several
  // may be sent: no idle gap, and a big tick is cut into chunks the worker starts on while the
  // caller still prepares the rest.
  readonly maxInFlight = 4;
  readonly chunk = WORKER_CHUNK;
  readonly #db: SqliteDb;
  readonly #init: WorkerInit;
  #worker: Worker | undefined;
  readonly #calls = new Map<number, Call>();
  #nextId = 1;
  #closing = false;

  /** `db`: the store's audit connection, whose closing closes this appender's store too. */
  constructor(db: SqliteDb, init: WorkerInit) {
    this.#db = db;
    this.#init = init;
  }

  get isOpen(): boolean {
    return this.#db.isOpen;
  }

  append(batch: AppendBatch): Promise<AppendResult> {
    return this.#call({ req: request(batch) });
  }

  async close(): Promise<void> {
    const w = this.#worker;
    if (!w) return;
    this.#closing = true;
    w.ref(); // stay alive until the worker has closed its connection and exited
    const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
    w.postMessage({ id: 0, close: true });
    await exited;
    this.#worker = undefined;
  }

  #call(msg: { req: LinkRequest }): Promise<LinkResult> {
    const w = this.#worker ?? this.#spawn();
    const id = this.#nextId++;
    const { promise, resolve, reject } = Promise.withResolvers<LinkResult>();
    this.#calls.set(id, { resolve, reject });
    w.ref(); // an append in flight keeps the process alive until it is durable
    w.postMessage({ id, ...msg });
    return promise;
  }

  #spawn(): Worker {
    const w = new Worker(new URL('./writer-worker.ts', import.meta.url), { workerData: this.#init });
    w.on('message', (reply: WorkerReply) => {
      const call = this.#calls.get(reply.id);
      if (!call) return;
      this.#calls.delete(reply.id);
      if (this.#calls.size === 0) w.unref();
      if (reply.ok) call.resolve(reply.result);
      else call.reject(new Error(reply.message));
    });
    const fail = (e: Error): void => {
      if (this.#worker === w) this.#worker = undefined; // the next write starts a fresh worker
      for (const c of this.#calls.values()) c.reject(e);
      this.#calls.clear();
    };
    w.on('error', fail);
    w.on('exit', (code) => fail(new Error(this.#closing ? 'audit writer closed' : `audit writer exited (code ${code})`)));
    w.unref();
    this.#worker = w;
    return w;
  }
}
