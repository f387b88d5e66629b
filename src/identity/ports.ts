// The identity domain's storage ports: what it needs from a store, implemented in src/store/.
// Sessions (revoked token ids, per-identity cut-offs), API keys, seen token ids (replay), pending
// human logins.
import type { IdentityKind } from './types.ts';

/** The identity domain's repositories, as one store holds them. */
export interface IdentityStore {
  readonly sessions: SessionRepository;
  readonly apiKeys: ApiKeyRepository;
  readonly replay: ReplayRepository;
  readonly loginState: LoginStateRepository;
}

// ── Sessions ─────────────────────────────────────────────────────────────────────────────────
// Times in this section are seconds since the epoch (the JWT claims' unit).

/** A revoked session token id, kept until the token would have expired anyway. */
export interface RevokedSession {
  jti: string;
  /** Who revoked it (the caller), when known. */
  identityId?: string;
  revokedAt: number;
  expiresAt: number;
}

/** Every session of `identityId` issued at or before `revokedBefore` is revoked. */
export interface SessionCutoff {
  identityId: string;
  revokedBefore: number;
}

export interface SessionRepository {
  /** Everything kept: the revoked token ids and the identities' cut-offs. */
  revocations(): Promise<{ jtis: RevokedSession[]; cutoffs: SessionCutoff[] }>;
  /** Records a revoked token id; one revoked already keeps its first entry. */
  revokeJti(entry: RevokedSession): Promise<void>;
  /**
   * Raises the identity's cut-off to `before` — never lowers it, so two revocations racing
   * from two replicas keep the later one — and returns the cut-off now stored.
   */
  raiseCutoff(identityId: string, before: number): Promise<number>;
  /** Drops revoked token ids whose token expired before `before`; returns how many. */
  purgeRevocations(before: number): Promise<number>;
}

// ── API keys ─────────────────────────────────────────────────────────────────────────────────
// Times in this section are milliseconds since the epoch.

/** An API key as stored: its HMAC, never the key. */
export interface StoredApiKey {
  id: string;
  identityId: string;
  identityKind: IdentityKind;
  description: string;
  /** HMAC-SHA256 of the key under the server pepper. */
  hash: Uint8Array;
  createdAt: number;
  expiresAt: number;
  rotationDueAt: number;
  revokedAt?: number;
  revokedReason?: string;
  rotatedFrom?: string;
  replacedBy?: string;
  lastUsedAt?: number;
}

export interface ApiKeyRepository {
  /** Stores a new key (its id is new: ids are random). */
  insert(key: StoredApiKey): Promise<void>;
  get(id: string): Promise<StoredApiKey | undefined>;
  /** Oldest first (created, then id); only the keys of `identityId` when given. */
  list(identityId?: string): Promise<StoredApiKey[]>;
  /** Records the key that replaced `id` and brings its expiry forward to `expiresBy` (never later). */
  markReplaced(id: string, replacedBy: string, expiresBy: number): Promise<void>;
  /** Revokes `id` unless it is revoked already; true if this call revoked it. */
  revoke(id: string, at: number, reason: string): Promise<boolean>;
  /** Ids of the identity's keys that are not revoked (expired ones included). */
  unrevokedIds(identityId: string): Promise<string[]>;
  /** Records that the key was used at `at`. */
  touch(id: string, at: number): Promise<void>;
}

// ── Replay ───────────────────────────────────────────────────────────────────────────────────
// Times in this section are seconds since the epoch.

export interface ReplayRepository {
  /**
   * Keeps `id` until `expiresAt` unless a live entry (one that expires at or after `now`) has it
   * already; true if the id was fresh. One atomic step: of two replicas remembering the same id
   * at once, exactly one is told it was fresh. An expired entry with the same id is replaced.
   */
  remember(id: string, expiresAt: number, now: number): Promise<boolean>;
  /** Drops the entries that expired before `now`; returns how many. */
  prune(now: number): Promise<number>;
  /** Entries kept (for tests and metrics). */
  count(): Promise<number>;
}

// ── Pending human logins ─────────────────────────────────────────────────────────────────────
// Times in this section are milliseconds since the epoch.

/** Which flow a pending login belongs to: authorization code (+ PKCE) or device authorization. */
export type LoginStateKind = 'code' | 'device';

/**
 * A human login between its start and its completion, as stored: kept in the store so that any
 * replica can complete a login another started.
 */
export interface PendingLoginState {
  /** A digest of the login's handle (the `state`, or the device handle): never the handle itself. */
  handle: string;
  kind: LoginStateKind;
  /** The login's state, sealed by the domain (it holds the PKCE verifier, nonce, device code): opaque here. */
  data: Uint8Array;
  expiresAt: number;
}

export interface LoginStateRepository {
  /**
   * Drops the entries expired at `now` (`expiresAt <= now`), then keeps `entry` unless `max`
   * entries (of any kind) are kept already: then nothing is stored and it answers false. One step
   * across replicas: however many start logins at once, no more than `max` are ever kept. The
   * handle is new (handles are random).
   */
  put(entry: PendingLoginState, now: number, max: number): Promise<boolean>;
  /**
   * Returns and deletes the entry of `handle` and `kind`, expired or not (the caller tells an
   * expired login apart); undefined if there is none. Single use across replicas: of two taking
   * the same handle at once, exactly one gets it.
   */
  take(handle: string, kind: LoginStateKind): Promise<PendingLoginState | undefined>;
  /** Reads the entry of `handle` and `kind` without consuming it (device polls); undefined if there is none. */
  get(handle: string, kind: LoginStateKind): Promise<PendingLoginState | undefined>;
  /** Replaces the data of a kept entry (a device login's poll interval); false if it is gone. */
  update(handle: string, kind: LoginStateKind, data: Uint8Array): Promise<boolean>;
  /** Drops the entries expired at `now` (`expiresAt <= now`); returns how many. */
  purgeExpired(now: number): Promise<number>;
  /** Entries kept, expired ones included (for tests and metrics). */
  count(): Promise<number>;
}
