// The writer worker: its own connection to the store file, so hashing, inserts and the commit's
// fsync happen off the main event loop (and on the second core).
import { parentPort, workerData } from 'node:worker_threads';
import { DatabaseSync } from 'node:sqlite';
import { ChainWriter, type CheckpointPolicy, type WriteRequest } from './writer.ts';
import { CONNECTION_PRAGMAS } from '../store/sqlite.ts';

export interface WorkerInit {
  path: string;
  /** PRAGMA synchronous value to use (the main connection's or FULL). */
  synchronous: number;
  policy: CheckpointPolicy;
}

export type WorkerReply =
  | { id: number; ok: true; result: ReturnType<ChainWriter['write']> }
  | { id: number; ok: false; message: string };

const init = workerData as WorkerInit;
const db = new DatabaseSync(init.path);
db.exec(`${CONNECTION_PRAGMAS} PRAGMA synchronous = ${Number(init.synchronous) | 0};`);
const writer = new ChainWriter(db, init.policy);
const port = parentPort!;

port.on('message', (msg: { id: number; req?: WriteRequest; close?: true }) => {
  if (msg.close) {
    db.close();
    port.close(); // nothing else keeps the worker alive: it exits
    return;
  }
  let reply: WorkerReply;
  try {
    reply = { id: msg.id, ok: true, result: writer.write(msg.req!) };
  } catch (e) {
    reply = { id: msg.id, ok: false, message: e instanceof Error ? e.message : String(e) };
  }
  port.postMessage(reply);
});
