// PostgreSQL implementation of the identity domain's storage ports (src/identity/ports.ts): session
// revocations, API keys, seen token ids and pending human logins, shared by every replica (no
// state kept in memory here).
import type { ApiKeyRepository, IdentityStore, LoginStateKind, LoginStateRepository, PendingLoginState, ReplayRepository, RevokedSession, SessionCutoff, SessionRepository, StoredApiKey } from '../../identity/ports.ts';
import { PG_SQL, type PgDb, type PgDomainMigrations } from './db.ts';
import { API_KEY_COLUMN_NAMES, API_KEY_COLUMNS, apiKeyFromRow, apiKeyValues, cutoffFromRow, loginStateFromRow, revocationFromRow, type ApiKeyRow as SharedApiKeyRow, type CutoffRow, type LoginStateRow as SharedLoginStateRow, type RevocationRow } from '../rows/identity.ts';
import { placeholders } from '../rows/sql.ts';

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
    const jtis = (await this.#db.query<RevocationRow>('SELECT jti, identity_id, revoked_at, expires_at FROM identity_session_revocations')).map(revocationFromRow);
    const cutoffs = (await this.#db.query<CutoffRow>('SELECT identity_id, revoked_before FROM identity_session_cutoffs')).map(cutoffFromRow);
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

type ApiKeyRow = SharedApiKeyRow<Buffer>;
type LoginStateRow = SharedLoginStateRow<Buffer>;

/** BYTEA comes back as a Buffer over pg's pool: the domain gets a plain Uint8Array (a copy), as SQLite gives. */
const copy = (b: Buffer): Uint8Array => new Uint8Array(b);
/** And is bound as a Buffer. */
const blob = (u: Uint8Array): Buffer => Buffer.from(u);

class PgApiKeyRepository implements ApiKeyRepository {
  readonly #db: PgDb;

  constructor(db: PgDb) {
    this.#db = db;
  }

  async insert(k: StoredApiKey): Promise<void> {
    await this.#db.execute(
      `INSERT INTO identity_apikeys (${API_KEY_COLUMNS}) VALUES (${placeholders(PG_SQL, API_KEY_COLUMN_NAMES.length)})`,
      apiKeyValues(k, blob),
    );
  }

  async get(id: string): Promise<StoredApiKey | undefined> {
    const r = await this.#db.one<ApiKeyRow>(`SELECT ${API_KEY_COLUMNS} FROM identity_apikeys WHERE id = $1`, [id]);
    return r === undefined ? undefined : apiKeyFromRow(r, copy);
  }

  async list(identityId?: string): Promise<StoredApiKey[]> {
    const rows =
      identityId === undefined
        ? await this.#db.query<ApiKeyRow>(`SELECT ${API_KEY_COLUMNS} FROM identity_apikeys ORDER BY created_at, id`)
        : await this.#db.query<ApiKeyRow>(`SELECT ${API_KEY_COLUMNS} FROM identity_apikeys WHERE identity_id = $1 ORDER BY created_at, id`, [identityId]);
    return rows.map((r) => apiKeyFromRow(r, copy));
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
      await this.#db.execute('INSERT INTO identity_login_state (handle, kind, data, expires_at) VALUES ($1, $2, $3, $4)', [e.handle, e.kind, blob(e.data), e.expiresAt]);
      return true;
    });
  }

  async take(handle: string, kind: LoginStateKind): Promise<PendingLoginState | undefined> {
    // One statement: of two replicas deleting the same row at once, the second waits on the
    // first's row lock, then finds it gone and returns nothing.
    const r = await this.#db.one<LoginStateRow>('DELETE FROM identity_login_state WHERE handle = $1 AND kind = $2 RETURNING handle, kind, data, expires_at', [handle, kind]);
    return r === undefined ? undefined : loginStateFromRow(r, copy);
  }

  async get(handle: string, kind: LoginStateKind): Promise<PendingLoginState | undefined> {
    const r = await this.#db.one<LoginStateRow>('SELECT handle, kind, data, expires_at FROM identity_login_state WHERE handle = $1 AND kind = $2', [handle, kind]);
    return r === undefined ? undefined : loginStateFromRow(r, copy);
  }

  async update(handle: string, kind: LoginStateKind, data: Uint8Array): Promise<boolean> {
    return (await this.#db.execute('UPDATE identity_login_state SET data = $1 WHERE handle = $2 AND kind = $3', [blob(data), handle, kind])) > 0;
  }

  purgeExpired(now: number): Promise<number> {
    return this.#db.execute('DELETE FROM identity_login_state WHERE expires_at <= $1', [now]);
  }

  async count(): Promise<number> {
    return (await this.#db.one<{ n: number }>('SELECT COUNT(*)::int AS n FROM identity_login_state'))!.n;
  }
}
