// Verification, online (the live Db) or offline (the data directory, read-only, server down).
// Recomputes each stream's chain from seq 1, checks every checkpoint's signature and that it
// matches the chain, and checks the head row so a truncated tail is caught. The result names
// the first sequence number that cannot be trusted.
import { DatabaseSync } from 'node:sqlite';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { GENESIS } from './chain.ts';
import { CheckpointVerifier, type CheckpointRow } from './checkpoint.ts';
import { scanRange, type ChainBreak, type ScanResult } from './scan.ts';
import { AUDIT_STREAMS, type AuditStreamName, type AuditVerification, type PublicKeyResolver, type StreamVerification, type WitnessVerification } from './types.ts';
import type { WitnessedCheckpoints } from './witness.ts';
import { NotFound } from '../common/errors.ts';
import type { Db } from '../store/sqlite/db.ts';

/**
 * The audit streams' own database file in a data directory. Kept apart from the rest of the store
 * so that the audit writer's fsync'd transactions never hold the lock other domains write under.
 */
export const AUDIT_DB_FILE = 'audit.db';

/** A resolver, or a function that builds one from the database (e.g. from its keyring table). */
export type ResolverSource = PublicKeyResolver | { fromDb: (db: Db) => PublicKeyResolver };

export function resolverFor(src: ResolverSource, db: Db): PublicKeyResolver {
  return typeof src === 'function' ? src : src.fromDb(db);
}

export function tableExists(db: Db, name: string): boolean {
  return db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(name) !== undefined;
}

export function verifyStream(db: Db, stream: AuditStreamName, keys: ResolverSource, witness?: WitnessedCheckpoints): StreamVerification {
  return verifyOne(db, stream, new CheckpointVerifier(resolverFor(keys, db)), witness);
}

/**
 * Verifies every stream in one snapshot. With `witness` (read it before calling: it must not be
 * newer than the store), each stream must also reach and match every witnessed checkpoint.
 */
export function verifyAll(db: Db, keys: ResolverSource, witness?: WitnessedCheckpoints): AuditVerification {
  const verifier = new CheckpointVerifier(resolverFor(keys, db));
  const streams = AUDIT_STREAMS.map((s) => verifyOne(db, s, verifier, witness));
  return withWitness(streams, witness);
}

/** Opens `<dir>/audit.db` read-only and verifies every stream (against `witness` when given). */
export function verifyDataDir(dir: string, keys: ResolverSource, witness?: WitnessedCheckpoints): AuditVerification {
  const path = join(dir, AUDIT_DB_FILE);
  if (!existsSync(path)) throw new NotFound(`database ${path}`);
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    return verifyAll(db, keys, witness);
  } finally {
    db.close();
  }
}

interface StreamState {
  head: { seq: number; hash: string } | undefined;
  cps: CheckpointRow[];
  /** Checkpoints published to a witness outside the store (signatures already checked). */
  witnessed?: readonly CheckpointRow[];
}

/** Seqs whose recomputed hash the scan must report: stored and witnessed checkpoints. */
export function checkpointSeqs(state: StreamState): Set<number> {
  const seqs = new Set(state.cps.map((c) => c.seq));
  for (const w of state.witnessed ?? []) seqs.add(w.seq);
  return seqs;
}

/** Adds the witness's verdict to per-stream verdicts. */
export function withWitness(streams: StreamVerification[], w: WitnessedCheckpoints | undefined): AuditVerification {
  const ok = streams.every((s) => s.ok);
  if (!w) return { ok, streams };
  const witnessed = [...w.byStream.values()].reduce((n, l) => n + l.length, 0);
  const witness: WitnessVerification = { source: w.source, checkpoints: witnessed, ok: w.problems.length === 0 };
  if (w.problems.length > 0) witness.reason = w.problems.slice(0, 5).join('; ') + (w.problems.length > 5 ? ` (and ${w.problems.length - 5} more)` : '');
  return { ok: ok && witness.ok, streams, witness };
}

export function loadStreamState(db: Db, stream: AuditStreamName): StreamState {
  const head = db.prepare('SELECT seq, hash FROM audit_heads WHERE stream = ?').get(stream) as
    | { seq: number; hash: string }
    | undefined;
  const cps = db
    .prepare('SELECT stream, seq, hash, time, prev_seq, kid, sig FROM audit_checkpoints WHERE stream = ? ORDER BY seq')
    .all(stream) as unknown as CheckpointRow[];
  return { head, cps };
}

/** Runs `fn` in a read transaction, so head, checkpoints and events come from one snapshot. */
export function readSnapshot<T>(db: Db, fn: () => T): T {
  if (db.isTransaction) return fn();
  db.exec('BEGIN');
  try {
    return fn();
  } finally {
    db.exec('COMMIT');
  }
}

function verifyOne(db: Db, stream: AuditStreamName, verifier: CheckpointVerifier, witness?: WitnessedCheckpoints): StreamVerification {
  const witnessed = witness?.byStream.get(stream) ?? (witness ? [] : undefined);
  if (!tableExists(db, 'audit_events')) {
    return judge(stream, { head: undefined, cps: [], ...(witnessed && { witnessed }) }, EMPTY_SCAN, verifier);
  }
  return readSnapshot(db, () => {
    const state: StreamState = { ...loadStreamState(db, stream), ...(witnessed && { witnessed }) };
    const scan = scanRange(db, stream, 1, Number.MAX_SAFE_INTEGER, GENESIS[stream], checkpointSeqs(state));
    return judge(stream, state, scan, verifier);
  });
}

export const EMPTY_SCAN: ScanResult = { count: 0, lastSeq: 0, lastHash: '', firstSeq: 0, firstPrev: null, firstSelfOk: false, bad: null, cpHashes: new Map() };

/** Checks checkpoints and the head row against a scan of the chain, and names the first bad seq. */
export function judge(stream: AuditStreamName, { head, cps, witnessed }: StreamState, scan: ScanResult, verifier: CheckpointVerifier): StreamVerification {
  const issues: ChainBreak[] = [];
  if (scan.bad) issues.push(scan.bad);
  // The chain is trustworthy (unsigned) up to here.
  const chainEnd = scan.bad ? scan.bad.seq - 1 : scan.lastSeq;

  let signedThrough = 0;
  let prevCp = 0;
  for (const cp of cps) {
    if (scan.bad && cp.seq >= scan.bad.seq) break; // cannot be compared past the break
    const untrusted = prevCp + 1;
    const sigProblem = verifier.check(cp);
    if (sigProblem) {
      issues.push({ seq: untrusted, reason: sigProblem });
      break;
    }
    if (cp.prev_seq !== prevCp) {
      issues.push({
        seq: Math.min(cp.prev_seq, prevCp) + 1,
        reason: `checkpoint at seq ${cp.prev_seq} is missing (checkpoint at seq ${cp.seq} refers to it)`,
      });
      break;
    }
    if (cp.seq > chainEnd) {
      issues.push({
        seq: chainEnd + 1,
        reason: `events from seq ${chainEnd + 1} are missing (signed checkpoint at seq ${cp.seq})`,
      });
      break;
    }
    if (scan.cpHashes.get(cp.seq) !== cp.hash) {
      issues.push({
        seq: untrusted,
        reason: `events after seq ${prevCp} were rewritten (checkpoint at seq ${cp.seq} does not match the chain)`,
      });
      break;
    }
    signedThrough = cp.seq;
    prevCp = cp.seq;
  }

  // Witnessed checkpoints (already signature-checked): the stream must reach each one and match
  // it. This is what catches a truncated or re-chained tail whose store checkpoints and head row
  // were removed or rewritten with it, and a stream deleted whole.
  let witnessedThrough = 0;
  let lastGood = 0;
  for (const w of witnessed ?? []) {
    if (w.seq > chainEnd) {
      issues.push({
        seq: chainEnd + 1,
        reason: `events from seq ${chainEnd + 1} are missing (witnessed checkpoint at seq ${w.seq}): the stream was truncated or deleted`,
      });
      break;
    }
    if (scan.cpHashes.get(w.seq) !== w.hash) {
      issues.push({
        seq: lastGood + 1,
        reason: `events after seq ${lastGood} were rewritten (witnessed checkpoint at seq ${w.seq} does not match the chain)`,
      });
      break;
    }
    lastGood = w.seq;
    witnessedThrough = w.seq;
  }

  if (!head) {
    if (scan.count > 0) issues.push({ seq: scan.lastSeq + 1, reason: 'head row is missing' });
  } else if (head.seq > scan.lastSeq) {
    issues.push({
      seq: scan.lastSeq + 1,
      reason: `events from seq ${scan.lastSeq + 1} to ${head.seq} are missing (tail truncated)`,
    });
  } else if (head.seq < scan.lastSeq) {
    issues.push({ seq: head.seq + 1, reason: `events after seq ${head.seq} are not covered by the head row` });
  } else if (head.hash !== scan.lastHash) {
    issues.push({ seq: head.seq, reason: `head row hash does not match event seq ${head.seq}` });
  }

  const out: StreamVerification = {
    stream,
    events: scan.count,
    checkpoints: cps.length,
    ok: issues.length === 0,
    signedThrough,
    lastSeq: scan.lastSeq,
  };
  if (witnessed) out.witnessedThrough = witnessedThrough;
  if (issues.length > 0) {
    const first = issues.reduce((a, b) => (b.seq < a.seq ? b : a));
    out.firstBadSeq = first.seq;
    out.reason = first.reason;
  }
  return out;
}
