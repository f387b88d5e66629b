// The audit writer worker: its own connection to audit.db, so hashing, inserts and the commit's
// fsync happen off the main event loop (and on the second core).
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { DatabaseSync } from 'node:sqlite';
import { ChainWriter } from './writer.ts';
import { CONNECTION_PRAGMAS } from '../db.ts';
import type { CheckpointPolicy, LinkRequest, LinkResult } from '../../../audit/linker.ts';

export interface WorkerInit {
  path: string;
  /** PRAGMA synchronous value to use (the main connection's or FULL). */
  synchronous: number;
  policy: CheckpointPolicy;
}

export type WorkerReply = { id: number; ok: true; result: LinkResult } | { id: number; ok: false; message: string };

const init = workerData as WorkerInit;
const db = new DatabaseSync(init.path);
db.exec(`${CONNECTION_PRAGMAS} PRAGMA synchronous = ${Number(init.synchronous) | 0};`);
const writer = new ChainWriter(db, init.policy);
const port = parentPort!;

type Msg = { id: number; req?: LinkRequest; close?: true };

port.on('message', (first: Msg) => {
  // Requests that arrived while the last transaction was committing are written together: one
  // fsync for all of them instead of one each.
  const msgs: Msg[] = [];
  let close = false;
  for (let m: Msg | undefined = first; m !== undefined; m = (receiveMessageOnPort(port) as { message: Msg } | undefined)?.message) {
    if (m.close) {
      close = true;
      break;
    }
    msgs.push(m);
  }
  if (msgs.length > 0) {
    let replies: WorkerReply[];
    try {
      const results = writer.writeAll(msgs.map((m) => m.req!));
      replies = msgs.map((m, i) => ({ id: m.id, ok: true, result: results[i] }));
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      replies = msgs.map((m) => ({ id: m.id, ok: false, message }));
    }
    for (const r of replies) port.postMessage(r);
  }
  if (close) {
    db.close();
    port.close(); // nothing else keeps the worker alive: it exits
  }
});
