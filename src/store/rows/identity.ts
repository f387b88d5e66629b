// The identity tables (session revocations, API keys, pending logins) as both stores read and write them: rows → domain values and the API key's columns; binary columns go through the store's own converters.
import type { LoginStateKind, PendingLoginState, RevokedSession, SessionCutoff, StoredApiKey } from '../../identity/ports.ts';
import type { IdentityKind } from '../../identity/types.ts';

export interface RevocationRow {
  jti: string;
  identity_id: string | null;
  revoked_at: number;
  expires_at: number;
}

export function revocationFromRow(r: RevocationRow): RevokedSession {
  return { jti: r.jti, ...(r.identity_id !== null && { identityId: r.identity_id }), revokedAt: r.revoked_at, expiresAt: r.expires_at };
}

export interface CutoffRow {
  identity_id: string;
  revoked_before: number;
}

export function cutoffFromRow(r: CutoffRow): SessionCutoff {
  return { identityId: r.identity_id, revokedBefore: r.revoked_before };
}

/** An API key's row; `B` is how the store returns a binary column (Uint8Array on SQLite, Buffer on PostgreSQL). */
export interface ApiKeyRow<B> {
  id: string;
  identity_id: string;
  identity_kind: string;
  name: string;
  hash: B;
  created_at: number;
  expires_at: number;
  rotation_due_at: number;
  revoked_at: number | null;
  revoked_reason: string | null;
  rotated_from: string | null;
  replaced_by: string | null;
  last_used_at: number | null;
}

/** Every column of identity_apikeys, in the order of apiKeyValues. */
export const API_KEY_COLUMN_NAMES = [
  'id', 'identity_id', 'identity_kind', 'name', 'hash', 'created_at', 'expires_at', 'rotation_due_at', 'revoked_at', 'revoked_reason', 'rotated_from', 'replaced_by', 'last_used_at',
] as const;
export const API_KEY_COLUMNS = API_KEY_COLUMN_NAMES.join(', ');

/** A stored API key from its row; `bytes` turns the store's binary value into the domain's Uint8Array. */
export function apiKeyFromRow<B>(r: ApiKeyRow<B>, bytes: (b: B) => Uint8Array): StoredApiKey {
  return {
    id: r.id,
    identityId: r.identity_id,
    identityKind: r.identity_kind as IdentityKind,
    description: r.name,
    hash: bytes(r.hash),
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    rotationDueAt: r.rotation_due_at,
    ...(r.revoked_at !== null && { revokedAt: r.revoked_at }),
    ...(r.revoked_reason !== null && { revokedReason: r.revoked_reason }),
    ...(r.rotated_from !== null && { rotatedFrom: r.rotated_from }),
    ...(r.replaced_by !== null && { replacedBy: r.replaced_by }),
    ...(r.last_used_at !== null && { lastUsedAt: r.last_used_at }),
  };
}

/** An API key as an INSERT's values, in API_KEY_COLUMNS order; `blob` turns the hash into what the store binds. */
export function apiKeyValues<B>(k: StoredApiKey, blob: (u: Uint8Array) => B): (string | number | B | null)[] {
  return [
    k.id, k.identityId, k.identityKind, k.description, blob(k.hash), k.createdAt, k.expiresAt, k.rotationDueAt,
    k.revokedAt ?? null, k.revokedReason ?? null, k.rotatedFrom ?? null, k.replacedBy ?? null, k.lastUsedAt ?? null,
  ];
}

/** A pending login's row; `B` as for ApiKeyRow. */
export interface LoginStateRow<B> {
  handle: string;
  kind: string;
  data: B;
  expires_at: number;
}

export function loginStateFromRow<B>(r: LoginStateRow<B>, bytes: (b: B) => Uint8Array): PendingLoginState {
  return { handle: r.handle, kind: r.kind as LoginStateKind, data: bytes(r.data), expiresAt: r.expires_at };
}
