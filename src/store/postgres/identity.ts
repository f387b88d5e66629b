// PostgreSQL implementation of the identity domain's storage ports (src/identity/ports.ts): session
// revocations, API keys, seen token ids and pending human logins, shared by every replica (no
// state kept in memory here).
import type { IdentityKind } from '../../identity/types.ts';
import type {
  ApiKeyRepository,
  IdentityStore,
  LoginStateKind,
  LoginStateRepository,
  PendingLoginState,
  ReplayRepository,
  RevokedSession,
  SessionCutoff,
  SessionRepository,
  StoredApiKey,
} from '../../identity/ports.ts';
import type { PgDb, PgDomainMigrations } from './db.ts';

// Same tables and columns as SQLite (migrations `identity` 1 and `identity-replay` 1 there; one
// domain here, PostgreSQL has no history to keep). Seconds and milliseconds since the epoch are
// BIGINT; ids sorted by `list` compare bytewise (COLLATE "C"), as SQLite's do.
export const MIGRATIONS: PgDomainMigrations = {
  domain: 'identity',
  migrations: [
    {
      version: 1,
      up: `CREATE TABLE identity_session_revocations (
             jti TEXT PRIMARY KEY,
             identity_id TEXT,
             revoked_at BIGINT NOT NULL,
             expires_at BIGINT NOT NULL);
           CREATE INDEX identity_session_revocations_exp ON identity_session_revocations (expires_at);
           CREATE TABLE identity_session_cutoffs (
             identity_id TEXT PRIMARY KEY,
             revoked_before BIGINT NOT NULL);
           CREATE TABLE identity_apikeys (
             id TEXT COLLATE "C" PRIMARY KEY,
             identity_id TEXT NOT NULL,
             identity_kind TEXT NOT NULL,
             name TEXT NOT NULL,
             hash BYTEA NOT NULL,
             created_at BIGINT NOT NULL,
             expires_at BIGINT NOT NULL,
             rotation_due_at BIGINT NOT NULL,
             revoked_at BIGINT,
             revoked_reason TEXT,
             rotated_from TEXT,
             replaced_by TEXT,
             last_used_at BIGINT);
           CREATE INDEX identity_apikeys_by_identity ON identity_apikeys (identity_id, created_at, id);
           CREATE INDEX identity_apikeys_by_created ON identity_apikeys (created_at, id);
           CREATE TABLE identity_seen_jti (
             id TEXT PRIMARY KEY,
             expires_at BIGINT NOT NULL);
           CREATE INDEX identity_seen_jti_exp ON identity_seen_jti (expires_at);`,
    },
    {
      // Pending human logins (oidc-human), as SQLite's `identity` 2: `handle` is a digest of the
      // login's handle, `data` its state sealed by the domain.
      version: 2,
      up: `CREATE TABLE identity_login_state (
             handle TEXT PRIMARY KEY,
             kind TEXT NOT NULL,
             data BYTEA NOT NULL,
             expires_at BIGINT NOT NULL);
           CREATE INDEX identity_login_state_exp ON identity_login_state (expires_at);`,
    },
  ],
};

export function pgIdentityStore(db: PgDb): IdentityStore {
  return { sessions: new PgSessionRepository(db), apiKeys: new PgApiKeyRepository(db), replay: new PgReplayRepository(db), loginState: new PgLoginStateRepository(db) };
}

class PgSessionRepository implements SessionRepository {
  readonly #db: PgDb;

  constructor(db: PgDb) {
    this.#db = db;
  }

  async revocations(): Promise<{ jtis: RevokedSession[]; cutoffs: SessionCutoff[] }> {
    const jtis = (
      await this.#db.query<{ jti: string; identity_id: string | null; revoked_at: number; expires_at: number }>(
        'SELECT jti, identity_id, revoked_at, expires_at FROM identity_session_revocations',
      )
    ).map((r) => ({ jti: r.jti, ...(r.identity_id !== null && { identityId: r.identity_id }), revokedAt: r.revoked_at, expiresAt: r.expires_at }));
    const cutoffs = (await this.#db.query<{ identity_id: string; revoked_before: number }>('SELECT identity_id, revoked_before FROM identity_session_cutoffs')).map(
      (r) => ({ identityId: r.identity_id, revokedBefore: r.revoked_before }),
    );
    return { jtis, cutoffs };
  }

  async revokeJti(e: RevokedSession): Promise<void> {
    await this.#db.execute(
      'INSERT INTO identity_session_revocations (jti, identity_id, revoked_at, expires_at) VALUES ($1, $2, $3, $4) ON CONFLICT (jti) DO NOTHING',
      [e.jti, e.identityId ?? null, e.revokedAt, e.expiresAt],
    );
  }

  async raiseCutoff(identityId: string, before: number): Promise<number> {
    // One upsert: two replicas raising it at once serialise on the row and the larger value stays.
    const r = await this.#db.one<{ revoked_before: number }>(
      `INSERT INTO identity_session_cutoffs (identity_id, revoked_before) VALUES ($1, $2)
       ON CONFLICT (identity_id) DO UPDATE SET revoked_before = GREATEST(identity_session_cutoffs.revoked_before, EXCLUDED.revoked_before)
       RETURNING revoked_before`,
      [identityId, before],
    );
    return r!.revoked_before;
  }

  purgeRevocations(before: number): Promise<number> {
    return this.#db.execute('DELETE FROM identity_session_revocations WHERE expires_at < $1', [before]);
  }
}

interface ApiKeyRow {
  id: string;
  identity_id: string;
  identity_kind: string;
  name: string;
  hash: Buffer;
  created_at: number;
  expires_at: number;
  rotation_due_at: number;
  revoked_at: number | null;
  revoked_reason: string | null;
  rotated_from: string | null;
  replaced_by: string | null;
  last_used_at: number | null;
}

function apiKeyFromRow(r: ApiKeyRow): StoredApiKey {
  return {
    id: r.id,
    identityId: r.identity_id,
    identityKind: r.identity_kind as IdentityKind,
    description: r.name,
    // A plain Uint8Array (a copy), as SQLite gives, not a Buffer over pg's pool.
    hash: new Uint8Array(r.hash),
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

const API_KEY_COLUMNS = 'id, identity_id, identity_kind, name, hash, created_at, expires_at, rotation_due_at, revoked_at, revoked_reason, rotated_from, replaced_by, last_used_at';

class PgApiKeyRepository implements ApiKeyRepository {
  readonly #db: PgDb;

  constructor(db: PgDb) {
    this.#db = db;
  }

  async insert(k: StoredApiKey): Promise<void> {
    await this.#db.execute(
      `INSERT INTO identity_apikeys (${API_KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
      [
        k.id,
        k.identityId,
        k.identityKind,
        k.description,
        Buffer.from(k.hash),
        k.createdAt,
        k.expiresAt,
        k.rotationDueAt,
        k.revokedAt ?? null,
        k.revokedReason ?? null,
        k.rotatedFrom ?? null,
        k.replacedBy ?? null,
        k.lastUsedAt ?? null,
      ],
    );
  }

  async get(id: string): Promise<StoredApiKey | undefined> {
    const r = await this.#db.one<ApiKeyRow>(`SELECT ${API_KEY_COLUMNS} FROM identity_apikeys WHERE id = $1`, [id]);
    return r === undefined ? undefined : apiKeyFromRow(r);
  }

  async list(identityId?: string): Promise<StoredApiKey[]> {
    const rows =
      identityId === undefined
        ? await this.#db.query<ApiKeyRow>(`SELECT ${API_KEY_COLUMNS} FROM identity_apikeys ORDER BY created_at, id`)
        : await this.#db.query<ApiKeyRow>(`SELECT ${API_KEY_COLUMNS} FROM identity_apikeys WHERE identity_id = $1 ORDER BY created_at, id`, [identityId]);
    return rows.map(apiKeyFromRow);
  }

  async markReplaced(id: string, replacedBy: string, expiresBy: number): Promise<void> {
    await this.#db.execute('UPDATE identity_apikeys SET replaced_by = $1, expires_at = LEAST(expires_at, $2) WHERE id = $3', [replacedBy, expiresBy, id]);
  }

  async revoke(id: string, at: number, reason: string): Promise<boolean> {
    // Conditional on the row's current state: of two replicas revoking at once, the second
    // re-reads the row after the first commits and changes nothing.
    return (await this.#db.execute('UPDATE identity_apikeys SET revoked_at = $1, revoked_reason = $2 WHERE id = $3 AND revoked_at IS NULL', [at, reason, id])) > 0;
  }

  async unrevokedIds(identityId: string): Promise<string[]> {
    return (await this.#db.query<{ id: string }>('SELECT id FROM identity_apikeys WHERE identity_id = $1 AND revoked_at IS NULL ORDER BY created_at, id', [identityId])).map((r) => r.id);
  }

  async touch(id: string, at: number): Promise<void> {
    await this.#db.execute('UPDATE identity_apikeys SET last_used_at = $1 WHERE id = $2', [at, id]);
  }
}

class PgReplayRepository implements ReplayRepository {
  readonly #db: PgDb;

  constructor(db: PgDb) {
    this.#db = db;
  }

  async remember(id: string, expiresAt: number, now: number): Promise<boolean> {
    // One statement, as on SQLite: a new id is inserted, an expired entry is taken over, a live
    // one is left alone (no row: seen). Two replicas inserting one id at once: the second waits
    // on the first's row, then finds it live and changes nothing.
    const n = await this.#db.execute(
      `INSERT INTO identity_seen_jti (id, expires_at) VALUES ($1, $2)
       ON CONFLICT (id) DO UPDATE SET expires_at = EXCLUDED.expires_at WHERE identity_seen_jti.expires_at < $3`,
      [id, expiresAt, now],
    );
    return n > 0;
  }

  prune(now: number): Promise<number> {
    return this.#db.execute('DELETE FROM identity_seen_jti WHERE expires_at < $1', [now]);
  }

  async count(): Promise<number> {
    return (await this.#db.one<{ n: number }>('SELECT COUNT(*) AS n FROM identity_seen_jti'))!.n;
  }
}

interface LoginStateRow {
  handle: string;
  kind: string;
  data: Buffer;
  expires_at: number;
}

function loginStateFromRow(r: LoginStateRow): PendingLoginState {
  return { handle: r.handle, kind: r.kind as LoginStateKind, data: new Uint8Array(r.data), expiresAt: r.expires_at };
}

/** The advisory lock that serialises starts, so the bound on pending logins holds across replicas. */
const LOGIN_STATE_LOCK = 'identity_login_state';

class PgLoginStateRepository implements LoginStateRepository {
  readonly #db: PgDb;

  constructor(db: PgDb) {
    this.#db = db;
  }

  put(e: PendingLoginState, now: number, max: number): Promise<boolean> {
    // Purge, count and insert under one lock: two replicas starting logins at the bound cannot
    // both see room (READ COMMITTED would let each count without the other's row).
    return this.#db.transaction(async () => {
      await this.#db.lock(LOGIN_STATE_LOCK);
      await this.#db.execute('DELETE FROM identity_login_state WHERE expires_at <= $1', [now]);
      const { n } = (await this.#db.one<{ n: number }>('SELECT COUNT(*)::int AS n FROM identity_login_state'))!;
      if (n >= max) return false;
      await this.#db.execute('INSERT INTO identity_login_state (handle, kind, data, expires_at) VALUES ($1, $2, $3, $4)', [e.handle, e.kind, Buffer.from(e.data), e.expiresAt]);
      return true;
    });
  }

  async take(handle: string, kind: LoginStateKind): Promise<PendingLoginState | undefined> {
    // One statement: of two replicas deleting the same row at once, the second waits on the
    // first's row lock, then finds it gone and returns nothing.
    const r = await this.#db.one<LoginStateRow>('DELETE FROM identity_login_state WHERE handle = $1 AND kind = $2 RETURNING handle, kind, data, expires_at', [handle, kind]);
    return r === undefined ? undefined : loginStateFromRow(r);
  }

  async get(handle: string, kind: LoginStateKind): Promise<PendingLoginState | undefined> {
    const r = await this.#db.one<LoginStateRow>('SELECT handle, kind, data, expires_at FROM identity_login_state WHERE handle = $1 AND kind = $2', [handle, kind]);
    return r === undefined ? undefined : loginStateFromRow(r);
  }

  async update(handle: string, kind: LoginStateKind, data: Uint8Array): Promise<boolean> {
    return (await this.#db.execute('UPDATE identity_login_state SET data = $1 WHERE handle = $2 AND kind = $3', [Buffer.from(data), handle, kind])) > 0;
  }

  purgeExpired(now: number): Promise<number> {
    return this.#db.execute('DELETE FROM identity_login_state WHERE expires_at <= $1', [now]);
  }

  async count(): Promise<number> {
    return (await this.#db.one<{ n: number }>('SELECT COUNT(*)::int AS n FROM identity_login_state'))!.n;
  }
}
