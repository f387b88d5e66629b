// The credentials domain's storage ports: what it needs from a store, implemented in src/store/.
// Leases and their state machine.
import type { Lease, LeaseStatus, TargetKind } from './types.ts';

/** The credentials domain's repositories, as one store holds them. */
export interface CredentialStore {
  readonly leases: LeaseRepository;
}

/** Which leases to list; every given field must match (an array: any of its values). */
export interface LeaseFilter {
  identityId?: string | string[];
  target?: string;
  status?: LeaseStatus | LeaseStatus[];
  sessionId?: string;
  decisionId?: string;
  grantId?: string;
  trust?: string;
  kind?: TargetKind;
}

/** The fields of a lease that change after it is recorded. */
export type LeasePatch = Partial<
  Pick<
    Lease,
    | 'handle' | 'params' | 'fingerprint' | 'status' | 'expiresAt' | 'renewals' | 'revokeAttempts' | 'nextAttemptAt'
    | 'lastError' | 'revokedAt' | 'revokedBy' | 'revokeReason' | 'decisionId'
  >
>;

/**
 * The lease table: every credential ever handed out, its state, and what revoking it took. Rows
 * are never deleted, so a failed revocation cannot be forgotten. Every write resolves once it is
 * durable (committed): the issuance path relies on it — an intent is on record before the target
 * is touched, and a credential is handed out only once its lease is `active` on record. A store
 * may group the writes of concurrent callers into one transaction (the SQLite store does).
 */
export interface LeaseRepository {
  /** Records a new lease (its id is new: `newLeaseId`). */
  insert(lease: Lease): Promise<void>;
  get(id: string): Promise<Lease | undefined>;
  /** Applies a partial update; returns the updated lease. Throws NotFound for an unknown id. */
  update(id: string, patch: LeasePatch): Promise<Lease>;
  /**
   * Moves a lease from one of `from` to `to` (with `patch`) atomically — a compare-and-set on its
   * status; returns undefined when the lease was not in one of those states (someone else got
   * there first).
   */
  transition(id: string, from: readonly LeaseStatus[], to: LeaseStatus, patch?: Omit<LeasePatch, 'status'>): Promise<Lease | undefined>;
  /** Newest first (issued_at, then id). */
  list(filter?: LeaseFilter, limit?: number): Promise<Lease[]>;
  /** The lease of a target-side handle (token jti, certificate serial, role name). */
  byHandle(kind: TargetKind, handle: string): Promise<Lease | undefined>;
  /** Leases derived from this one (token exchange: `params.parent`) that may still hold a credential. */
  children(parentId: string): Promise<Lease[]>;
  /** Active leases past their end, and failed revocations due for another attempt, soonest end first. */
  due(now: number, limit?: number): Promise<Lease[]>;
}
