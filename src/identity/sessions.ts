// Session tokens: what a caller holds after proving itself. An EdDSA JWT from the broker's
// `session` key carrying who (sub) and how it was proved (authn) — never what it may do: every
// action is decided again against current policy, so privileges cannot drift after login.
// Revocation (by jti, or by identity with a cut-off time) is checked on every use from memory.
import { randomBytes } from 'node:crypto';
import type { Db } from '../store/sqlite/db.ts';
import type { Clock } from '../common/clock.ts';
import { nowSeconds, systemClock } from '../common/clock.ts';
import type { Keyring } from '../crypto/keyring.ts';
import type { AuthnFacts } from './types.ts';
import { InvalidInput } from '../common/errors.ts';
import { fail } from './reasons.ts';
import { validateJwt } from './jwt.ts';
import { migrateIdentity } from './migrations.ts';
import { SESSION_TOKEN_TYPE, SESSION_TTL_CAP_MS } from './session-claims.ts';
import { AUTHN_METHODS as KNOWN_AUTHN_METHODS } from './trusts/registry.ts';
import type { SessionClaims } from './session-claims.ts';

export { SESSION_TOKEN_TYPE, SESSION_TTL_CAP_MS } from './session-claims.ts';
export type { SessionClaims } from './session-claims.ts';

/** Clock skew tolerated between broker replicas. */
const LEEWAY_SECONDS = 5;
const AUTHN_METHODS = new Set<string>(KNOWN_AUTHN_METHODS);

export interface SessionServiceOptions {
  db: Db;
  keyring: Keyring;
  /** The broker's URL; `iss` of every session token. */
  issuer: string;
  /** Requested TTL (capped at 15 min). Default 10 min. */
  ttlMs?: number;
  clock?: Clock;
  /** Verified tokens remembered to skip signature checks (default 10,000). */
  cacheSize?: number;
}

export interface IssuedSession {
  token: string;
  jti: string;
  /** ms since the epoch. */
  expiresAt: number;
  claims: SessionClaims;
}

export interface VerifiedSession {
  identityId: string;
  jti: string;
  facts: AuthnFacts;
  claims: SessionClaims;
  kid: string;
}

export class SessionService {
  readonly issuer: string;
  /** Effective TTL after the cap. */
  readonly ttlMs: number;
  readonly #db: Db;
  readonly #keyring: Keyring;
  readonly #clock: Clock;
  readonly #cacheSize: number;
  readonly #revokedJti = new Map<string, number>(); // jti → expires_at (s)
  readonly #cutoffs = new Map<string, number>(); // identity → revoked_before (s)
  readonly #verified = new Map<string, { claims: SessionClaims; kid: string }>();

  static open(options: SessionServiceOptions): SessionService {
    migrateIdentity(options.db);
    return new SessionService(options);
  }

  private constructor(o: SessionServiceOptions) {
    this.#db = o.db;
    this.#keyring = o.keyring;
    this.#clock = o.clock ?? systemClock;
    this.issuer = o.issuer;
    const ttl = o.ttlMs ?? 10 * 60_000;
    if (!Number.isFinite(ttl) || ttl < 1000) throw new RangeError('session ttl must be at least 1s');
    this.ttlMs = Math.min(ttl, SESSION_TTL_CAP_MS);
    this.#cacheSize = o.cacheSize ?? 10_000;
    this.purgeExpired();
    for (const r of this.#db.prepare('SELECT jti, expires_at FROM identity_session_revocations').all() as { jti: string; expires_at: number }[]) {
      this.#revokedJti.set(r.jti, r.expires_at);
    }
    for (const r of this.#db.prepare('SELECT identity_id, revoked_before FROM identity_session_cutoffs').all() as { identity_id: string; revoked_before: number }[]) {
      this.#cutoffs.set(r.identity_id, r.revoked_before);
    }
  }

  /** Mints a session token for a verified identity. `ttlMs` may only shorten the configured TTL. */
  async issue(
    subject: { identityId: string; facts: AuthnFacts; attributes?: Record<string, string | number | boolean> },
    ttlMs?: number,
  ): Promise<IssuedSession> {
    const ttl = Math.min(ttlMs ?? this.ttlMs, this.ttlMs);
    const now = nowSeconds(this.#clock);
    // A token minted in the same second as an identity-wide revocation would fall under it
    // (iat <= cut-off); stamp it one second later so a re-admitted identity can log in at once.
    const cutoff = this.#cutoffs.get(subject.identityId);
    const iat = cutoff !== undefined && cutoff >= now ? cutoff + 1 : now;
    const claims: SessionClaims = {
      iss: this.issuer,
      aud: this.issuer,
      sub: subject.identityId,
      jti: randomBytes(16).toString('base64url'),
      iat,
      exp: now + Math.max(1, Math.floor(ttl / 1000)),
      authn: { ...subject.facts },
      ...(subject.attributes !== undefined && Object.keys(subject.attributes).length > 0 ? { attrs: { ...subject.attributes } } : {}),
    };
    const token = await this.#keyring.signJwt('session', { ...claims }, { typ: SESSION_TOKEN_TYPE });
    return { token, jti: claims.jti, expiresAt: claims.exp * 1000, claims };
  }

  /** Number of tokens in the verification cache (bounded by `cacheSize`). */
  get cachedTokens(): number {
    return this.#verified.size;
  }

  /** Verifies a session token (session key, typ, iss, aud, exp, lifetime) and that it was not revoked. */
  async verify(token: string): Promise<VerifiedSession> {
    const now = nowSeconds(this.#clock);
    let hit = this.#verified.get(token);
    // A key retired early (compromise) must also kill cached tokens it signed.
    if (hit !== undefined && this.#keyring.verificationKey(hit.kid, 'session') === undefined) {
      this.#verified.delete(token);
      throw fail('unknown_kid', 'signing key is no longer valid');
    }
    if (hit === undefined) {
      hit = await this.#verifySignature(token, now);
    } else if (hit.claims.exp <= now - LEEWAY_SECONDS) {
      this.#verified.delete(token);
      throw fail('expired', `expired at ${hit.claims.exp}, now ${now}`);
    }
    const c = hit.claims;
    if (this.#revokedJti.has(c.jti)) throw fail('revoked', 'session token was revoked');
    const cutoff = this.#cutoffs.get(c.sub);
    if (cutoff !== undefined && c.iat <= cutoff) throw fail('revoked', 'sessions of this identity were revoked');
    return { identityId: c.sub, jti: c.jti, facts: c.authn, claims: c, kid: hit.kid };
  }

  async #verifySignature(token: string, now: number): Promise<{ claims: SessionClaims; kid: string }> {
    let kid = '';
    // Only the keyring's `session` keys verify: an access token (signed by a `token` key) is
    // refused by its key whatever its claims say; typ and aud are checked as well.
    const jwt = await validateJwt(token, {
      algorithms: ['EdDSA'],
      issuer: this.issuer,
      audiences: [this.issuer],
      leewaySeconds: LEEWAY_SECONDS,
      nowSeconds: now,
      maxLifetimeSeconds: Math.ceil(SESSION_TTL_CAP_MS / 1000) + LEEWAY_SECONDS,
      typ: (typ) => (typ === SESSION_TOKEN_TYPE ? undefined : 'not a session token'),
      requiredClaims: ['sub', 'jti', 'iat'],
    }, async (h) => {
      if (typeof h.kid !== 'string') throw fail('unknown_kid', 'session token has no kid');
      const key = this.#keyring.verificationKey(h.kid, 'session');
      if (key === undefined) throw fail('unknown_kid', 'no valid session key has this kid');
      kid = h.kid;
      return key;
    });
    if (jwt.audience !== this.issuer || (Array.isArray(jwt.claims.aud) && jwt.claims.aud.length !== 1)) throw fail('wrong_audience', 'a session token is for this broker alone');
    const claims = validateClaims(jwt.claims);
    if (this.#verified.size >= this.#cacheSize) {
      // Maps iterate in insertion order: drop the oldest entry.
      this.#verified.delete(this.#verified.keys().next().value!);
    }
    const entry = { claims, kid };
    this.#verified.set(token, entry);
    return entry;
  }

  /** Revokes one session token. `expiresAt` (s) bounds how long the entry is kept. */
  revokeJti(jti: string, options: { identityId?: string; expiresAt?: number } = {}): void {
    if (typeof jti !== 'string' || jti.length === 0 || jti.length > 256) throw new InvalidInput('jti must be a string of 1-256 characters', 'jti');
    const now = nowSeconds(this.#clock);
    const exp = options.expiresAt ?? now + Math.ceil(SESSION_TTL_CAP_MS / 1000) + LEEWAY_SECONDS;
    this.#db
      .prepare('INSERT INTO identity_session_revocations (jti, identity_id, revoked_at, expires_at) VALUES (?, ?, ?, ?) ON CONFLICT (jti) DO NOTHING')
      .run(jti, options.identityId ?? null, now, exp);
    this.#revokedJti.set(jti, exp);
  }

  /** Revokes every session token of an identity issued up to now (suspension, offboarding). */
  revokeIdentity(identityId: string): void {
    const now = nowSeconds(this.#clock);
    const before = Math.max(now, this.#cutoffs.get(identityId) ?? 0);
    this.#db
      .prepare('INSERT INTO identity_session_cutoffs (identity_id, revoked_before) VALUES (?, ?) ON CONFLICT (identity_id) DO UPDATE SET revoked_before = excluded.revoked_before')
      .run(identityId, before);
    this.#cutoffs.set(identityId, before);
  }

  /** Drops revocation entries of tokens that have expired anyway. */
  purgeExpired(): number {
    const now = nowSeconds(this.#clock) - LEEWAY_SECONDS;
    const r = this.#db.prepare('DELETE FROM identity_session_revocations WHERE expires_at < ?').run(now);
    for (const [jti, exp] of this.#revokedJti) if (exp < now) this.#revokedJti.delete(jti);
    for (const [token, v] of this.#verified) if (v.claims.exp < now) this.#verified.delete(token);
    return Number(r.changes);
  }
}

function validateClaims(c: Record<string, unknown>): SessionClaims {
  const a = c.authn as Record<string, unknown> | undefined;
  const ok =
    typeof c.sub === 'string' && c.sub.length > 0 && typeof c.jti === 'string' && typeof c.iat === 'number' && typeof c.exp === 'number' &&
    a !== null && typeof a === 'object' && typeof a.method === 'string' && AUTHN_METHODS.has(a.method) && typeof a.trust === 'string' &&
    typeof a.mfa === 'boolean' && (a.assurance === 'low' || a.assurance === 'medium' || a.assurance === 'high') && typeof a.auth_time === 'number';
  if (!ok) throw fail('malformed', 'session token claims are incomplete');
  const attrs = c.attrs;
  if (attrs !== undefined) {
    const scalar = (v: unknown) => typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';
    if (attrs === null || typeof attrs !== 'object' || Array.isArray(attrs) || !Object.values(attrs).every(scalar)) {
      throw fail('malformed', 'session token attrs are not scalar');
    }
  }
  return {
    iss: c.iss as string,
    aud: c.aud as string,
    sub: c.sub as string,
    jti: c.jti as string,
    iat: c.iat as number,
    exp: c.exp as number,
    authn: a as unknown as AuthnFacts,
    ...(attrs !== undefined ? { attrs: attrs as Record<string, string | number | boolean> } : {}),
  };
}
