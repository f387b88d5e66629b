// The audit interface the other domains write to. Four streams, kept apart on purpose:
// authentication, authorization, administration, and the gateways' session recordings.
import type { JsonWebKey } from 'node:crypto';

/** `session`: what was done in gateway sessions (docs/gateways.md), one record per statement, channel, chunk… */
export type AuditStreamName = 'authn' | 'authz' | 'admin' | 'session';
export const AUDIT_STREAMS: readonly AuditStreamName[] = ['authn', 'authz', 'admin', 'session'];

export interface AuditEventInput {
  stream: AuditStreamName;
  /** e.g. `authn.success`, `authn.failure`, `authz.decision`, `policy.activated`. */
  type: string;
  /** Identity id of who acted (or `anonymous`, `system`). */
  actor: string;
  /** The trust boundary the event belongs to, when known. */
  boundary?: string;
  /** Identity the event is about, when different from the actor. */
  subject?: string;
  /** For authz events: `allow` | `deny`. */
  decision?: 'allow' | 'deny';
  /** Non-secret details. Secrets appear only as fingerprints. */
  payload: Record<string, unknown>;
}

export interface AuditRecord extends AuditEventInput {
  seq: number;
  /** ISO-8601 time the event was recorded. */
  time: string;
  prev_hash: string;
  hash: string;
}

export interface AuditSink {
  /** Appends and makes durable before resolving; rejects if the event cannot be recorded. */
  append(event: AuditEventInput): Promise<AuditRecord>;
}

/** Signs checkpoints (Ed25519). Implemented by crypto/keyring. */
export interface CheckpointSigner {
  readonly kid: string;
  sign(data: Uint8Array): Uint8Array;
}

/** Resolves a key id to an Ed25519 public key (JWK) to verify checkpoints, online or offline. */
export type PublicKeyResolver = (kid: string) => JsonWebKey | undefined;

/** Filters for reading events back. All given filters must match. */
export interface AuditQuery {
  stream?: AuditStreamName;
  /** Inclusive lower bound on `time` (ISO-8601 or ms since the epoch). */
  since?: string | number;
  /** Exclusive upper bound on `time`. */
  until?: string | number;
  /** Matches the actor or the subject. */
  identity?: string;
  actor?: string;
  subject?: string;
  boundary?: string;
  decision?: 'allow' | 'deny';
  type?: string;
  /** Only events with seq > afterSeq; requires `stream`. */
  afterSeq?: number;
  /** Default 100, at most 1,000 (AUDIT_QUERY_MAX_LIMIT). */
  limit?: number;
  /** `asc` (default): oldest first; `desc`: newest first. */
  order?: 'asc' | 'desc';
}

export interface StreamVerification {
  stream: AuditStreamName;
  /** Event rows found. */
  events: number;
  /** Checkpoint rows found. */
  checkpoints: number;
  ok: boolean;
  /** The first sequence number that cannot be trusted (for a truncated tail: the first missing). */
  firstBadSeq?: number;
  reason?: string;
  /** Last seq covered by a valid signed checkpoint (0 when none). */
  signedThrough: number;
  /** Last seq of the chain as stored. */
  lastSeq: number;
  /** With a witness: the last witnessed checkpoint the stream reaches and matches (0 when none). */
  witnessedThrough?: number;
}

/** The witness's own verdict: every line must be a checkpoint with a valid signature. */
export interface WitnessVerification {
  /** The witness file (or other source) read. */
  source: string;
  /** Witnessed checkpoints with a valid signature. */
  checkpoints: number;
  ok: boolean;
  reason?: string;
}

export interface AuditVerification {
  ok: boolean;
  streams: StreamVerification[];
  /** Present when verified against a witness. */
  witness?: WitnessVerification;
}
