// The audit interface the other domains write to. Three streams, kept apart on purpose:
// authentication, authorization, administration.
import type { JsonWebKey } from 'node:crypto';

export type AuditStreamName = 'authn' | 'authz' | 'admin';
export const AUDIT_STREAMS: readonly AuditStreamName[] = ['authn', 'authz', 'admin'];

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
