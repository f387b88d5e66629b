// The API's wire schemas in zod: request bodies, queries and params (validated at the edge) and
// the responses the DTOs produce; /openapi.json is generated from them (src/server/openapi.ts).
import { z } from 'zod';
import { IDENTITY_KINDS } from '../identity/types.ts';
import type { IdentityKind } from '../identity/types.ts';
import { AUDIT_STREAMS } from '../audit/types.ts';
import type { AuditStreamName } from '../audit/types.ts';

export const identityKind = z.enum(IDENTITY_KINDS as [IdentityKind, ...IdentityKind[]]);
export const auditStream = z.enum(AUDIT_STREAMS as [AuditStreamName, ...AuditStreamName[]]);

// ── Building blocks ───────────────────────────────────────────────────────────────────────────
export const text = (max: number) => z.string().min(1).max(max);
export const duration = z.string().regex(/^(\d+(ms|s|m|h|d))+$/, 'must be a duration such as 15m, 1h or 1h30m');
export const bool = z.enum(['true', 'false']);
export const name = z.string().regex(/^[a-z0-9][a-z0-9-]{0,63}$/, 'must be a lowercase name');
export const time = z.iso.datetime({ offset: true }).describe('RFC 3339 time (UTC)');
const json = z.record(z.string(), z.unknown());
export const idParam = (max = 128, min = 1) => z.object({ id: z.string().min(min).max(max) });
/** An optional body whose members are all optional (a POST with no body at all is accepted). */
export const optionalBody = <T extends z.ZodRawShape>(shape: T) => z.strictObject(shape).optional();
export const entityRef = z.union([z.string().min(1).max(600), z.strictObject({ type: text(64), id: text(512) })]);

// ── Errors ────────────────────────────────────────────────────────────────────────────────────
export const Problem = z
  .looseObject({
    type: z.string(),
    title: z.string(),
    status: z.int(),
    code: z.string().describe('stable error code, e.g. invalid_input, unauthenticated, forbidden, not_found'),
    detail: z.string(),
    field: z.string().optional().describe('the offending input, e.g. body.ttl'),
  })
  .meta({ id: 'Problem', description: 'RFC 9457 problem document' });

const ERROR_TEXT: Record<number, string> = {
  400: 'Invalid input (the field is named in `field`)',
  401: 'No valid session',
  403: 'Refused by policy',
  404: 'No such object (or not visible to the caller)',
  409: 'Conflicts with the object’s current state',
  413: 'Body too large',
  415: 'Unsupported media type',
  429: 'Rate limited (see Retry-After)',
  503: 'The store cannot be written or read right now (see Retry-After)',
};

/** Problem responses for these statuses (503 is always possible: a full or failing store). */
export function errors(...codes: number[]): Record<number, { description: string; content: Record<string, { schema: z.ZodType }> }> {
  const all = [...new Set([...codes, 503])].sort();
  return Object.fromEntries(all.map((c) => [c, { description: ERROR_TEXT[c] ?? 'Error', content: { 'application/problem+json': { schema: Problem } } }]));
}
/** The usual errors of a call behind a session: input, session, policy. */
export const SESSION_ERRORS = [400, 401, 403] as const;

// ── Shared responses ──────────────────────────────────────────────────────────────────────────
const Uid = z.object({ type: z.string(), id: z.string() });

export const Identity = z.object({
  id: z.string(),
  kind: identityKind,
  boundary: z.string(),
  environment: z.string(),
  owner: z.string().nullable(),
  purpose: z.string().nullable(),
  labels: z.record(z.string(), z.string()),
  parents: z.array(Uid),
  status: z.enum(['active', 'suspended', 'offboarded']),
  source: z.string(),
  trust: z.string().nullable(),
  bound_trusts: z.array(z.string()).nullable(),
  created_at: time,
  updated_at: time,
  last_authenticated_at: time.nullable(),
}).meta({ id: 'Identity' });

export const LoginResult = z.object({ session_token: z.string(), token_type: z.literal('Bearer'), expires_at: time, identity: Identity }).meta({ id: 'LoginResult' });

export const Lease = z.object({
  id: z.string(),
  identity_id: z.string(),
  target: z.string(),
  kind: z.enum(['postgres', 'ssh', 'api', 'spiffe-x509']),
  permission: z.string(),
  handle: z.string().nullable(),
  params: json,
  fingerprint: z.string().nullable(),
  status: z.enum(['issuing', 'active', 'revoking', 'revoked', 'expired', 'revoke_failed', 'failed']),
  purpose: z.string(),
  decision_id: z.string(),
  grant_id: z.string().nullable(),
  session_id: z.string().nullable(),
  trust: z.string().nullable(),
  issued_at: time,
  expires_at: time,
  max_expires_at: time,
  renewals: z.int(),
  revoke_attempts: z.int(),
  next_attempt_at: time.nullable(),
  last_error: z.string().nullable(),
  revoked_at: time.nullable(),
  revoked_by: z.string().nullable(),
  revoke_reason: z.string().nullable(),
}).meta({ id: 'Lease' });
export const Issued = z.object({ lease: Lease, credential: json.describe('the credential in its target’s form (secrets: shown once)') }).meta({ id: 'Issued' });

export const Decision = z.object({
  decision: z.enum(['allow', 'deny']),
  reasons: z.array(z.string()),
  errors: z.array(z.object({ policy_id: z.string(), message: z.string() })),
  decision_id: z.string(),
  policy_version: z.int(),
  bridge: z.object({ from: z.string(), to: z.string(), reason: z.string() }).optional(),
}).meta({ id: 'Decision' });

export const Key = z.object({
  kid: z.string(),
  purpose: z.enum(['session', 'audit', 'token']),
  alg: z.string(),
  status: z.enum(['active', 'retiring', 'retired']),
  created_at: time,
  superseded_at: time.nullable(),
  retire_at: time.nullable(),
  public_jwk: json,
}).meta({ id: 'Key' });
export const Jwks = z.looseObject({ keys: z.array(json) }).meta({ id: 'Jwks' });

export const ApiKey = z.looseObject({
  id: z.string(),
  identity_id: z.string(),
  description: z.string(),
  status: z.string(),
  created_at: time,
  expires_at: time,
  rotate_by: time,
  rotation_due: z.boolean(),
  revoked_at: time.optional(),
  rotated_from: z.string().optional(),
  replaced_by: z.string().optional(),
  last_used_at: time.optional(),
}).meta({ id: 'ApiKey' });
export const MintedApiKey = ApiKey.extend({ api_key: z.string().describe('the secret, shown once'), warning: z.string().optional() }).meta({ id: 'MintedApiKey' });

export const AuditRecord = z.object({
  seq: z.int(),
  time: time,
  stream: auditStream,
  type: z.string(),
  actor: z.string(),
  boundary: z.string().optional(),
  subject: z.string().optional(),
  decision: z.enum(['allow', 'deny']).optional(),
  payload: json,
  prev_hash: z.string(),
  hash: z.string(),
}).meta({ id: 'AuditRecord' });
export const AuditVerification = z.object({
  ok: z.boolean(),
  streams: z.array(
    z.object({
      stream: auditStream,
      events: z.int(),
      checkpoints: z.int(),
      ok: z.boolean(),
      first_bad_seq: z.int().optional(),
      reason: z.string().optional(),
      signed_through: z.int(),
      last_seq: z.int(),
      witnessed_through: z.int().optional(),
    }),
  ),
  witness: z.object({ source: z.string(), checkpoints: z.int(), ok: z.boolean(), reason: z.string().optional() }).optional(),
}).meta({ id: 'AuditVerification' });

const AccessTarget = json;
export const AccessRequestView = z.looseObject({
  id: z.string(),
  requester: z.string(),
  target: AccessTarget,
  what: z.string(),
  reason: z.string(),
  ticket: z.string().nullable(),
  duration_ms: z.int(),
  start_at: time.nullable(),
  session_bound: z.boolean(),
  status: z.enum(['pending', 'approved', 'denied', 'cancelled', 'expired']),
  required_approvals: z.int(),
  rules: z.array(z.string()),
  reviewers: z.array(z.string()),
  created_at: time,
  expires_at: time,
  decided_at: time.nullable(),
  grant_id: z.string().nullable(),
  reviews: z.array(z.object({ reviewer: z.string(), verdict: z.enum(['approve', 'deny']), decision_id: z.string(), at: time, comment: z.string().nullable() })),
  comments: z.array(z.object({ author: z.string(), at: time, text: z.string() })),
  status_line: z.string(),
}).meta({ id: 'AccessRequest' });
export const Grant = z.looseObject({
  id: z.string(),
  kind: z.enum(['request', 'break-glass']),
  identity_id: z.string(),
  request_id: z.string().nullable(),
  target: AccessTarget,
  what: z.string(),
  grants: z.array(z.string()),
  roles: z.array(Uid),
  start_at: time,
  end_at: time,
  status: z.enum(['active', 'ended']),
  ended_at: time.nullable(),
  ended_by: z.string().nullable(),
  end_reason: z.string().nullable(),
  session_bound: z.boolean(),
  reason: z.string(),
  revokers: z.array(z.string()).describe('break-glass: who was notified and may end it'),
}).meta({ id: 'Grant' });
export const BreakGlassReview = z.object({
  id: z.string(),
  grant_id: z.string(),
  user: z.string(),
  status: z.enum(['open', 'closed']),
  opened_at: time,
  reviewer: z.string().nullable(),
  reviewed_at: time.nullable(),
  summary: z.string().nullable(),
}).meta({ id: 'BreakGlassReview' });
export const Delivery = z.object({
  id: z.string(),
  endpoint: z.string(),
  event_type: z.string(),
  status: z.enum(['pending', 'delivered', 'failed']),
  attempts: z.int(),
  next_attempt_at: time,
  last_status: z.int().nullable(),
  last_error: z.string().nullable(),
  created_at: time,
  delivered_at: time.nullable(),
}).meta({ id: 'Delivery' });

const PolicyFile = z.looseObject({ name: z.string(), text: z.string(), origin: z.enum(['config', 'api']) });
export const PolicyVersion = z.looseObject({ version: z.int(), created_at: time, actor: z.string(), reason: z.string(), digest: z.string(), files: z.array(PolicyFile) }).meta({ id: 'PolicyVersion' });

export const Finding = z.object({
  code: z.string(), severity: z.string(), subject: z.string(), message: z.string(),
  owasp: z.string().describe('OWASP Non-Human Identities Top 10 (2025) category'),
  nist: z.array(z.string()).describe('NIST CSF 2.0 subcategories'),
  remediation: z.string(),
}).meta({ id: 'Finding' });

const counts = z.record(z.string(), z.int());
export const FindingsTrend = z.object({
  from: time,
  to: time,
  days: z.array(z.object({
    day: z.string().describe('UTC day, YYYY-MM-DD'),
    recorded_at: time,
    total: z.int(),
    by_severity: z.object({ high: z.int(), medium: z.int(), low: z.int() }),
    by_owasp: counts.describe('by OWASP NHI Top 10 (2025) category, e.g. NHI7'),
    by_code: counts,
  })).describe('one entry per UTC day that has a snapshot (the governance job records one a day), oldest first'),
}).meta({ id: 'FindingsTrend' });

export const RevocationResult = z.object({
  selector: json,
  leases: z.object({ matched: z.int(), revoked: z.int(), failed: z.array(z.object({ lease: z.string(), error: z.string() })) }),
  sessions: z.array(z.string()),
}).meta({ id: 'RevocationResult' });
