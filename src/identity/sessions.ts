// Session tokens: what a caller holds after proving itself. An EdDSA JWT from the broker's
// `session` key carrying who (sub) and how it was proved (authn) — never what it may do: every
// action is decided again against current policy, so privileges cannot drift after login.
// Revocation (by jti, or by identity with a cut-off time) is checked on every use from memory.
import { randomBytes } from 'node:crypto';
import type { SessionRepository } from './ports.ts';
import type { ChangeFeed, UnitOfWork } from '../store/ports.ts';
import type { Clock } from '../common/clock.ts';
import { nowSeconds, systemClock } from '../common/clock.ts';
import type { Keyring } from '../crypto/keyring.ts';
import type { AuthnFacts } from './types.ts';
import { InvalidInput } from '../common/errors.ts';
import { fail } from './reasons.ts';
import { validateJwt } from './jwt.ts';
import { SESSION_TOKEN_TYPE, SESSION_TTL_CAP_MS } from './session-claims.ts';
import { AUTHN_METHODS as KNOWN_AUTHN_METHODS } from './trusts/registry.ts';
import type { SessionClaims } from './session-claims.ts';

export { SESSION_TOKEN_TYPE, SESSION_TTL_CAP_MS } from './session-claims.ts';

/** Clock skew tolerated between broker replicas. */
const LEEWAY_SECONDS = 5;
const AUTHN_METHODS = new Set<string>(KNOWN_AUTHN_METHODS);

export interface SessionServiceOptions {
  /** Where revocations are kept (`store.identity.sessions`). */
  repository: SessionRepository;
  keyring: Keyring;
  /** The broker's URL; `iss` of every session token. */
  issuer: string;
  /** Requested TTL (capped at 15 min). Default 10 min. */
  ttlMs?: number;
  clock?: Clock;
  /** Verified tokens remembered to skip signature checks (default 10,000). */
  cacheSize?: number;
  /** Revocations made by other replicas arrive here; this service's own are published (with `unitOfWork`). */
  changes?: ChangeFeed;
  unitOfWork?: UnitOfWork;
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
  readonly #repository: SessionRepository;
  readonly #keyring: Keyring;
  readonly #clock: Clock;
  readonly #cacheSize: number;
  // The revocations, read from the repository once (on first use), kept in step by this
  // service's own writes and re-read on another replica's notice: the check on every request is
  // two map lookups.
  readonly #revokedJti = new Map<string, number>(); // jti → expires_at (s)
  readonly #cutoffs = new Map<string, number>(); // identity → revoked_before (s)
  #loaded = false;
  #loading: Promise<void> | undefined;
  readonly #verified = new Map<string, { claims: SessionClaims; kid: string }>();

  /** The kept revocations are read on first use (issue, verify, revoke), not here. */
  static open(options: SessionServiceOptions): SessionService {
    return new SessionService(options);
  }

  readonly #changes: ChangeFeed | undefined;
  readonly #uow: UnitOfWork | undefined;
  #rereading: Promise<void> | undefined;
  #rereadAgain = false;

  private constructor(o: SessionServiceOptions) {
    this.#repository = o.repository;
    this.#changes = o.changes;
    this.#uow = o.unitOfWork;
    o.changes?.subscribe('session', () => this.#reread());
    o.changes?.onResync(() => this.#reread());
    this.#keyring = o.keyring;
    this.#clock = o.clock ?? systemClock;
    this.issuer = o.issuer;
    const ttl = o.ttlMs ?? 10 * 60_000;
    if (!Number.isFinite(ttl) || ttl < 1000) throw new RangeError('session ttl must be at least 1s');
    this.ttlMs = Math.min(ttl, SESSION_TTL_CAP_MS);
    this.#cacheSize = o.cacheSize ?? 10_000;
  }

  /** Reads the kept revocations into memory (once; concurrent first calls share the read). */
  #load(): Promise<void> {
    this.#loading ??= (async () => {
      await this.#repository.purgeRevocations(nowSeconds(this.#clock) - LEEWAY_SECONDS);
      const { jtis, cutoffs } = await this.#repository.revocations();
      // Merged, not replaced: a revocation this service wrote meanwhile stays.
      for (const r of jtis) if (!this.#revokedJti.has(r.jti)) this.#revokedJti.set(r.jti, r.expiresAt);
      for (const c of cutoffs) this.#cutoffs.set(c.identityId, Math.max(c.revokedBefore, this.#cutoffs.get(c.identityId) ?? 0));
      this.#loaded = true;
    })().catch((err: unknown) => {
      this.#loading = undefined; // the next call tries again
      throw err;
    });
    return this.#loading;
  }

  /** Another replica revoked something (or notices were missed): re-read the revocations (coalesced). */
  async #reread(): Promise<void> {
    if (!this.#loaded) return; // the first use reads them all anyway
    if (this.#rereading) {
      this.#rereadAgain = true;
      return this.#rereading;
    }
    this.#rereading = (async () => {
      try {
        do {
          this.#rereadAgain = false;
          const { jtis, cutoffs } = await this.#repository.revocations();
          for (const r of jtis) if (!this.#revokedJti.has(r.jti)) this.#revokedJti.set(r.jti, r.expiresAt);
          for (const c of cutoffs) this.#cutoffs.set(c.identityId, Math.max(c.revokedBefore, this.#cutoffs.get(c.identityId) ?? 0));
        } while (this.#rereadAgain);
      } finally {
        this.#rereading = undefined;
      }
    })();
    return this.#rereading;
  }

  /** Writes a revocation and tells the other replicas, atomically where the store allows. */
  async #publishing<T>(key: string, write: () => Promise<T>): Promise<T> {
    if (!this.#changes) return write();
    const changes = this.#changes;
    const both = async () => {
      const out = await write();
      await changes.publish('session', key);
      return out;
    };
    return this.#uow ? this.#uow.transaction(both) : both();
  }

  /** Mints a session token for a verified identity. `ttlMs` may only shorten the configured TTL. */
  async issue(
    subject: { identityId: string; facts: AuthnFacts; attributes?: Record<string, string | number | boolean> },
    ttlMs?: number,
  ): Promise<IssuedSession> {
    if (!this.#loaded) await this.#load();
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
    if (!this.#loaded) await this.#load();
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

  /** Whether a verified session (its jti, subject and `iat`) has been revoked since, as this replica knows now (see `refresh`). */
  isRevoked(jti: string, identityId: string, issuedAt: number): boolean {
    if (this.#revokedJti.has(jti)) return true;
    const cutoff = this.#cutoffs.get(identityId);
    return cutoff !== undefined && issuedAt <= cutoff;
  }

  /** Re-reads the revocations from the store: the live gateway sessions' backstop against a missed notice. */
  refresh(): Promise<void> {
    return this.#loaded ? this.#reread() : this.#load();
  }

  /** Revokes one session token. `expiresAt` (s) bounds how long the entry is kept. */
  async revokeJti(jti: string, options: { identityId?: string; expiresAt?: number } = {}): Promise<void> {
    if (typeof jti !== 'string' || jti.length === 0 || jti.length > 256) throw new InvalidInput('jti must be a string of 1-256 characters', 'jti');
    if (!this.#loaded) await this.#load();
    const now = nowSeconds(this.#clock);
    const exp = options.expiresAt ?? now + Math.ceil(SESSION_TTL_CAP_MS / 1000) + LEEWAY_SECONDS;
    // In memory first: from here on this process refuses the token, even while the write runs.
    if (!this.#revokedJti.has(jti)) this.#revokedJti.set(jti, exp);
    await this.#publishing(`jti:${jti}`, () => this.#repository.revokeJti({ jti, ...(options.identityId !== undefined && { identityId: options.identityId }), revokedAt: now, expiresAt: exp }));
  }

  /** Revokes every session token of an identity issued up to now (suspension, offboarding). */
  async revokeIdentity(identityId: string): Promise<void> {
    if (!this.#loaded) await this.#load();
    const now = nowSeconds(this.#clock);
    // Tokens minted since a revocation in this same second carry iat = cut-off + 1 (see issue):
    // a second revocation within that second must cover them too.
    const current = this.#cutoffs.get(identityId);
    const before = current !== undefined && current >= now ? current + 1 : now;
    this.#cutoffs.set(identityId, before);
    const stored = await this.#publishing(`cutoff:${identityId}`, () => this.#repository.raiseCutoff(identityId, before));
    this.#cutoffs.set(identityId, Math.max(stored, this.#cutoffs.get(identityId) ?? 0));
  }

  /** Drops revocation entries of tokens that have expired anyway. */
  async purgeExpired(): Promise<number> {
    if (!this.#loaded) await this.#load();
    const now = nowSeconds(this.#clock) - LEEWAY_SECONDS;
    const purged = await this.#repository.purgeRevocations(now);
    for (const [jti, exp] of this.#revokedJti) if (exp < now) this.#revokedJti.delete(jti);
    for (const [token, v] of this.#verified) if (v.claims.exp < now) this.#verified.delete(token);
    return purged;
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
