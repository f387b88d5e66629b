// The lease writer worker: its own connection to the state file, so lease writes — B-tree
// updates, WAL writes, the commit's fsync — happen off the main event loop.
import { serveGroupCommit, type GroupCommitInit } from './group-commit-worker.ts';
import { LeaseRows } from './lease-rows.ts';
import type { LeaseWrite, LeaseWriteResult } from './lease-rows.ts';

export type LeaseWorkerInit = GroupCommitInit;

// Batches that arrived while the last transaction was committing go into one transaction.
// Payload: the JSON of one batch's LeaseWrite list; result: the JSON of its LeaseWriteResult list
// (one string is cheaper to pass between threads than the objects, by structured clone).
serveGroupCommit<LeaseWorkerInit, string, string>((db) => {
  const rows = new LeaseRows(db);
  return (payloads) => {
    const batches = payloads.map((p) => JSON.parse(p) as LeaseWrite[]);
    const results: LeaseWriteResult[] = rows.applyBatch(batches.flat());
    let at = 0;
    return batches.map((b) => {
      at += b.length;
      return JSON.stringify(results.slice(at - b.length, at));
    });
  };
});
