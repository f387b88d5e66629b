// Portcullis-minted API keys for legacy callers that cannot do federation. Allowed but marked:
// their proofs carry `method: "api-key", assurance: "low"` so policies and posture can treat
// them as weaker. Only an HMAC of the key (server pepper sealed in the keyring) is stored; every
// key expires (capped) and has a rotation due date.
//
// Rotation mints a new key (new id) and shortens the old key's life to a grace period (default
// 1 h, 0 for "now") so a legacy caller can redeploy without an outage; a leaked key is revoked,
// not rotated.
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Db } from '../store/sqlite/db.ts';
import { transaction } from '../store/sqlite/db.ts';
import type { Clock } from '../common/clock.ts';
import { systemClock } from '../common/clock.ts';
import { Conflict, InvalidInput, NotFound } from '../common/errors.ts';
import type { Keyring } from '../crypto/keyring.ts';
import type { IdentityKind, Proof, TrustVerifier, VerifiedProof } from './types.ts';
import { fail } from './reasons.ts';
import { apiKeyId, generateApiKey, looksLikeApiKey, API_KEY_PREFIX } from './apikey-format.ts';
import { migrateIdentity } from './migrations.ts';

export { looksLikeApiKey, findApiKeys, API_KEY_PREFIX, API_KEY_PATTERN } from './apikey-format.ts';

export const APIKEY_TRUST = 'apikey';
const DAY = 86_400_000;
/** last_used_at is written at most this often per key (keeps logins off the write path). */
const TOUCH_EVERY_MS = 60_000;

export type ApiKeyStatus = 'active' | 'expired' | 'revoked';

/** What listings show; never the key or its hash. Times are ISO-8601. */
export interface ApiKeyRecord {
  id: string;
  identity_id: string;
  description: string;
  status: ApiKeyStatus;
  created_at: string;
  expires_at: string;
  rotate_by: string;
  rotation_due: boolean;
  revoked_at?: string;
  rotated_from?: string;
  replaced_by?: string;
  last_used_at?: string;
}

export interface ApiKeyServiceOptions {
  db: Db;
  keyring: Keyring;
  clock?: Clock;
  /** Hard cap on a key's lifetime (default 90 d). */
  maxTtlMs?: number;
  /** Rotation due after this long unless the mint says sooner (default 30 d). */
  defaultRotationMs?: number;
  /** How long a rotated-out key keeps working (default 1 h). */
  rotationGraceMs?: number;
}

export interface MintInput {
  identityId: string;
  /** Defaults to the max TTL; capped by it. */
  ttlMs?: number;
  rotationMs?: number;
  description?: string;
  identityKind?: IdentityKind;
}

interface Row {
  id: string;
  identity_id: string;
  identity_kind: string;
  name: string;
  hash: Uint8Array;
  created_at: number;
  expires_at: number;
  rotation_due_at: number;
  revoked_at: number | null;
  revoked_reason: string | null;
  rotated_from: string | null;
  replaced_by: string | null;
  last_used_at: number | null;
}

const iso = (ms: number) => new Date(ms).toISOString();

export class ApiKeyService {
  readonly maxTtlMs: number;
  readonly defaultRotationMs: number;
  readonly rotationGraceMs: number;
  readonly #db: Db;
  readonly #clock: Clock;
  readonly #pepper: Uint8Array;

  static open(options: ApiKeyServiceOptions): ApiKeyService {
    migrateIdentity(options.db);
    return new ApiKeyService(options);
  }

  private constructor(o: ApiKeyServiceOptions) {
    this.#db = o.db;
    this.#clock = o.clock ?? systemClock;
    this.#pepper = o.keyring.secret('apikey-pepper');
    this.maxTtlMs = o.maxTtlMs ?? 90 * DAY;
    this.defaultRotationMs = o.defaultRotationMs ?? 30 * DAY;
    this.rotationGraceMs = o.rotationGraceMs ?? 3_600_000;
  }

  #hash(key: string): Buffer {
    return createHmac('sha256', this.#pepper).update(key).digest();
  }

  #record(r: Row, now = this.#clock.now()): ApiKeyRecord {
    const status: ApiKeyStatus = r.revoked_at !== null ? 'revoked' : now >= r.expires_at ? 'expired' : 'active';
    return {
      id: r.id,
      identity_id: r.identity_id,
      description: r.name,
      status,
      created_at: iso(r.created_at),
      expires_at: iso(r.expires_at),
      rotate_by: iso(r.rotation_due_at),
      rotation_due: status === 'active' && r.replaced_by === null && now >= r.rotation_due_at,
      ...(r.revoked_at !== null ? { revoked_at: iso(r.revoked_at) } : {}),
      ...(r.rotated_from !== null ? { rotated_from: r.rotated_from } : {}),
      ...(r.replaced_by !== null ? { replaced_by: r.replaced_by } : {}),
      ...(r.last_used_at !== null ? { last_used_at: iso(r.last_used_at) } : {}),
    };
  }

  #row(id: string): Row | undefined {
    return this.#db.prepare('SELECT * FROM identity_apikeys WHERE id = ?').get(id) as Row | undefined;
  }

  /** Mints a key. The secret is in the result once and nowhere else, ever. */
  mint(input: MintInput, rotatedFrom?: string): { key: string; record: ApiKeyRecord } {
    if (typeof input.identityId !== 'string' || input.identityId.length === 0) throw new InvalidInput('identity is required', 'identity');
    const ttl = input.ttlMs ?? this.maxTtlMs;
    if (!Number.isFinite(ttl) || ttl <= 0) throw new InvalidInput('ttl must be positive', 'ttl');
    if (ttl > this.maxTtlMs) throw new InvalidInput(`ttl exceeds the maximum of ${Math.round(this.maxTtlMs / DAY)} days`, 'ttl', { max_ms: this.maxTtlMs });
    const rotation = Math.min(input.rotationMs ?? this.defaultRotationMs, ttl);
    if (!Number.isFinite(rotation) || rotation <= 0) throw new InvalidInput('rotate_after must be positive', 'rotate_after');
    const description = (input.description ?? '').slice(0, 200);
    const now = this.#clock.now();
    const { key, id } = generateApiKey();
    this.#db
      .prepare(
        `INSERT INTO identity_apikeys (id, identity_id, identity_kind, name, hash, created_at, expires_at, rotation_due_at, rotated_from)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(id, input.identityId, input.identityKind ?? 'service-account', description, this.#hash(key), now, now + ttl, now + rotation, rotatedFrom ?? null);
    return { key, record: this.#record(this.#row(id)!, now) };
  }

  get(id: string): ApiKeyRecord | undefined {
    const r = this.#row(id);
    return r === undefined ? undefined : this.#record(r);
  }

  list(identityId?: string): ApiKeyRecord[] {
    const rows = (
      identityId === undefined
        ? this.#db.prepare('SELECT * FROM identity_apikeys ORDER BY created_at, id').all()
        : this.#db.prepare('SELECT * FROM identity_apikeys WHERE identity_id = ? ORDER BY created_at, id').all(identityId)
    ) as unknown as Row[];
    const now = this.#clock.now();
    return rows.map((r) => this.#record(r, now));
  }

  /**
   * A new key for the same identity (same TTL as the old one had, capped); the old key keeps
   * working for `graceMs` (default: the service's grace) and then expires.
   */
  rotate(id: string, options: { graceMs?: number; ttlMs?: number } = {}): { key: string; record: ApiKeyRecord; previous: ApiKeyRecord } {
    const grace = options.graceMs ?? this.rotationGraceMs;
    if (!Number.isFinite(grace) || grace < 0 || grace > DAY) throw new InvalidInput('grace must be between 0 and 24h', 'grace');
    return transaction(this.#db, () => {
      const old = this.#row(id);
      if (old === undefined) throw new NotFound(`api key ${id}`);
      const now = this.#clock.now();
      if (old.revoked_at !== null || now >= old.expires_at) throw new Conflict(`api key ${id} is not active`);
      if (old.replaced_by !== null) throw new Conflict(`api key ${id} was already rotated (to ${old.replaced_by})`);
      const minted = this.mint(
        {
          identityId: old.identity_id,
          identityKind: old.identity_kind as IdentityKind,
          ttlMs: Math.min(options.ttlMs ?? old.expires_at - old.created_at, this.maxTtlMs),
          rotationMs: old.rotation_due_at - old.created_at,
          description: old.name,
        },
        id,
      );
      this.#db
        .prepare('UPDATE identity_apikeys SET replaced_by = ?, expires_at = MIN(expires_at, ?) WHERE id = ?')
        .run(minted.record.id, now + grace, id);
      return { ...minted, previous: this.#record(this.#row(id)!, now) };
    });
  }

  /** Revokes at once (idempotent). */
  revoke(id: string, reason = ''): ApiKeyRecord {
    const now = this.#clock.now();
    const r = this.#db
      .prepare('UPDATE identity_apikeys SET revoked_at = ?, revoked_reason = ? WHERE id = ? AND revoked_at IS NULL')
      .run(now, reason.slice(0, 200), id);
    const row = this.#row(id);
    if (row === undefined) throw new NotFound(`api key ${id}`);
    void r;
    return this.#record(row, now);
  }

  /** Revokes every unrevoked key of an identity (offboarding); returns their ids. */
  revokeAllFor(identityId: string, reason = 'identity offboarded'): string[] {
    return transaction(this.#db, () => {
      const ids = (this.#db.prepare('SELECT id FROM identity_apikeys WHERE identity_id = ? AND revoked_at IS NULL').all(identityId) as { id: string }[]).map((r) => r.id);
      for (const id of ids) this.revoke(id, reason);
      return ids;
    });
  }

  /** Checks a presented key; throws AuthenticationFailed with a precise reason. */
  authenticate(key: string): VerifiedProof {
    if (typeof key !== 'string' || key.length > 128) throw fail('malformed', 'api key is not a short string');
    if (!key.startsWith(API_KEY_PREFIX)) throw fail('malformed', 'api key lacks the pcx_ prefix');
    if (!looksLikeApiKey(key)) throw fail('malformed', 'api key shape or checksum is wrong');
    const id = apiKeyId(key);
    const row = this.#row(id);
    const presented = this.#hash(key);
    if (row === undefined) throw fail('unknown_key', `no api key ${id}`);
    const stored = Buffer.from(row.hash);
    if (stored.length !== presented.length || !timingSafeEqual(stored, presented)) throw fail('bad_secret', `secret does not match api key ${id}`);
    const now = this.#clock.now();
    if (row.revoked_at !== null) throw fail('revoked', `api key ${id} was revoked`);
    if (now >= row.expires_at) throw fail('expired', `api key ${id} expired at ${iso(row.expires_at)}`);
    if (row.last_used_at === null || now - row.last_used_at >= TOUCH_EVERY_MS) {
      this.#db.prepare('UPDATE identity_apikeys SET last_used_at = ? WHERE id = ?').run(now, id);
    }
    const overdue = now >= row.rotation_due_at;
    return {
      identityId: row.identity_id,
      kind: row.identity_kind as IdentityKind,
      facts: { method: 'api-key', trust: APIKEY_TRUST, mfa: false, assurance: 'low', auth_time: Math.floor(now / 1000) },
      attributes: { api_key_id: id, api_key_rotation_due: overdue },
      defaults: {},
      issued: true,
      evidence: { trust: APIKEY_TRUST, key_id: id, rotation_due: overdue, expires_at: iso(row.expires_at), ...(row.replaced_by !== null ? { replaced_by: row.replaced_by } : {}) },
    };
  }

  /** The `apikey` trust verifier for the authenticator. */
  verifier(): TrustVerifier {
    return new ApiKeyTrust(this);
  }
}

export class ApiKeyTrust implements TrustVerifier {
  readonly name = APIKEY_TRUST;
  readonly kind = 'apikey' as const;
  readonly #service: ApiKeyService;
  constructor(service: ApiKeyService) {
    this.#service = service;
  }
  accepts(proof: Proof): boolean {
    return proof.type === 'api_key';
  }
  async verify(proof: Proof): Promise<VerifiedProof> {
    if (proof.type !== 'api_key') throw fail('malformed', 'not an api key proof');
    return this.#service.authenticate(proof.key);
  }
}
