// What a gateway may ask of the broker (the one authorizing layer, which implements it in
// src/broker/gateway-host.ts): prove who connects, decide, hold an upstream lease for the
// session, record, and register the live session. Gateways never import the broker.
import type { Assignment, AssignmentCalls } from '../agents/types.ts';
import type { AuditEventInput, AuditRecord } from '../audit/types.ts';
import type { CedarValue, Entity, EntityUid } from '../policy/engine/types.ts';
import type { ResourceFacts } from '../policy/entities.ts';
import type { SessionHangs, SessionRegistry } from './sessions.ts';

/** What a client presents to a gateway. */
export type GatewayProof =
  /** A secret typed where a password goes: a Portcullis session token, or an API key (`pcx_…`). */
  | { type: 'secret'; secret: string }
  /** An OpenSSH user certificate line (`ssh-ed25519-cert-v01@openssh.com AAAA…`) the client proved it holds the key of. */
  | { type: 'ssh-certificate'; certificate: string }
  /** The certificate chain (DER, leaf first) a client presented over TLS: an X.509-SVID, checked by the spiffe trusts. */
  | { type: 'x509'; chain: Uint8Array[] }
  /** An OAuth access token (`Authorization: Bearer`) Portcullis issued, which must carry `audience` in `aud` (RFC 8707/9068): the MCP gateway's proof. */
  | { type: 'bearer'; token: string; audience: string };

/**
 * Who connected, as the broker proved it. Opaque to the gateway: only a principal the host
 * returned from `authenticate` is accepted back (a gateway cannot make one up).
 */
export interface GatewayPrincipal {
  readonly identityId: string;
  /** Identity kind (`user`, `workload`, …). */
  readonly kind: string;
  readonly boundary: string;
  /** How it was proved: `session`, `api-key`, `ssh-certificate`, and the trust behind it. */
  readonly method: string;
  readonly trust: string;
  /** The login session (jti) the gateway session hangs on, when the proof was a session token or an API key. */
  readonly jti?: string;
  /** The API key the proof was, if any (revoking it ends the session). */
  readonly apiKeyId?: string;
  /** The lease the proof itself is (an SSH certificate's), if any. */
  readonly proofLeaseId?: string;
  /** For an SSH certificate: the principals it names. */
  readonly principals?: readonly string[];
  /** For an access token: its `act` chain, most recent actor first (an agent acting for the subject). */
  readonly actors?: readonly string[];
  /** For an access token: the boundary of the acting agent (`actors[0]`), when it is a known identity. */
  readonly actorBoundary?: string;
  /** For an access token: the assignment it was issued under (claim `asg`), if any. */
  readonly assignmentId?: string;
  readonly sourceIp: string;
}

/** One decision a gateway asks for. Entities beyond those declared in config go in `entities` (tables, functions). */
export interface GatewayDecisionRequest {
  action: string;
  resource: EntityUid;
  /** Context beyond what the server fills (authn, request, grants…); keys must be declared in the Cedar schema for the action. */
  context?: Record<string, CedarValue>;
  /** The purpose the client gave (connection option, CLI `--reason`). */
  purpose?: { reason?: string; ticket?: string };
  entities?: Entity[];
  /**
   * Append the authz record only when `record()` is called (so it shares one group commit with
   * the gateway's own record of the unit of work). The gateway must call `record()` for every
   * such decision, and release nothing that depends on it before `recorded` resolves.
   */
  deferRecord?: boolean;
}

export interface GatewayDecision {
  decision: 'allow' | 'deny';
  decision_id: string;
  reasons: string[];
  /** The policy version that decided. */
  policy_version: number;
  /**
   * Who must approve before the decision takes effect (`@approval("…")` on the policies that
   * determined it): an allow any of whose permits carries it, or a deny all of whose forbids do.
   */
  approval?: string;
  /**
   * Settles when the authz record is durable (rejects when audit is fail-closed and could not
   * record it): nothing that depends on the decision may reach the client before it resolves.
   */
  recorded: Promise<void>;
  /** Appends the authz record if it was deferred (`deferRecord`; once) and returns `recorded`. */
  record(): Promise<void>;
}

/** The upstream credential the gateway holds for one session; never shown to the client. */
export interface GatewayLease {
  id: string;
  expiresAt: number;
  /** The grant (request, break-glass) the lease was issued under, if any: its end ends the session. */
  grantId?: string;
  /** The issuer's credential (for postgres: host, port, database, user, password). Secret. */
  credential: Record<string, unknown>;
}

/** A lease a gateway asks for: `fields` are the target kind's own request fields (e.g. `public_key` for ssh targets). */
export interface GatewayLeaseRequest {
  target: string;
  permission?: string;
  reason: string;
  ttlMs?: number;
  fields?: Record<string, unknown>;
}

/** What a gateway may ask of the broker. */
export interface GatewayHost {
  /** Proves a client; throws AuthenticationFailed (audited in the authn stream by the broker). */
  authenticate(proof: GatewayProof, sourceIp: string): Promise<GatewayPrincipal>;
  /** Decides (audited in the authz stream); a deny is an answer, not an error. Throws Unavailable when no policy is active. */
  decide(who: GatewayPrincipal, req: GatewayDecisionRequest): Promise<GatewayDecision>;
  /**
   * A just-in-time lease on `target` for this principal, through the normal credential path
   * (`credential.issue` decided and audited); `reason` is the lease's purpose.
   */
  issueLease(who: GatewayPrincipal, req: GatewayLeaseRequest): Promise<GatewayLease>;
  /** The active policy version (a decision kept for a prepared statement is made again once it changes). */
  policyVersion(): number | undefined;
  /**
   * Records a proof the gateway refused itself before `authenticate` (a certificate whose key the
   * client did not prove to hold, a malformed one…) as an `authn.failure` (never the proof itself).
   */
  refused(proof: GatewayProof['type'], reason: string, detail: string, sourceIp: string): Promise<void>;
  /** Revokes a lease the gateway holds (the session ended). */
  revokeLease(leaseId: string, reason: string): Promise<void>;
  /** Appends to the `session` stream; resolves once durable. Use a SessionRecorder (sessions.ts), which numbers records. */
  record(event: Omit<AuditEventInput, 'stream'>): Promise<AuditRecord>;
  /**
   * Announces records that will be appended shortly (a statement sent upstream: its records follow
   * its result), so that other sessions' records ready meanwhile wait briefly and share their group
   * commit; call the returned function once they were appended or will not be.
   */
  expectRecord(): () => void;
  /** PEM of Portcullis' own SPIFFE roots and intermediates: the CA list a TLS listener asks client certificates against ('' when none). */
  clientCaPem(): string;
  /** A declared resource (`resources:` in config), for the boundary of tables and functions under a Database. */
  resource(uid: EntityUid): ResourceFacts | undefined;
  /** What a session of this principal hangs on (identity, login session, API key, the proof's lease), to register it. */
  hangsOf(who: GatewayPrincipal): SessionHangs;
  /** This replica's live-session registry. */
  readonly sessions: SessionRegistry;
  /** `iss` of Portcullis' tokens: the authorization server a protected resource names (RFC 9728). */
  issuer(): string;
  /**
   * Asks `approver` (an identity id) to approve one held call through an access request made in
   * the principal's name (access.request decided; CLI, API and webhooks see it like any other).
   */
  requestApproval(who: GatewayPrincipal, req: GatewayApprovalRequest): Promise<{ id: string }>;
  /** Where an approval stands: `approved` only when the named approver approved it. */
  approvalStatus(id: string, approver: string): Promise<'pending' | 'approved' | 'denied' | 'expired'>;
  /** Withdraws a pending approval request (the hold timed out or the session ended). */
  cancelApproval(who: GatewayPrincipal, id: string, reason: string): Promise<void>;
  assignment(id: string): Promise<Assignment | undefined>;
  /** Calls counted per assignment, shared by every replica through the store (MCP budgets and taint). */
  readonly calls: AssignmentCalls;
}

/** One held call an approver is asked about. */
export interface GatewayApprovalRequest {
  action: string;
  resource: EntityUid;
  approver: string;
  /** What is asked, shown to the approver (no argument values: they may be secret). */
  reason: string;
}
