// Group commit in a worker thread, shared by the audit and lease writers: the worker side opens its
// own connection and commits the messages queued while it was busy in one go; the main side posts.
import { Worker, parentPort, receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import { DatabaseSync } from 'node:sqlite';
import { CONNECTION_PRAGMAS } from './db.ts';

export interface GroupCommitInit {
  path: string;
  /** PRAGMA synchronous for the writer's connection (2 = FULL: a commit survives power loss). */
  synchronous: number;
}

type Msg<P> = { id: number; payload?: P; close?: true };

/** `commits`: transactions the worker has run so far (one fsync each), for measurements. */
export type GroupCommitReply<R> = ({ id: number; ok: true; result: R } | { id: number; ok: false; message: string }) & { commits: number };

/**
 * Worker side (call at the top of a worker script): opens the connection, hands it to `setup`,
 * then commits with the function `setup` returns — one call, one result per payload, for all the
 * messages that arrived while the last commit ran (one fsync for all). A throw fails them all.
 * Does nothing when not running as a worker.
 */
export function serveGroupCommit<I extends GroupCommitInit, P, R>(setup: (db: DatabaseSync, init: I) => (payloads: P[]) => R[]): void {
  const init = workerData as I | undefined;
  const port: MessagePort | null = parentPort;
  if (!init || !port) return;
  const db = new DatabaseSync(init.path);
  db.exec(`${CONNECTION_PRAGMAS} PRAGMA synchronous = ${Number(init.synchronous) | 0};`);
  const commitAll = setup(db, init);
  let commits = 0;
  port.on('message', (first: Msg<P>) => {
    const msgs: Msg<P>[] = [];
    let close = false;
    for (let m: Msg<P> | undefined = first; m !== undefined; m = (receiveMessageOnPort(port) as { message: Msg<P> } | undefined)?.message) {
      if (m.close) {
        close = true;
        break;
      }
      msgs.push(m);
    }
    if (msgs.length > 0) {
      let replies: GroupCommitReply<R>[];
      commits++;
      try {
        const results = commitAll(msgs.map((m) => m.payload!));
        replies = msgs.map((m, i) => ({ id: m.id, ok: true, result: results[i]!, commits }));
      } catch (e) {
        const message = e instanceof Error ? e.message : String(e);
        replies = msgs.map((m) => ({ id: m.id, ok: false, message, commits }));
      }
      for (const r of replies) port.postMessage(r);
    }
    if (close) {
      db.close();
      port.close(); // nothing else keeps the worker alive: it exits
    }
  });
}

/**
 * Main side: starts the worker on first use (and again after it died), answers each call when the
 * worker replies, and keeps the process alive only while a call is in flight.
 */
export class GroupCommitWorker<P, R> {
  readonly #script: URL;
  readonly #init: GroupCommitInit;
  /** For errors: 'audit writer', 'lease writer'. */
  readonly #name: string;
  #worker: Worker | undefined;
  readonly #calls = new Map<number, { resolve: (r: R) => void; reject: (e: unknown) => void }>();
  #nextId = 1;
  #closing = false;
  #commits = 0;

  constructor(script: URL, init: GroupCommitInit, name: string) {
    this.#script = script;
    this.#init = init;
    this.#name = name;
  }

  /** Transactions the worker(s) ran so far (each one fsync at synchronous=FULL): for benchmarks. */
  get commits(): number {
    return this.#commits;
  }

  /** True once close() was called. */
  get closing(): boolean {
    return this.#closing;
  }

  call(payload: P): Promise<R> {
    const w = this.#worker ?? this.#spawn();
    const id = this.#nextId++;
    const { promise, resolve, reject } = Promise.withResolvers<R>();
    this.#calls.set(id, { resolve, reject });
    w.ref(); // a write in flight keeps the process alive until it is committed
    w.postMessage({ id, payload } satisfies Msg<P>);
    return promise;
  }

  async close(): Promise<void> {
    this.#closing = true;
    const w = this.#worker;
    if (!w) return;
    w.ref(); // stay alive until the worker has committed what it has and exited
    const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
    w.postMessage({ id: 0, close: true } satisfies Msg<P>);
    await exited;
    this.#worker = undefined;
  }

  #spawn(): Worker {
    const w = new Worker(this.#script, { workerData: this.#init });
    let seen = 0; // this worker's count so far (a fresh worker counts from 0)
    w.on('message', (reply: GroupCommitReply<R>) => {
      this.#commits += Math.max(0, reply.commits - seen);
      seen = Math.max(seen, reply.commits);
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
    w.on('exit', (code) => fail(new Error(this.#closing ? `${this.#name} closed` : `${this.#name} exited (code ${code})`)));
    w.unref();
    this.#worker = w;
    return w;
  }
}
