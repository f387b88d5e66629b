// Verification, online (the live store) or offline (the data directory opened read-only, server
// down). Each stream's chain is recomputed from seq 1 (by the store, with ChainScan); here every
// checkpoint's signature is checked and matched with the chain, and the head row compared, so a
// truncated tail is caught. The result names the first sequence number that cannot be trusted.
import { CheckpointVerifier, type CheckpointRow } from './checkpoint.ts';
import type { AuditReader, ScanOptions, StreamHead, StreamScan } from './ports.ts';
import type { ChainBreak, ScanResult } from './scan.ts';
import type { AuditStreamName, AuditVerification, PublicKeyResolver, StreamVerification, WitnessVerification } from './types.ts';
import type { WitnessedCheckpoints } from './witness.ts';

export interface VerifyOptions extends Omit<ScanOptions, 'streams' | 'extraSeqs'> {
  /**
   * Witnessed checkpoints (read them before calling: they must not be newer than the store): each
   * stream must also reach and match every one.
   */
  witness?: WitnessedCheckpoints;
}

/** Verifies every stream (each from one snapshot unless `parallel`). */
export async function verifyAll(reader: AuditReader, keys: PublicKeyResolver, opts: VerifyOptions = {}): Promise<AuditVerification> {
  const verifier = new CheckpointVerifier(keys);
  const scans = await reader.scanStreams({ ...opts, ...(opts.witness && { extraSeqs: witnessedSeqs(opts.witness) }) });
  return withWitness(
    scans.map((s) => judgeScan(s, verifier, opts.witness)),
    opts.witness,
  );
}

export async function verifyStream(reader: AuditReader, stream: AuditStreamName, keys: PublicKeyResolver, witness?: WitnessedCheckpoints): Promise<StreamVerification> {
  const [s] = await reader.scanStreams({ streams: [stream], ...(witness && { extraSeqs: witnessedSeqs(witness) }) });
  return judgeScan(s, new CheckpointVerifier(keys), witness);
}

function witnessedSeqs(w: WitnessedCheckpoints): Map<AuditStreamName, number[]> {
  const out = new Map<AuditStreamName, number[]>();
  for (const [stream, cps] of w.byStream) out.set(stream, cps.map((c) => c.seq));
  return out;
}

function judgeScan(s: StreamScan, verifier: CheckpointVerifier, witness: WitnessedCheckpoints | undefined): StreamVerification {
  const witnessed = witness?.byStream.get(s.stream) ?? (witness ? [] : undefined);
  return judge(s.stream, { head: s.head, cps: s.checkpoints, ...(witnessed && { witnessed }) }, s.scan, verifier);
}

interface StreamState {
  head: StreamHead | undefined;
  cps: CheckpointRow[];
  /** Checkpoints published to a witness outside the store (signatures already checked). */
  witnessed?: readonly CheckpointRow[];
}

/** Adds the witness's verdict to per-stream verdicts. */
function withWitness(streams: StreamVerification[], w: WitnessedCheckpoints | undefined): AuditVerification {
  const ok = streams.every((s) => s.ok);
  if (!w) return { ok, streams };
  const witnessed = [...w.byStream.values()].reduce((n, l) => n + l.length, 0);
  const witness: WitnessVerification = { source: w.source, checkpoints: witnessed, ok: w.problems.length === 0 };
  if (w.problems.length > 0) witness.reason = w.problems.slice(0, 5).join('; ') + (w.problems.length > 5 ? ` (and ${w.problems.length - 5} more)` : '');
  return { ok: ok && witness.ok, streams, witness };
}

/** Checks checkpoints and the head row against a scan of the chain, and names the first bad seq. */
function judge(stream: AuditStreamName, { head, cps, witnessed }: StreamState, scan: ScanResult, verifier: CheckpointVerifier): StreamVerification {
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
