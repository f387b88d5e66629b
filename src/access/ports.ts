// The access domain's storage ports: what it needs from a store, implemented in src/store/.
// Access requests (with their reviews and comments), grants, break-glass reviews, webhook deliveries.
import type { AccessRequest, BreakGlassReview, Grant, GrantKind, RequestStatus } from './types.ts';

/** Times in these ports are ms since the epoch; records come back as the domain types. */
export interface AccessStore {
  readonly requests: RequestRepository;
  readonly grants: GrantRepository;
  readonly breakGlass: BreakGlassReviewRepository;
  readonly webhooks: WebhookOutbox;
}

// ── Requests ────────────────────────────────────────────────────────────────────────────────

/** A request as first stored: pending, no reviews, no comments; times in ms. */
export type NewRequest = Pick<
  AccessRequest,
  'id' | 'requester' | 'target' | 'what' | 'reason' | 'ticket' | 'duration_ms' | 'session_bound' | 'required_approvals'
> & {
  start_at: number | null;
  rules: readonly string[];
  reviewers: readonly string[];
  created_at: number;
  expires_at: number;
  /** The requester's accountable humans at request time (separation of duties). */
  accountable: readonly string[];
};

export interface NewReview {
  reviewer: string;
  verdict: 'approve' | 'deny';
  decision_id: string;
  at: number;
  comment: string | null;
  /** The reviewer's accountable human at review time (null when not judged). */
  human: string | null;
}

export interface ListFilter {
  status?: RequestStatus;
  requester?: string;
  /** Pending requests this identity could review (not their own). */
  reviewableBy?: string;
  /** Keyset paging: only requests after this one in list order (created_at, then id, both descending). */
  before?: Keyset;
}

/** A position in a list ordered by a time (ms) then id, both descending: the last row of a page. */
export interface Keyset {
  at: number;
  id: string;
}

export interface RequestRepository {
  create(r: NewRequest): Promise<void>;
  get(id: string): Promise<AccessRequest | undefined>;
  /** Newest first (created_at, then id, both descending). */
  list(f: ListFilter, limit: number): Promise<AccessRequest[]>;
  /** Who was accountable when the request was made, and for each approval when it was cast. */
  recordedHumans(id: string): Promise<{ subjectHumans: string[]; earlierHumans: string[] }>;
  /** Records a review; false when this reviewer already reviewed the request. */
  addReview(requestId: string, review: NewReview): Promise<boolean>;
  /** Distinct approvals the request received. */
  approvals(requestId: string): Promise<number>;
  setRequiredApprovals(id: string, n: number): Promise<void>;
  /** Moves a pending request to its final status; false when it was no longer pending. */
  conclude(id: string, status: Exclude<RequestStatus, 'pending'>, at: number, grantId: string | null): Promise<boolean>;
  /** Appends a comment after the request's existing ones. */
  addComment(requestId: string, c: { author: string; at: number; text: string }): Promise<void>;
  /** Pending requests whose expiry is at or before `now`. */
  overdue(now: number): Promise<string[]>;
  /** Pending requests expiring in (from, to] whose `request.expiring` notice is not sent yet. */
  expiringUnnotified(from: number, to: number): Promise<string[]>;
  /** Marks the expiring notice sent; false when it already was (someone else sends it). */
  markExpiringNotified(id: string): Promise<boolean>;
}

// ── Grants ──────────────────────────────────────────────────────────────────────────────────

/** A grant as created: active, times in ms. */
export type NewGrant = Omit<Grant, 'start_at' | 'end_at' | 'status' | 'ended_at' | 'ended_by' | 'end_reason'> & {
  start_at: number;
  end_at: number;
};

export interface GrantFilter {
  identityId?: string;
  kind?: GrantKind;
  /** Active and within [start_at, end_at) at this time. */
  activeAt?: number;
  /** Keyset paging: only grants after this one in list order (start_at, then id, both descending). */
  before?: Keyset;
}

export interface GrantRepository {
  create(g: NewGrant): Promise<void>;
  get(id: string): Promise<Grant | undefined>;
  /**
   * Latest start first (then id, descending). Runs on every decision for an identity holding grants: an
   * implementation answers `{ identityId, activeAt }` from an index, never a scan.
   */
  list(f: GrantFilter, limit: number): Promise<Grant[]>;
  /** Identities holding at least one grant not yet ended. */
  holders(): Promise<string[]>;
  /** Ends an active grant; false when it had already ended. */
  end(id: string, e: { at: number; by: string; reason: string }): Promise<boolean>;
  /** The leases issued under this ended grant are revoked. */
  markLeasesRevoked(id: string): Promise<void>;
  /** Ids of an identity's active session-bound grants. */
  activeSessionBound(identityId: string): Promise<string[]>;
  /** Ids of active grants whose end is at or before `now`. */
  due(now: number): Promise<string[]>;
  /** Ids of ended grants whose leases are not known to be revoked yet. */
  leasesToRevoke(): Promise<string[]>;
}

// ── Break-glass ─────────────────────────────────────────────────────────────────────────────

export interface BreakGlassReviewRepository {
  /** Opens the after-action review of a break-glass grant. */
  open(r: { id: string; grantId: string; user: string; openedAt: number }): Promise<void>;
  get(id: string): Promise<BreakGlassReview | undefined>;
  forGrant(grantId: string): Promise<BreakGlassReview | undefined>;
  /** Oldest first. */
  list(status?: 'open' | 'closed'): Promise<BreakGlassReview[]>;
  /** Records the review; false when it was already closed. */
  close(id: string, c: { reviewer: string; at: number; summary: string }): Promise<boolean>;
}

// ── Webhook deliveries ──────────────────────────────────────────────────────────────────────

export type DeliveryStatus = 'pending' | 'delivered' | 'failed';

export interface Delivery {
  id: string;
  endpoint: string;
  event_type: string;
  status: DeliveryStatus;
  attempts: number;
  next_attempt_at: string;
  last_status: number | null;
  last_error: string | null;
  created_at: string;
  delivered_at: string | null;
}

export interface DeliveryFilter {
  status?: DeliveryStatus;
  endpoint?: string;
  eventType?: string;
}

/** A pending delivery due for an attempt. */
export interface DueDelivery {
  id: string;
  endpoint: string;
  body: string;
  attempts: number;
}

/** The outbox of webhook deliveries: one row per event and endpoint, with its attempts. */
export interface WebhookOutbox {
  /** Queues deliveries, due at `at`. */
  enqueue(deliveries: readonly { id: string; endpoint: string; eventType: string; body: string }[], at: number): Promise<void>;
  /** Newest first. */
  list(f: DeliveryFilter, limit: number): Promise<Delivery[]>;
  pendingCount(): Promise<number>;
  /** The earliest next attempt among pending deliveries, leaving out these endpoints. */
  nextAttemptAt(exceptEndpoints: readonly string[]): Promise<number | undefined>;
  /**
   * Pending deliveries of one endpoint due at `now`, earliest first. A store shared by replicas
   * claims them: no other replica gets them until the attempt is recorded or the claim runs out.
   */
  due(endpoint: string, now: number, limit: number): Promise<DueDelivery[]>;
  delivered(id: string, a: { attempts: number; status: number | null; at: number }): Promise<void>;
  /** A failed attempt: retried at `nextAttemptAt` while `status` stays pending. */
  attemptFailed(id: string, a: { status: 'pending' | 'failed'; attempts: number; lastStatus: number | null; error: string; nextAttemptAt: number }): Promise<void>;
}
