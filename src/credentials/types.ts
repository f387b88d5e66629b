// The credentials domain's contracts: one issuer interface per target kind (a Vault secrets
// engine in miniature), the lease record, and the small interfaces this domain consumes from
// policy (Decide) and crypto (JwtSigner). Nothing here imports another domain's implementation.
import type { AuthnFacts } from '../identity/types.ts';

/**
 * A Cedar decision at request time. Used before issuing, on renew, and when policy changes.
 * `recorded`, when given, settles once the decision is durably audited: issuance overlaps its
 * own work with it, and hands nothing out before it resolves.
 */
export type Decide = (req: DecisionRequest) => Promise<{ decision: 'allow' | 'deny'; decisionId: string; recorded?: Promise<void> }>;

/** The session a credential was asked in, as proved then: kept with the lease so renewals and revalidations are decided on the same facts. */
export interface SessionFacts {
  authn?: AuthnFacts;
  /** Verified claims the trust copied (the principal's tags). */
  claims?: Record<string, string | number | boolean>;
  sessionId?: string;
  sourceIp?: string;
}

/** An RFC 8693 exchange's chain of actors (`context.delegation`). */
export interface DelegationFacts {
  actors: string[];
  depth: number;
}

/** What is being issued, as policy sees it (`context.credential`). */
export interface CredentialFacts {
  kind: TargetKind;
  target: string;
  /** Permission set, scopes or principals. */
  permission: string;
  ttlSeconds: number;
  renewal: boolean;
  /** Re-decided after a policy change. */
  revalidation: boolean;
}

/** The requester's active grants as they count for this request: `context.grants`, temporary role parents, `breakGlass`. */
export interface GrantFacts {
  grants: string[];
  parents: { type: string; id: string }[];
  breakGlass: boolean;
}

/** One decision about a credential: who, on what, in which session, why, and what is issued. */
export interface DecisionRequest {
  identityId: string;
  action: string;
  resource: { type: string; id: string };
  /** Empty for a lease stored before session facts were kept. */
  session: SessionFacts;
  /** The stated reason (`context.purpose.reason`). */
  purpose: string;
  credential: CredentialFacts;
  delegation?: DelegationFacts;
  /** Given when the requester's grants were already read for this request (read once); otherwise the decider reads them. Never stored. */
  grants?: GrantFacts;
}

/** Signs JWTs with a key from the keyring (EdDSA/ES256…); the public half is in the broker JWKS. */
export interface JwtSigner {
  readonly kid: string;
  /** JWS `alg` of the key, e.g. `EdDSA`. */
  readonly alg: string;
  sign(claims: Record<string, unknown>, header: Record<string, unknown>): Promise<string>;
}

/** The registered issuer kinds (issuers/registry.ts). */
export type TargetKind = import('./issuers/registry.ts').TargetKind;

export type LeaseStatus =
  /** Intent recorded; the credential may or may not exist at the target yet. */
  | 'issuing'
  | 'active'
  /** Revocation decided; the target-side cleanup is in progress (or the broker died during it). */
  | 'revoking'
  | 'revoked'
  | 'expired'
  /** Cleanup at the target failed; retried with back-off by the reaper until it succeeds. */
  | 'revoke_failed'
  /** Issuance did not complete; nothing was handed out and the target side is cleaned up. */
  | 'failed';

/** One issued credential. Times are epoch milliseconds. Never holds a secret value. */
export interface Lease {
  id: string;
  identityId: string;
  target: string;
  kind: TargetKind;
  /** Permission set name (postgres), principals (ssh), scope string (api), SPIFFE ID (x509). */
  permission: string;
  /** Target-side handle: role name, certificate serial, token jti. */
  handle: string | null;
  /** Non-secret issuer parameters kept for renew/revoke (public key, scopes, parent lease…). */
  params: Record<string, unknown>;
  /** Fingerprint of the secret or certificate handed out (SHA-256, base64url), for audit. */
  fingerprint: string | null;
  status: LeaseStatus;
  purpose: string;
  decisionId: string;
  grantId: string | null;
  sessionId: string | null;
  trust: string | null;
  issuedAt: number;
  expiresAt: number;
  maxExpiresAt: number;
  renewals: number;
  revokeAttempts: number;
  nextAttemptAt: number | null;
  lastError: string | null;
  revokedAt: number | null;
  revokedBy: string | null;
  revokeReason: string | null;
}

export interface IssueRequest {
  /** The lease: recorded in state `issuing` when the issuer `createsAtTarget`, not yet recorded otherwise. */
  lease: Lease;
  /** Kind-specific, validated by the issuer (public key, scopes, principals…). */
  params: Record<string, unknown>;
}

export interface IssueResult {
  handle: string;
  /** Returned once to the caller. May contain secrets: never log or audit it. */
  credential: Record<string, unknown>;
  fingerprint: string;
  /** Non-secret parameters to keep on the lease. */
  params?: Record<string, unknown>;
  /** The issuer may shorten the lease (e.g. bounded by its CA's lifetime). */
  expiresAt?: number;
}

export interface RenewResult {
  /** Present when the credential had to be re-issued (certificates, tokens). */
  credential?: Record<string, unknown>;
  handle?: string;
  fingerprint?: string;
  /** Non-secret parameters merged into the lease's (e.g. the serials a renewal superseded). */
  params?: Record<string, unknown>;
}

export interface RevocationList {
  bytes: Buffer;
  /** Changes exactly when the entries do (the compiled bytes may carry a generation time). */
  version: string;
}

/** What an issuer sees of the lease table while reconciling its target. */
export interface LeaseView {
  get(leaseId: string): Promise<Lease | undefined>;
  /** True while the lease must keep its target-side credential (active, or being issued now). */
  keep(leaseId: string): Promise<boolean>;
  /** Active leases for this issuer's target. */
  active(): Promise<Lease[]>;
}

export interface ReconcileResult {
  /** Target-side credentials without a live lease that were removed. */
  dropped: { handle: string; leaseId: string | null }[];
  /** Active leases whose credential no longer exists at the target. */
  missing: string[];
  /** Problems that did not stop the rest of the reconciliation. */
  errors: string[];
}

/**
 * One target kind. Implementations are idempotent: revoke of an already removed credential
 * succeeds, reconcile can run any number of times.
 */
export interface CredentialIssuer {
  readonly kind: TargetKind;
  readonly target: string;
  /** Cedar resource type for this target (Database, Host, Api, Workload). */
  readonly resourceType: string;
  /**
   * Whether `issue` makes something at the target (a database role) that must be cleaned up if
   * the broker dies before the lease is on record. True (the default when absent): the lease is
   * recorded as an intent (`issuing`) before `issue` and moved to `active` after, and reconcile
   * removes what an intent left behind. False: `issue` only signs (tokens, certificates) — nothing
   * exists anywhere until it is handed out — so the lease is recorded once, as issued, before the
   * answer (docs/credentials.md, Issuance).
   */
  readonly createsAtTarget?: boolean;
  /** Validates request params before anything is recorded; throws InvalidInput. Returns the permission label. */
  check(params: Record<string, unknown>, permission: string | undefined, identityId: string): string;
  issue(req: IssueRequest): Promise<IssueResult>;
  renew(lease: Lease, expiresAt: number): Promise<RenewResult>;
  revoke(lease: Lease): Promise<void>;
  reconcile(view: LeaseView): Promise<ReconcileResult>;
  /**
   * Issuers whose revocation is a list relying parties fetch (the SSH KRL): that list, compiled
   * now, and a version naming its content (the same on every replica for the same entries).
   */
  revocationList?(): Promise<RevocationList>;
  close(): Promise<void>;
}
