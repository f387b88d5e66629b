// Access-domain types and the small interfaces it consumes (decisions, lease revocation,
// notifications). Nothing here imports another domain's implementation.
import type { AuthnFacts } from '../identity/types.ts';
import type { Entity, EntityUid } from '../policy/engine/types.ts';

/** Who is acting, as proved by their session. */
export interface Actor {
  id: string;
  authn: AuthnFacts;
  sessionId?: string;
  sourceIp?: string;
}

export interface AccessDecisionRequest {
  actor: Actor;
  action: string;
  resource: EntityUid;
  /** Entity known only for this decision (the `AccessRequest` being reviewed). */
  resourceEntity?: Entity;
  purpose?: { reason?: string; ticket?: string };
  breakGlass?: boolean;
}

/** A Cedar decision at the time of the call (DecisionPoint.decide behind it; audited there). */
export type AccessDecide = (req: AccessDecisionRequest) => Promise<{ decision: 'allow' | 'deny'; decisionId: string }>;

/**
 * The answer AccessDecide would give, WITHOUT an authz record. Used only to filter the rows of a
 * read whose caller got one recorded decision for that read (docs/access.md "Who reads what").
 */
export type AccessWouldDecide = (req: AccessDecisionRequest) => Promise<'allow' | 'deny'>;

/** Revokes every lease issued under a grant (credential service revoke by grant). */
export type RevokeLeases = (selector: { grantId: string }, opts: { by: string; reason: string }) => Promise<unknown>;

/** Fire-and-forget notifications (webhooks). Must never throw or block. */
export interface Notifier {
  notify(type: string, data: Record<string, unknown>): void;
}

/** What is asked for. */
export type AccessTarget =
  | { kind: 'role'; role: string }
  | { kind: 'resource'; resource: EntityUid; actions: string[] }
  /** A credential for a credential-service target; `resource` is the Cedar resource it guards. */
  | { kind: 'credential'; target: string; permission?: string; resource?: EntityUid };

export type RequestStatus = 'pending' | 'approved' | 'denied' | 'cancelled' | 'expired';

export interface Review {
  reviewer: string;
  verdict: 'approve' | 'deny';
  decision_id: string;
  at: string;
  comment: string | null;
}

export interface Comment {
  author: string;
  at: string;
  text: string;
}

export interface AccessRequest {
  id: string;
  requester: string;
  target: AccessTarget;
  /** Human label, e.g. `db.admin on Database::"orders"`. */
  what: string;
  reason: string;
  ticket: string | null;
  duration_ms: number;
  start_at: string | null;
  session_bound: boolean;
  status: RequestStatus;
  required_approvals: number;
  /** Names of the config rules that applied. */
  rules: string[];
  /** Suggested reviewers (config), for status and notifications. */
  reviewers: string[];
  created_at: string;
  expires_at: string;
  decided_at: string | null;
  grant_id: string | null;
  reviews: Review[];
  comments: Comment[];
}

export type GrantKind = 'request' | 'break-glass';

export interface Grant {
  id: string;
  kind: GrantKind;
  identity_id: string;
  request_id: string | null;
  target: AccessTarget;
  what: string;
  /** Strings for `context.grants`. */
  grants: string[];
  /** Temporary parents of the principal (`Role::"…"`). */
  roles: EntityUid[];
  start_at: string;
  end_at: string;
  status: 'active' | 'ended';
  ended_at: string | null;
  ended_by: string | null;
  end_reason: string | null;
  session_bound: boolean;
  reason: string;
  /** Break-glass only: who was notified and may end it. */
  revokers: string[];
}

export interface BreakGlassReview {
  id: string;
  grant_id: string;
  user: string;
  status: 'open' | 'closed';
  opened_at: string;
  reviewer: string | null;
  reviewed_at: string | null;
  summary: string | null;
}

/** What the decision context gets from active grants. */
export interface GrantContext {
  grants: string[];
  parents: EntityUid[];
  breakGlass: boolean;
  /** Ids of the grants that contributed (for audit, and `grantId` on leases). */
  grantIds: string[];
}
