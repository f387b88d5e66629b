// The one wire format: domain objects (camelCase, epoch milliseconds) become snake_case members
// with RFC 3339 UTC times here, and nowhere else. Routes return only what these mappers make.
import type { Lease } from '../credentials/index.ts';
import type { AuditVerification } from '../audit/types.ts';
import type { KeyInfo } from '../crypto/keyring.ts';
import type { Decision } from '../policy/decision-point.ts';
import type { Assignment } from '../agents/types.ts';
import type { AgentView } from '../broker/index.ts';

/** Epoch milliseconds → RFC 3339 (ISO 8601, UTC). */
export const iso = (ms: number): string => new Date(ms).toISOString();
const isoOrNull = (ms: number | null | undefined): string | null => (ms === null || ms === undefined ? null : iso(ms));

const snake = (k: string): string => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** Members whose values are data named by others (token claims, principal tags): their keys are kept as they are. */
const OPAQUE_MEMBERS = new Set(['claims', 'act']);

/** Snake-cases the keys of plain objects, deeply (not inside OPAQUE_MEMBERS). */
export function snakeKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(snakeKeys);
  if (v === null || typeof v !== 'object') return v;
  return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [snake(k), OPAQUE_MEMBERS.has(k) ? x : snakeKeys(x)]));
}

export interface LeaseDto {
  id: string;
  identity_id: string;
  target: string;
  kind: Lease['kind'];
  permission: string;
  handle: string | null;
  params: Record<string, unknown>;
  fingerprint: string | null;
  status: Lease['status'];
  purpose: string;
  decision_id: string;
  grant_id: string | null;
  session_id: string | null;
  trust: string | null;
  issued_at: string;
  expires_at: string;
  max_expires_at: string;
  renewals: number;
  revoke_attempts: number;
  next_attempt_at: string | null;
  last_error: string | null;
  revoked_at: string | null;
  revoked_by: string | null;
  revoke_reason: string | null;
}

export function leaseDto(l: Lease): LeaseDto {
  return {
    id: l.id,
    identity_id: l.identityId,
    target: l.target,
    kind: l.kind,
    permission: l.permission,
    handle: l.handle,
    params: snakeKeys(l.params) as Record<string, unknown>,
    fingerprint: l.fingerprint,
    status: l.status,
    purpose: l.purpose,
    decision_id: l.decisionId,
    grant_id: l.grantId,
    session_id: l.sessionId,
    trust: l.trust,
    issued_at: iso(l.issuedAt),
    expires_at: iso(l.expiresAt),
    max_expires_at: iso(l.maxExpiresAt),
    renewals: l.renewals,
    revoke_attempts: l.revokeAttempts,
    next_attempt_at: isoOrNull(l.nextAttemptAt),
    last_error: l.lastError,
    revoked_at: isoOrNull(l.revokedAt),
    revoked_by: l.revokedBy,
    revoke_reason: l.revokeReason,
  };
}

/** An issuance or renewal: the lease, and the credential (already in its target's own wire form, shown once). */
export function issuedDto(i: { lease: Lease; credential?: Record<string, unknown> }): { lease: LeaseDto; credential?: Record<string, unknown> } {
  return { lease: leaseDto(i.lease), ...(i.credential !== undefined && { credential: i.credential }) };
}

export interface KeyDto {
  kid: string;
  purpose: KeyInfo['purpose'];
  alg: KeyInfo['alg'];
  status: KeyInfo['status'];
  created_at: string;
  superseded_at: string | null;
  retire_at: string | null;
  public_jwk: Record<string, unknown>;
}

export function keyDto(k: KeyInfo): KeyDto {
  return {
    kid: k.kid,
    purpose: k.purpose,
    alg: k.alg,
    status: k.status,
    created_at: iso(k.createdAt),
    superseded_at: isoOrNull(k.supersededAt),
    retire_at: isoOrNull(k.retireAt),
    public_jwk: k.publicJwk as Record<string, unknown>,
  };
}

export function keyRotationDto(r: { active: KeyInfo; previous?: KeyInfo }): { active: KeyDto; previous: KeyDto | null } {
  return { active: keyDto(r.active), previous: r.previous ? keyDto(r.previous) : null };
}

export type AuditVerificationDto = ReturnType<typeof auditVerificationDto>;

/** Verification of the audit streams (online, or offline by the CLI): every member snake_case. */
export function auditVerificationDto(v: AuditVerification) {
  return {
    ok: v.ok,
    streams: v.streams.map((s) => ({
      stream: s.stream,
      events: s.events,
      checkpoints: s.checkpoints,
      ok: s.ok,
      ...(s.firstBadSeq !== undefined && { first_bad_seq: s.firstBadSeq }),
      ...(s.reason !== undefined && { reason: s.reason }),
      signed_through: s.signedThrough,
      last_seq: s.lastSeq,
      ...(s.witnessedThrough !== undefined && { witnessed_through: s.witnessedThrough }),
    })),
    ...(v.witness && { witness: { source: v.witness.source, checkpoints: v.witness.checkpoints, ok: v.witness.ok, ...(v.witness.reason !== undefined && { reason: v.witness.reason }) } }),
  };
}

/** Configured credential targets and the SSH user CA line. */
export function targetsDto(t: { targets: { name: string; kind: string; resourceType: string }[]; sshUserCa: string; sshHostCa: string }) {
  return { targets: t.targets.map((x) => ({ name: x.name, kind: x.kind, resource_type: x.resourceType })), ssh_user_ca: t.sshUserCa, ssh_host_ca: t.sshHostCa };
}

/** A decision: only its own members reach the wire. */
export function decisionDto(d: Decision) {
  return {
    decision: d.decision,
    reasons: d.reasons,
    errors: d.errors.map((e) => ({ policy_id: e.policy_id, message: e.message })),
    decision_id: d.decision_id,
    policy_version: d.policy_version,
    ...(d.bridge && { bridge: { from: d.bridge.from, to: d.bridge.to, reason: d.bridge.reason } }),
  };
}

/** An agent assignment on the wire (docs/agents.md). */
export function assignmentDto(a: Assignment) {
  return {
    id: a.id,
    agent: a.agentId,
    delegator: a.delegatorId,
    sponsor: a.sponsorId,
    intent: a.intent,
    tools: a.tools,
    audiences: a.audiences,
    status: a.status,
    depth: a.depth ?? 1,
    ...(a.parentId !== undefined && { parent: a.parentId }),
    created_at: iso(a.createdAt),
    expires_at: iso(a.expiresAt),
    ...(a.endedAt !== undefined && { ended_at: iso(a.endedAt) }),
    ...(a.endedReason !== undefined && { ended_reason: a.endedReason }),
  };
}

/** An agent: its identity and its profile (`sponsor` null: none set yet — a finding). */
export function agentDto(v: AgentView) {
  const p = v.profile;
  return {
    identity: v.identity,
    sponsor: p?.sponsor ?? null,
    model: p?.model ?? null,
    provider: p?.provider ?? null,
    tools: p?.tools ?? [],
    ...(p && { profile_updated_at: iso(p.updatedAt) }),
  };
}
