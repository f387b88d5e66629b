// Portcullis-minted API keys for legacy callers that cannot do federation. Allowed but marked:
// their proofs carry `method: "api-key", assurance: "low"` so policies and posture can treat
// them as weaker. Only an HMAC of the key (server pepper sealed in the keyring) is stored; every
// key expires (capped) and has a rotation due date.
//
// Rotation mints a new key (new id) and shortens the old key's life to a grace period (default
// 1 h, 0 for "now") so a legacy caller can redeploy without an outage; a leaked key is revoked,
// not rotated.
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { UnitOfWork } from '../store/ports.ts';
import type { ApiKeyRepository, StoredApiKey } from './ports.ts';
import type { Clock } from '../common/clock.ts';
import { systemClock } from '../common/clock.ts';
import { Conflict, InvalidInput, NotFound } from '../common/errors.ts';
import type { Keyring } from '../crypto/keyring.ts';
import type { IdentityKind, Proof, TrustVerifier, VerifiedProof } from './types.ts';
import { fail } from './reasons.ts';
import { apiKeyId, generateApiKey, looksLikeApiKey, API_KEY_PREFIX } from './apikey-format.ts';

export { looksLikeApiKey, findApiKeys } from './apikey-format.ts';

const APIKEY_TRUST = 'apikey';
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
  /** Where keys are kept (`store.identity.apiKeys`). */
  repository: ApiKeyRepository;
  /** Rotation reads, checks and writes a key as one unit (the store). */
  unitOfWork: UnitOfWork;
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

const iso = (ms: number) => new Date(ms).toISOString();

export class ApiKeyService {
  readonly maxTtlMs: number;
  readonly defaultRotationMs: number;
  readonly rotationGraceMs: number;
  readonly #keys: ApiKeyRepository;
  readonly #uow: UnitOfWork;
  readonly #clock: Clock;
  readonly #pepper: Uint8Array;

  static open(options: ApiKeyServiceOptions): ApiKeyService {
    return new ApiKeyService(options);
  }

  private constructor(o: ApiKeyServiceOptions) {
    this.#keys = o.repository;
    this.#uow = o.unitOfWork;
    this.#clock = o.clock ?? systemClock;
    this.#pepper = o.keyring.secret('apikey-pepper');
    this.maxTtlMs = o.maxTtlMs ?? 90 * DAY;
    this.defaultRotationMs = o.defaultRotationMs ?? 30 * DAY;
    this.rotationGraceMs = o.rotationGraceMs ?? 3_600_000;
  }

  #hash(key: string): Buffer {
    return createHmac('sha256', this.#pepper).update(key).digest();
  }

  #record(r: StoredApiKey, now = this.#clock.now()): ApiKeyRecord {
    const status: ApiKeyStatus = r.revokedAt !== undefined ? 'revoked' : now >= r.expiresAt ? 'expired' : 'active';
    return {
      id: r.id,
      identity_id: r.identityId,
      description: r.description,
      status,
      created_at: iso(r.createdAt),
      expires_at: iso(r.expiresAt),
      rotate_by: iso(r.rotationDueAt),
      rotation_due: status === 'active' && r.replacedBy === undefined && now >= r.rotationDueAt,
      ...(r.revokedAt !== undefined ? { revoked_at: iso(r.revokedAt) } : {}),
      ...(r.rotatedFrom !== undefined ? { rotated_from: r.rotatedFrom } : {}),
      ...(r.replacedBy !== undefined ? { replaced_by: r.replacedBy } : {}),
      ...(r.lastUsedAt !== undefined ? { last_used_at: iso(r.lastUsedAt) } : {}),
    };
  }

  /** Mints a key. The secret is in the result once and nowhere else, ever. */
  async mint(input: MintInput, rotatedFrom?: string): Promise<{ key: string; record: ApiKeyRecord }> {
    if (typeof input.identityId !== 'string' || input.identityId.length === 0) throw new InvalidInput('identity is required', 'identity');
    const ttl = input.ttlMs ?? this.maxTtlMs;
    if (!Number.isFinite(ttl) || ttl <= 0) throw new InvalidInput('ttl must be positive', 'ttl');
    if (ttl > this.maxTtlMs) throw new InvalidInput(`ttl exceeds the maximum of ${Math.round(this.maxTtlMs / DAY)} days`, 'ttl', { max_ms: this.maxTtlMs });
    const rotation = Math.min(input.rotationMs ?? this.defaultRotationMs, ttl);
    if (!Number.isFinite(rotation) || rotation <= 0) throw new InvalidInput('rotate_after must be positive', 'rotate_after');
    const description = (input.description ?? '').slice(0, 200);
    const now = this.#clock.now();
    const { key, id } = generateApiKey();
    const stored: StoredApiKey = {
      id,
      identityId: input.identityId,
      identityKind: input.identityKind ?? 'service-account',
      description,
      hash: this.#hash(key),
      createdAt: now,
      expiresAt: now + ttl,
      rotationDueAt: now + rotation,
      ...(rotatedFrom !== undefined && { rotatedFrom }),
    };
    await this.#keys.insert(stored);
    return { key, record: this.#record(stored, now) };
  }

  async get(id: string): Promise<ApiKeyRecord | undefined> {
    const r = await this.#keys.get(id);
    return r === undefined ? undefined : this.#record(r);
  }

  async list(identityId?: string): Promise<ApiKeyRecord[]> {
    const rows = await this.#keys.list(identityId);
    const now = this.#clock.now();
    return rows.map((r) => this.#record(r, now));
  }

  /**
   * A new key for the same identity (same TTL as the old one had, capped); the old key keeps
   * working for `graceMs` (default: the service's grace) and then expires.
   */
  async rotate(id: string, options: { graceMs?: number; ttlMs?: number } = {}): Promise<{ key: string; record: ApiKeyRecord; previous: ApiKeyRecord }> {
    const grace = options.graceMs ?? this.rotationGraceMs;
    if (!Number.isFinite(grace) || grace < 0 || grace > DAY) throw new InvalidInput('grace must be between 0 and 24h', 'grace');
    return this.#uow.transaction(async () => {
      // Two rotations of one key at once (two replicas): the second sees replaced_by and stops.
      await this.#uow.lock(`identity:apikey:${id}`);
      const old = await this.#keys.get(id);
      if (old === undefined) throw new NotFound(`api key ${id}`);
      const now = this.#clock.now();
      if (old.revokedAt !== undefined || now >= old.expiresAt) throw new Conflict(`api key ${id} is not active`);
      if (old.replacedBy !== undefined) throw new Conflict(`api key ${id} was already rotated (to ${old.replacedBy})`);
      const minted = await this.mint(
        {
          identityId: old.identityId,
          identityKind: old.identityKind,
          ttlMs: Math.min(options.ttlMs ?? old.expiresAt - old.createdAt, this.maxTtlMs),
          rotationMs: old.rotationDueAt - old.createdAt,
          description: old.description,
        },
        id,
      );
      await this.#keys.markReplaced(id, minted.record.id, now + grace);
      return { ...minted, previous: this.#record((await this.#keys.get(id))!, now) };
    });
  }

  /** Revokes at once (idempotent). */
  async revoke(id: string, reason = ''): Promise<ApiKeyRecord> {
    const now = this.#clock.now();
    await this.#keys.revoke(id, now, reason.slice(0, 200));
    const row = await this.#keys.get(id);
    if (row === undefined) throw new NotFound(`api key ${id}`);
    return this.#record(row, now);
  }

  /** Revokes every unrevoked key of an identity (offboarding); returns their ids. */
  revokeAllFor(identityId: string, reason = 'identity offboarded'): Promise<string[]> {
    return this.#uow.transaction(async () => {
      const ids = await this.#keys.unrevokedIds(identityId);
      for (const id of ids) await this.revoke(id, reason);
      return ids;
    });
  }

  /** Checks a presented key; throws AuthenticationFailed with a precise reason. */
  async authenticate(key: string): Promise<VerifiedProof> {
    if (typeof key !== 'string' || key.length > 128) throw fail('malformed', 'api key is not a short string');
    if (!key.startsWith(API_KEY_PREFIX)) throw fail('malformed', 'api key lacks the pcx_ prefix');
    if (!looksLikeApiKey(key)) throw fail('malformed', 'api key shape or checksum is wrong');
    const id = apiKeyId(key);
    const row = await this.#keys.get(id);
    const presented = this.#hash(key);
    if (row === undefined) throw fail('unknown_key', `no api key ${id}`);
    const stored = Buffer.from(row.hash);
    if (stored.length !== presented.length || !timingSafeEqual(stored, presented)) throw fail('bad_secret', `secret does not match api key ${id}`);
    const now = this.#clock.now();
    if (row.revokedAt !== undefined) throw fail('revoked', `api key ${id} was revoked`);
    if (now >= row.expiresAt) throw fail('expired', `api key ${id} expired at ${iso(row.expiresAt)}`);
    if (row.lastUsedAt === undefined || now - row.lastUsedAt >= TOUCH_EVERY_MS) await this.#keys.touch(id, now);
    const overdue = now >= row.rotationDueAt;
    return {
      identityId: row.identityId,
      kind: row.identityKind,
      facts: { method: 'api-key', trust: APIKEY_TRUST, mfa: false, assurance: 'low', auth_time: Math.floor(now / 1000) },
      attributes: { api_key_id: id, api_key_rotation_due: overdue },
      defaults: {},
      issued: true,
      evidence: { trust: APIKEY_TRUST, key_id: id, rotation_due: overdue, expires_at: iso(row.expiresAt), ...(row.replacedBy !== undefined ? { replaced_by: row.replacedBy } : {}) },
    };
  }

  /** The `apikey` trust verifier for the authenticator. */
  verifier(): TrustVerifier {
    return new ApiKeyTrust(this);
  }
}

class ApiKeyTrust implements TrustVerifier {
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
