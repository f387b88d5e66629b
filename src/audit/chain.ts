// The hash chain. hash = sha256(canonical JSON of the record without `hash`), where the record
// includes prev_hash, so each event commits to everything before it in its stream.
// recordCanonical builds that canonical form by concatenation (it is the hot path of both
// append and verify); tests check it equals canonicalJson() of the same record.
import { hash as digest } from 'node:crypto';
import type { AuditRecord, AuditStreamName } from './types.ts';

/** Fixed per-stream genesis: sha256("portcullis/audit/v1/genesis/<stream>"). */
export function genesisHash(stream: string): string {
  return digest('sha256', `portcullis/audit/v1/genesis/${stream}`, 'hex');
}

export const GENESIS: Readonly<Record<AuditStreamName, string>> = {
  authn: genesisHash('authn'),
  authz: genesisHash('authz'),
  admin: genesisHash('admin'),
  session: genesisHash('session'),
};

/** The fields hashed, as stored: optional fields are null when absent, payload is canonical JSON. */
export interface ChainFields {
  stream: string;
  seq: number;
  time: string;
  type: string;
  actor: string;
  boundary: string | null;
  subject: string | null;
  decision: string | null;
  payload: string;
  prev_hash: string;
}

/** A reusable record to fill field by field in hot loops (hashing, verifying) without allocating. */
export function scratchFields(stream = ''): ChainFields {
  return { stream, seq: 0, time: '', type: '', actor: '', boundary: null, subject: null, decision: null, payload: '', prev_hash: '' };
}

const q = JSON.stringify;

/** Canonical JSON of the record without `hash` (keys in sorted order; absent optionals omitted). */
export function recordCanonical(f: ChainFields): string {
  let s = '{"actor":' + q(f.actor);
  if (f.boundary !== null) s += ',"boundary":' + q(f.boundary);
  if (f.decision !== null) s += ',"decision":' + q(f.decision);
  s += ',"payload":' + f.payload + ',"prev_hash":' + q(f.prev_hash) + ',"seq":' + f.seq + ',"stream":' + q(f.stream);
  if (f.subject !== null) s += ',"subject":' + q(f.subject);
  return s + ',"time":' + q(f.time) + ',"type":' + q(f.type) + '}';
}

export function hashFields(f: ChainFields): string {
  return digest('sha256', recordCanonical(f), 'hex');
}

/** A stored row as the public record. */
export function toRecord(f: ChainFields & { hash: string }): AuditRecord {
  const r: AuditRecord = {
    stream: f.stream as AuditStreamName,
    seq: f.seq,
    time: f.time,
    type: f.type,
    actor: f.actor,
    payload: JSON.parse(f.payload) as Record<string, unknown>,
    prev_hash: f.prev_hash,
    hash: f.hash,
  };
  if (f.boundary !== null) r.boundary = f.boundary;
  if (f.subject !== null) r.subject = f.subject;
  if (f.decision !== null) r.decision = f.decision as 'allow' | 'deny';
  return r;
}
