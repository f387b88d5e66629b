// Walks one stream's rows in seq order, recomputing every hash. Kept free of checkpoint and head
// logic so a range can be scanned on its own (and in parallel) and the results stitched. The
// store feeds it rows page by page (src/store/), wherever it reads them.
import { GENESIS, recordCanonical, scratchFields, type ChainFields } from './chain.ts';
import { hash as digest } from 'node:crypto';
import type { AuditStreamName } from './types.ts';

export interface ChainBreak {
  seq: number;
  reason: string;
}

export interface ScanResult {
  /** Rows read. */
  count: number;
  /** Seq and stored hash of the last row read (0 / '' when none). */
  lastSeq: number;
  lastHash: string;
  /** Seq of the first row read (0 when none). */
  firstSeq: number;
  /** prev_hash of the first row, and whether that row's own hash is consistent. */
  firstPrev: string | null;
  firstSelfOk: boolean;
  bad: ChainBreak | null;
  /** Recomputed hash at each requested checkpoint seq (only before any break). */
  cpHashes: Map<number, string>;
}

/**
 * One stored event as the scanner reads it, in this column order:
 * seq, time, type, actor, boundary, subject, decision, payload, prev_hash, hash.
 */
export type ScanRow = unknown[];

export function emptyScan(): ScanResult {
  return { count: 0, lastSeq: 0, lastHash: '', firstSeq: 0, firstPrev: null, firstSelfOk: false, bad: null, cpHashes: new Map() };
}

/**
 * Scans seq in [from, …]: feed it the rows in seq order (`rows`, any page size), then read
 * `result`. `expectPrev` is the hash the first row must link to (undefined when scanning a middle
 * range whose predecessor another scan owns).
 */
export class ChainScan {
  readonly result: ScanResult = emptyScan();
  readonly #cpSeqs: ReadonlySet<number>;
  readonly #fields: ChainFields;
  #expectSeq: number;
  #prev: string | undefined;

  constructor(stream: string, from: number, expectPrev: string | undefined, cpSeqs: ReadonlySet<number>) {
    this.#cpSeqs = cpSeqs;
    this.#fields = scratchFields(stream);
    this.#expectSeq = from;
    this.#prev = expectPrev;
  }

  rows(rows: readonly ScanRow[]): void {
    for (const row of rows) this.#row(row);
  }

  #row(row: ScanRow): void {
    const res = this.result;
    res.count++;
    const seq = row[0] as number;
    if (res.count === 1) res.firstSeq = seq;
    const stored = row[9] as string;
    res.lastSeq = seq;
    res.lastHash = stored;
    if (res.bad) return; // past the first break nothing is trustworthy; just count
    if (seq !== this.#expectSeq) {
      res.bad = { seq: this.#expectSeq, reason: `event seq ${this.#expectSeq} is missing (next stored is ${seq})` };
      return;
    }
    const fields = this.#fields;
    fields.seq = seq;
    fields.time = row[1] as string;
    fields.type = row[2] as string;
    fields.actor = row[3] as string;
    fields.boundary = row[4] as string | null;
    fields.subject = row[5] as string | null;
    fields.decision = row[6] as string | null;
    fields.payload = row[7] as string;
    fields.prev_hash = row[8] as string;
    const computed = digest('sha256', recordCanonical(fields), 'hex');
    const selfOk = computed === stored;
    if (res.count === 1) {
      res.firstPrev = fields.prev_hash;
      res.firstSelfOk = selfOk;
    }
    if (this.#prev !== undefined && fields.prev_hash !== this.#prev) {
      // If this row is self-consistent its prev_hash is what was committed, so the row before
      // was rewritten (content and hash together); otherwise this row was edited.
      res.bad =
        selfOk && seq > 1
          ? { seq: seq - 1, reason: `event seq ${seq - 1} was rewritten (seq ${seq} does not link to it)` }
          : { seq, reason: `event seq ${seq} does not link to the previous event` };
      return;
    }
    if (!selfOk) {
      res.bad = { seq, reason: `event seq ${seq} does not match its hash (edited)` };
      return;
    }
    if (this.#cpSeqs.has(seq)) res.cpHashes.set(seq, computed);
    this.#prev = stored;
    this.#expectSeq++;
  }
}

/** Joins chunk scans (chunk i covers seq i*size+1 … min((i+1)*size, to)) into one scan of the stream. */
export function stitch(stream: AuditStreamName, parts: readonly ScanResult[], size: number, to: number): ScanResult {
  const out = emptyScan();
  let prevHash = GENESIS[stream]; // chunk 0 was scanned without a predecessor: its link to genesis is checked here
  let prevEnd = 0; // the previous chunk must have ended exactly here…
  let prevLast = 0; // …where it did end
  parts.forEach((p, i) => {
    const from = i * size + 1;
    const end = Math.min((i + 1) * size, to);
    out.count += p.count;
    if (p.count > 0) {
      out.lastSeq = p.lastSeq;
      out.lastHash = p.lastHash;
    }
    if (out.bad || from > to) return;
    if (i > 0 && prevLast !== prevEnd) {
      // Rows missing at the end of the previous chunk: the first missing one is the break.
      const missing = prevLast + 1;
      out.bad = { seq: missing, reason: p.count > 0 ? `event seq ${missing} is missing (next stored is ${p.firstSeq})` : `event seq ${missing} is missing` };
      return;
    }
    if (p.count === 0) {
      const next = parts.slice(i + 1).find((q) => q.count > 0);
      out.bad = { seq: from, reason: next ? `event seq ${from} is missing (next stored is ${next.firstSeq})` : `event seq ${from} is missing` };
      return;
    }
    if (p.firstPrev !== null && p.firstPrev !== prevHash) {
      // Same blame rule as ChainScan: a self-consistent row means the one before was rewritten.
      out.bad =
        p.firstSelfOk && from > 1
          ? { seq: from - 1, reason: `event seq ${from - 1} was rewritten (seq ${from} does not link to it)` }
          : { seq: from, reason: `event seq ${from} does not link to the previous event` };
      return;
    }
    for (const [k, v] of p.cpHashes) out.cpHashes.set(k, v);
    if (p.bad) {
      out.bad = p.bad;
      return;
    }
    prevHash = p.lastHash;
    prevEnd = end;
    prevLast = p.lastSeq;
  });
  return out;
}
