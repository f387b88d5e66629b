// Where batches are written: inline on the caller's connection, or in a worker thread with its own
// connection to the same file (the default for file databases).
import { Worker } from 'node:worker_threads';
import type { Db } from '../store/sqlite/db.ts';
import { ChainWriter, type CheckpointPolicy, type WriteRequest, type WriteResult } from './writer.ts';
import type { WorkerInit, WorkerReply } from './writer-worker.ts';

export interface BatchWriter {
  write(req: WriteRequest): Promise<WriteResult>;
  close(): Promise<void>;
}

export class InlineBatchWriter implements BatchWriter {
  readonly #writer: ChainWriter;
  constructor(db: Db, policy: CheckpointPolicy) {
    this.#writer = new ChainWriter(db, policy);
  }
  write(req: WriteRequest): Promise<WriteResult> {
    try {
      return Promise.resolve(this.#writer.write(req));
    } catch (e) {
      return Promise.reject(e);
    }
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

interface Call {
  resolve: (r: WriteResult) => void;
  reject: (e: unknown) => void;
}

export class WorkerBatchWriter implements BatchWriter {
  readonly #init: WorkerInit;
  #worker: Worker | undefined;
  readonly #calls = new Map<number, Call>();
  #nextId = 1;
  #closing = false;

  constructor(init: WorkerInit) {
    this.#init = init;
  }

  write(req: WriteRequest): Promise<WriteResult> {
    return this.#call({ req });
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

  #call(msg: { req: WriteRequest }): Promise<WriteResult> {
    const w = this.#worker ?? this.#spawn();
    const id = this.#nextId++;
    const { promise, resolve, reject } = Promise.withResolvers<WriteResult>();
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
