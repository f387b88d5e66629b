// Links a batch of prepared events onto their streams' chains: assigns seqs, keeps each stream's
// times in order, hashes, and decides which checkpoints are due. Pure logic over the heads the
// store read; the store runs it inside the transaction that writes the result (src/store/).
import { GENESIS, hashFields, scratchFields, type ChainFields } from './chain.ts';
import type { CheckpointRow } from './checkpoint.ts';
import type { PreparedEvent } from './prepare.ts';
import { AUDIT_STREAMS, type AuditStreamName } from './types.ts';

/** Events flattened, FIELDS values per event: cheap to hand to another thread. */
export type FlatEvents = (string | null)[];
export const FIELDS = 8; // stream, time, type, actor, boundary, subject, decision, payload

/** Flattens prepared events (in order) for linkEvents. */
export function flattenEvents(events: readonly PreparedEvent[]): FlatEvents {
  const out: FlatEvents = new Array(events.length * FIELDS);
  for (let i = 0, o = 0; i < events.length; i++, o += FIELDS) {
    const ev = events[i];
    out[o] = ev.stream;
    out[o + 1] = ev.time;
    out[o + 2] = ev.type;
    out[o + 3] = ev.actor;
    out[o + 4] = ev.boundary;
    out[o + 5] = ev.subject;
    out[o + 6] = ev.decision;
    out[o + 7] = ev.payload;
  }
  return out;
}

export interface LinkRequest {
  events: FlatEvents;
  /** Signed checkpoints to store in the same transaction. */
  checkpoints: readonly CheckpointRow[];
  now: number;
  /** `due`: also checkpoint streams whose interval has passed; `force`: every stream with unsigned events. */
  checkpoint: 'none' | 'due' | 'force';
  /**
   * False: the caller cannot sign now (another replica signs the checkpoints), so none is marked
   * due — the signer's next batch finds the checkpoint still owed. Default true.
   */
  sign?: boolean;
}

export interface DueCheckpoint {
  stream: AuditStreamName;
  seq: number;
  hash: string;
  /** Seq of the stream's last checkpoint in the store when this was decided (0: none). */
  prevStored: number;
}

export interface LinkResult {
  /** Per event, in order. */
  seqs: number[];
  prevs: string[];
  hashes: string[];
  /** Events whose time was raised to their stream's last time, as [index, time] pairs (usually none). */
  clamped: [number, string][];
  /** Checkpoints to sign now (the caller signs them and passes them to a later write). */
  due: DueCheckpoint[];
}

export interface CheckpointPolicy {
  enabled: boolean;
  every: number;
  intervalMs: number;
}

/** A stream's head as stored, written in the same transaction as its events. */
export interface StoredHead {
  seq: number;
  hash: string;
  /** Time of the last event: a stream's times never go back (time ranges are seq ranges). */
  time: string;
  /** Last seq a checkpoint was requested for, and when. */
  cpSeq: number;
  cpTime: number;
}

/** What linkEvents reads and writes, all inside one transaction of the store. */
export interface LinkIo {
  /** The stream's stored head (undefined: the stream is empty). */
  head(stream: AuditStreamName): StoredHead | undefined;
  /** Seq of the stream's last stored checkpoint (0: none); asked only when one is due. */
  lastCheckpoint(stream: AuditStreamName): number;
  /** Stores one linked event. */
  insert(fields: ChainFields, hash: string): void;
}

interface Head extends StoredHead {
  dirty: boolean;
}

/**
 * Links requests that queued up behind each other (one transaction, one fsync): results are per
 * request; due checkpoints go with the last. Returns the heads to store (those that changed).
 */
export function linkEvents(reqs: readonly LinkRequest[], policy: CheckpointPolicy, io: LinkIo): { results: LinkResult[]; heads: Map<AuditStreamName, StoredHead> } {
  const now = reqs[reqs.length - 1].now;
  let checkpoint: LinkRequest['checkpoint'] = 'none';
  for (const r of reqs) if (r.checkpoint === 'force' || (r.checkpoint === 'due' && checkpoint === 'none')) checkpoint = r.checkpoint;
  const results: LinkResult[] = reqs.map((r) => {
    const n = r.events.length / FIELDS;
    return { seqs: new Array(n), prevs: new Array(n), hashes: new Array(n), clamped: [], due: [] };
  });
  const res = results[results.length - 1]; // takes the due checkpoints
  const heads = new Map<AuditStreamName, Head>();
  const headOf = (s: AuditStreamName): Head => {
    let h = heads.get(s);
    if (!h) {
      const stored = io.head(s);
      h = stored ? { ...stored, dirty: false } : { seq: 0, hash: GENESIS[s], time: '', cpSeq: 0, cpTime: now, dirty: false };
      heads.set(s, h);
    }
    return h;
  };
  const { every, intervalMs } = policy;
  const enabled = policy.enabled && reqs[reqs.length - 1]!.sign !== false;
  const due = (s: AuditStreamName, h: Head): void => {
    res.due.push({ stream: s, seq: h.seq, hash: h.hash, prevStored: io.lastCheckpoint(s) });
    h.cpSeq = h.seq;
    h.cpTime = now;
    h.dirty = true;
  };
  const f = scratchFields();
  for (let k = 0; k < reqs.length; k++) {
    const events = reqs[k].events;
    const out = results[k];
    const n = events.length / FIELDS;
    for (let i = 0, o = 0; i < n; i++, o += FIELDS) {
      const stream = events[o] as AuditStreamName;
      const h = headOf(stream);
      f.stream = stream;
      f.seq = h.seq + 1;
      f.time = events[o + 1]!;
      // The clock went back (or another process's clock is ahead): keep the stream in time
      // order, before hashing, so the stored time is the hashed time. ISO-8601 UTC strings of
      // one format compare as their instants.
      if (f.time < h.time) {
        f.time = h.time;
        out.clamped.push([i, f.time]);
      }
      f.type = events[o + 2]!;
      f.actor = events[o + 3]!;
      f.boundary = events[o + 4];
      f.subject = events[o + 5];
      f.decision = events[o + 6];
      f.payload = events[o + 7]!;
      f.prev_hash = h.hash;
      const hash = hashFields(f);
      io.insert(f, hash);
      out.seqs[i] = f.seq;
      out.prevs[i] = f.prev_hash;
      out.hashes[i] = hash;
      h.seq = f.seq;
      h.hash = hash;
      h.time = f.time;
      h.dirty = true;
      if (enabled && h.seq - h.cpSeq >= every) due(stream, h);
    }
  }
  if (enabled && checkpoint !== 'none') for (const s of AUDIT_STREAMS) headOf(s);
  if (enabled) {
    for (const [s, h] of heads) {
      if (h.seq > h.cpSeq && (checkpoint === 'force' || now - h.cpTime >= intervalMs)) due(s, h);
    }
  }
  const changed = new Map<AuditStreamName, StoredHead>();
  for (const [s, h] of heads) if (h.dirty) changed.set(s, { seq: h.seq, hash: h.hash, time: h.time, cpSeq: h.cpSeq, cpTime: h.cpTime });
  return { results, heads: changed };
}
