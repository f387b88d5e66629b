// The audit writer worker: its own connection to audit.db, so hashing, inserts and the commit's
// fsync happen off the main event loop (and on the second core).
import { ChainWriter } from './writer.ts';
import { serveGroupCommit, type GroupCommitInit } from '../group-commit-worker.ts';
import type { CheckpointPolicy, LinkRequest, LinkResult } from '../../../audit/linker.ts';

export interface WorkerInit extends GroupCommitInit {
  policy: CheckpointPolicy;
}

// Requests that arrived while the last transaction was committing are written together: one
// fsync for all of them instead of one each.
serveGroupCommit<WorkerInit, LinkRequest, LinkResult>((db, init) => {
  const writer = new ChainWriter(db, init.policy);
  return (reqs) => writer.writeAll(reqs);
});
