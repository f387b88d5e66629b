// Tables of the identity domain (one migration list for the whole domain: versions are shared).
import type { Db } from '../store/sqlite/db.ts';
import { migrate } from '../store/sqlite/db.ts';

export const IDENTITY_MIGRATIONS = [
  {
    version: 1,
    up: `CREATE TABLE identity_session_revocations (
           jti TEXT PRIMARY KEY,
           identity_id TEXT,
           revoked_at INTEGER NOT NULL,
           expires_at INTEGER NOT NULL);
         CREATE INDEX identity_session_revocations_exp ON identity_session_revocations (expires_at);
         CREATE TABLE identity_session_cutoffs (
           identity_id TEXT PRIMARY KEY,
           revoked_before INTEGER NOT NULL);
         CREATE TABLE identity_apikeys (
           id TEXT PRIMARY KEY,
           identity_id TEXT NOT NULL,
           identity_kind TEXT NOT NULL,
           name TEXT NOT NULL,
           hash BLOB NOT NULL,
           created_at INTEGER NOT NULL,
           expires_at INTEGER NOT NULL,
           rotation_due_at INTEGER NOT NULL,
           revoked_at INTEGER,
           revoked_reason TEXT,
           rotated_from TEXT,
           replaced_by TEXT,
           last_used_at INTEGER);
         CREATE INDEX identity_apikeys_by_identity ON identity_apikeys (identity_id);`,
  },
] as const;

export function migrateIdentity(db: Db): void {
  migrate(db, 'identity', IDENTITY_MIGRATIONS);
}
