// The lease writer worker: its own connection to the state file, so lease writes — B-tree
// updates, WAL writes, the commit's fsync — happen off the main event loop.
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { DatabaseSync } from 'node:sqlite';
import { CONNECTION_PRAGMAS } from './db.ts';
import { LeaseRows } from './lease-rows.ts';
import type { LeaseWrite, LeaseWriteResult } from './lease-rows.ts';

export interface LeaseWorkerInit {
  path: string;
  /** PRAGMA synchronous for the writer's connection (2 = FULL: a commit survives power loss). */
  synchronous: number;
}

/** `results`: the JSON of one LeaseWriteResult per write of the message, in order. */
export type LeaseWorkerReply = { id: number; results: string } | { id: number; message: string };

/** `writes`: the JSON of the batch's LeaseWrite list. */
type Msg = { id: number; writes?: string; close?: true };

const init = workerData as LeaseWorkerInit | undefined;
const port = parentPort;
if (init && port) {
  const db = new DatabaseSync(init.path);
  db.exec(`${CONNECTION_PRAGMAS} PRAGMA synchronous = ${Number(init.synchronous) | 0};`);
  const rows = new LeaseRows(db);
  port.on('message', (first: Msg) => {
    // Batches that arrived while the last transaction was committing go into one transaction.
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
      let replies: LeaseWorkerReply[];
      try {
        const batches = msgs.map((m) => (m.writes ? (JSON.parse(m.writes) as LeaseWrite[]) : []));
        const results: LeaseWriteResult[] = rows.applyBatch(batches.flat());
        let at = 0;
        replies = msgs.map((m, i) => {
          const n = batches[i]!.length;
          at += n;
          return { id: m.id, results: JSON.stringify(results.slice(at - n, at)) };
        });
      } catch (e) {
        const message = e instanceof Error ? e.message : String(e);
        replies = msgs.map((m) => ({ id: m.id, message }));
      }
      for (const r of replies) port.postMessage(r);
    }
    if (close) {
      db.close();
      port.close(); // nothing else keeps the worker alive: it exits
    }
  });
}
