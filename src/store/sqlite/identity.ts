// SQLite implementation of the identity domain's storage ports (src/identity/ports.ts): session
// revocations, API keys, seen token ids and pending human logins, with the domain's migrations.
import type { ApiKeyRepository, IdentityStore, LoginStateKind, LoginStateRepository, PendingLoginState, ReplayRepository, RevokedSession, SessionCutoff, SessionRepository, StoredApiKey } from '../../identity/ports.ts';
import type { SqliteDb } from './db.ts';
import { SqliteRepo } from './repo.ts';
import { migrate, SQLITE_SQL } from './db.ts';
import { API_KEY_COLUMN_NAMES, API_KEY_COLUMNS, apiKeyFromRow, apiKeyValues, cutoffFromRow, loginStateFromRow, revocationFromRow, type ApiKeyRow as SharedApiKeyRow, type CutoffRow, type LoginStateRow as SharedLoginStateRow, type RevocationRow } from '../rows/identity.ts';
import { placeholders } from '../rows/sql.ts';

/** Sessions and API keys (one migration list for both: versions are shared). */
const IDENTITY_MIGRATIONS = [
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
  {
    // Pending human logins (oidc-human): `handle` is a digest of the login's handle, `data` its
    // state sealed by the domain.
    version: 2,
    up: `CREATE TABLE identity_login_state (
           handle TEXT PRIMARY KEY,
           kind TEXT NOT NULL,
           data BLOB NOT NULL,
           expires_at INTEGER NOT NULL);
         CREATE INDEX identity_login_state_exp ON identity_login_state (expires_at);`,
  },
] as const;

/** Seen token ids: their own migration domain, so they never collide with the versions above. */
const REPLAY_MIGRATIONS = [
  {
    version: 1,
    up: `CREATE TABLE identity_seen_jti (
           id TEXT PRIMARY KEY,
           expires_at INTEGER NOT NULL);
         CREATE INDEX identity_seen_jti_exp ON identity_seen_jti (expires_at);`,
  },
] as const;

export class SqliteIdentityStore implements IdentityStore {
  readonly sessions: SqliteSessionRepository;
  readonly apiKeys: SqliteApiKeyRepository;
  readonly replay: SqliteReplayRepository;
  readonly loginState: SqliteLoginStateRepository;

  /** Brings the domain's tables up to date (at store open, before any flow runs). */
  constructor(db: SqliteDb) {
    migrate(db.raw, 'identity', IDENTITY_MIGRATIONS);
    migrate(db.raw, 'identity-replay', REPLAY_MIGRATIONS);
    this.sessions = new SqliteSessionRepository(db);
    this.apiKeys = new SqliteApiKeyRepository(db);
    this.replay = new SqliteReplayRepository(db);
    this.loginState = new SqliteLoginStateRepository(db);
  }
}

class SqliteSessionRepository extends SqliteRepo implements SessionRepository {
  revocations(): Promise<{ jtis: RevokedSession[]; cutoffs: SessionCutoff[] }> {
    return this.run((s) => {
      const jtis = (s('SELECT jti, identity_id, revoked_at, expires_at FROM identity_session_revocations').all() as unknown as RevocationRow[]).map(revocationFromRow);
      const cutoffs = (s('SELECT identity_id, revoked_before FROM identity_session_cutoffs').all() as unknown as CutoffRow[]).map(cutoffFromRow);
      return { jtis, cutoffs };
    });
  }

  async revokeJti(e: RevokedSession): Promise<void> {
    await this.run((s) =>
      s('INSERT INTO identity_session_revocations (jti, identity_id, revoked_at, expires_at) VALUES (?, ?, ?, ?) ON CONFLICT (jti) DO NOTHING').run(
        e.jti, e.identityId ?? null, e.revokedAt, e.expiresAt,
      ),
    );
  }

  raiseCutoff(identityId: string, before: number): Promise<number> {
    return this.run((s) => {
      const r = s(
        `INSERT INTO identity_session_cutoffs (identity_id, revoked_before) VALUES (?, ?)
         ON CONFLICT (identity_id) DO UPDATE SET revoked_before = MAX(revoked_before, excluded.revoked_before)
         RETURNING revoked_before`,
      ).get(identityId, before) as { revoked_before: number };
      return r.revoked_before;
    });
  }

  purgeRevocations(before: number): Promise<number> {
    return this.run((s) => Number(s('DELETE FROM identity_session_revocations WHERE expires_at < ?').run(before).changes));
  }
}

type ApiKeyRow = SharedApiKeyRow<Uint8Array>;
type LoginStateRow = SharedLoginStateRow<Uint8Array>;

/** SQLite gives and takes BLOBs as plain Uint8Arrays: nothing to convert. */
const asIs = (b: Uint8Array): Uint8Array => b;

const INSERT_API_KEY = `INSERT INTO identity_apikeys (${API_KEY_COLUMNS}) VALUES (${placeholders(SQLITE_SQL, API_KEY_COLUMN_NAMES.length)})`;

class SqliteApiKeyRepository extends SqliteRepo implements ApiKeyRepository {
  async insert(k: StoredApiKey): Promise<void> {
    await this.run((s) => s(INSERT_API_KEY).run(...apiKeyValues(k, asIs)));
  }

  get(id: string): Promise<StoredApiKey | undefined> {
    return this.run((s) => {
      const r = s('SELECT * FROM identity_apikeys WHERE id = ?').get(id) as ApiKeyRow | undefined;
      return r === undefined ? undefined : apiKeyFromRow(r, asIs);
    });
  }

  list(identityId?: string): Promise<StoredApiKey[]> {
    return this.run((s) => {
      const rows = (
        identityId === undefined
          ? s('SELECT * FROM identity_apikeys ORDER BY created_at, id').all()
          : s('SELECT * FROM identity_apikeys WHERE identity_id = ? ORDER BY created_at, id').all(identityId)
      ) as unknown as ApiKeyRow[];
      return rows.map((r) => apiKeyFromRow(r, asIs));
    });
  }

  async markReplaced(id: string, replacedBy: string, expiresBy: number): Promise<void> {
    await this.run((s) =>
      s('UPDATE identity_apikeys SET replaced_by = ?, expires_at = MIN(expires_at, ?) WHERE id = ?').run(replacedBy, expiresBy, id),
    );
  }

  revoke(id: string, at: number, reason: string): Promise<boolean> {
    return this.run(
      (s) => s('UPDATE identity_apikeys SET revoked_at = ?, revoked_reason = ? WHERE id = ? AND revoked_at IS NULL').run(at, reason, id).changes > 0,
    );
  }

  unrevokedIds(identityId: string): Promise<string[]> {
    return this.run((s) =>
      (s('SELECT id FROM identity_apikeys WHERE identity_id = ? AND revoked_at IS NULL').all(identityId) as { id: string }[]).map((r) => r.id),
    );
  }

  async touch(id: string, at: number): Promise<void> {
    await this.run((s) => s('UPDATE identity_apikeys SET last_used_at = ? WHERE id = ?').run(at, id));
  }
}

class SqliteReplayRepository extends SqliteRepo implements ReplayRepository {
  remember(id: string, expiresAt: number, now: number): Promise<boolean> {
    // One statement: a new id is inserted, an expired entry is taken over, a live one is left as
    // it is (no row changed: the id was seen). PostgreSQL runs the same upsert.
    return this.run(
      (s) =>
        s(
          `INSERT INTO identity_seen_jti (id, expires_at) VALUES (?, ?)
           ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at WHERE identity_seen_jti.expires_at < ?`,
        ).run(id, expiresAt, now).changes > 0,
    );
  }

  prune(now: number): Promise<number> {
    return this.run((s) => Number(s('DELETE FROM identity_seen_jti WHERE expires_at < ?').run(now).changes));
  }

  count(): Promise<number> {
    return this.run((s) => (s('SELECT COUNT(*) AS n FROM identity_seen_jti').get() as { n: number }).n);
  }
}

class SqliteLoginStateRepository extends SqliteRepo implements LoginStateRepository {
  put(e: PendingLoginState, now: number, max: number): Promise<boolean> {
    // Purge, count and insert without an await between them: one writer, so the bound is exact.
    return this.atomic((s) => {
      s('DELETE FROM identity_login_state WHERE expires_at <= ?').run(now);
      const { n } = s('SELECT COUNT(*) AS n FROM identity_login_state').get() as { n: number };
      if (n >= max) return false;
      s('INSERT INTO identity_login_state (handle, kind, data, expires_at) VALUES (?, ?, ?, ?)').run(e.handle, e.kind, e.data, e.expiresAt);
      return true;
    });
  }

  take(handle: string, kind: LoginStateKind): Promise<PendingLoginState | undefined> {
    return this.run((s) => {
      const r = s('DELETE FROM identity_login_state WHERE handle = ? AND kind = ? RETURNING handle, kind, data, expires_at').get(handle, kind) as LoginStateRow | undefined;
      return r === undefined ? undefined : loginStateFromRow(r, asIs);
    });
  }

  get(handle: string, kind: LoginStateKind): Promise<PendingLoginState | undefined> {
    return this.run((s) => {
      const r = s('SELECT handle, kind, data, expires_at FROM identity_login_state WHERE handle = ? AND kind = ?').get(handle, kind) as LoginStateRow | undefined;
      return r === undefined ? undefined : loginStateFromRow(r, asIs);
    });
  }

  update(handle: string, kind: LoginStateKind, data: Uint8Array): Promise<boolean> {
    return this.run((s) => s('UPDATE identity_login_state SET data = ? WHERE handle = ? AND kind = ?').run(data, handle, kind).changes > 0);
  }

  purgeExpired(now: number): Promise<number> {
    return this.run((s) => Number(s('DELETE FROM identity_login_state WHERE expires_at <= ?').run(now).changes));
  }

  count(): Promise<number> {
    return this.run((s) => (s('SELECT COUNT(*) AS n FROM identity_login_state').get() as { n: number }).n);
  }
}
