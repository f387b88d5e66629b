// OIDC/JWT federation: a workload proves itself with a token from an issuer we trust (GitHub
// Actions, GitLab, a cloud, Kubernetes). Keys only ever come from the trust's configuration
// (inline JWKS or its jwks_uri), never from the token.
import type { JWTPayload } from 'jose';
import type { OidcTrustConfig } from './config.ts';
import type { Clock } from '../../../common/clock.ts';
import { nowSeconds, systemClock } from '../../../common/clock.ts';
import type { Proof, TrustVerifier, VerifiedProof } from '../../types.ts';
import { fail } from '../../reasons.ts';
import { ASYMMETRIC_ALGORITHMS, DEFAULT_MAX_TOKEN_LIFETIME_SECONDS, tokenFingerprint, validateJwt } from '../../jwt.ts';
import type { JwtPolicy, ReplayGuard } from '../../jwt.ts';
import { InlineJwks, RemoteJwks } from '../../jwks.ts';
import type { KeySource, RemoteJwksOptions } from '../../jwks.ts';
import { compileIdentityTemplate } from '../../template.ts';
import type { IdentityTemplate } from '../../template.ts';
import { copyAttributes } from '../../attributes.ts';
import { SESSION_TOKEN_TYPE } from '../../session-claims.ts';

export const DEFAULT_LEEWAY_SECONDS = 30;
export const MAX_LEEWAY_SECONDS = 300;

export interface OidcTrustOptions extends Omit<RemoteJwksOptions, 'clock'> {
  clock?: Clock;
  /** Where seen token ids are kept; required when the trust sets `replay: reject`. */
  replay?: ReplayGuard;
}

/** Auth time when the proof does not say (no `auth_time`): the epoch, so any `@maxAuthAge` finds it too old. */
export const AUTH_TIME_UNKNOWN = 0;

/**
 * `typ` of a federation proof (workload token, ID token): absent, `JWT` or `JOSE`, or any type that
 * is not an explicitly typed token of another kind (RFC 8725 §3.11): `at+jwt` access tokens,
 * Portcullis session tokens, `logout+jwt`, `secevent+jwt`, … are never identity proofs.
 */
export function federationTyp(typ: unknown): string | undefined {
  if (typ === undefined) return undefined;
  if (typeof typ !== 'string') return 'typ is not a string';
  const t = typ.toLowerCase().replace(/^application\//, '');
  if (t === SESSION_TOKEN_TYPE) return 'a session token is not an identity proof';
  if (t.endsWith('+jwt')) return `a ${t.slice(0, 32)} token is not an identity proof`;
  return undefined;
}

/** The JwtPolicy parts every trust derives the same way from its configuration. */
export function trustTokenChecks(
  name: string,
  c: { max_token_lifetime_seconds?: number; replay?: 'allow' | 'reject' },
  replay: ReplayGuard | undefined,
): Pick<JwtPolicy, 'maxLifetimeSeconds' | 'replay'> {
  if (c.replay === 'reject' && replay === undefined) throw new TypeError(`trust ${name}: replay: reject needs a replay store`);
  return {
    maxLifetimeSeconds: c.max_token_lifetime_seconds ?? DEFAULT_MAX_TOKEN_LIFETIME_SECONDS,
    ...(c.replay === 'reject' && { replay: { guard: replay!, scope: `trust:${name}` } }),
  };
}

export class OidcTrust implements TrustVerifier {
  readonly name: string;
  readonly kind = 'oidc' as const;
  readonly routesBy = 'issuer' as const;
  readonly config: OidcTrustConfig;
  readonly keys: KeySource;
  readonly #clock: Clock;
  readonly #identity: IdentityTemplate;
  readonly #algorithms: readonly string[];
  readonly #leeway: number;
  readonly #checks: Pick<JwtPolicy, 'maxLifetimeSeconds' | 'replay'>;

  constructor(config: OidcTrustConfig, options: OidcTrustOptions = {}) {
    this.name = config.name;
    this.config = config;
    this.#clock = options.clock ?? systemClock;
    const bad = config.algorithms.filter((a) => !ASYMMETRIC_ALGORITHMS.includes(a));
    if (bad.length > 0 || config.algorithms.length === 0) {
      throw new TypeError(`trust ${config.name}: algorithms must be non-empty and asymmetric (refused: ${bad.join(', ')})`);
    }
    this.#algorithms = [...config.algorithms];
    this.#leeway = Math.min(Math.max(config.leeway_seconds ?? DEFAULT_LEEWAY_SECONDS, 0), MAX_LEEWAY_SECONDS);
    this.#identity = compileIdentityTemplate(config.identity);
    this.#checks = trustTokenChecks(config.name, config, options.replay);
    if ((config.jwks_uri === undefined) === (config.jwks === undefined)) {
      throw new TypeError(`trust ${config.name}: exactly one of jwks_uri and jwks is required`);
    }
    this.keys = config.jwks !== undefined ? new InlineJwks(config.jwks) : new RemoteJwks(config.jwks_uri!, { ...options, clock: this.#clock });
  }

  accepts(proof: Proof, hint: { issuer?: string }): boolean {
    return proof.type === 'jwt' && hint.issuer === this.config.issuer;
  }

  async verify(proof: Proof): Promise<VerifiedProof> {
    if (proof.type !== 'jwt') throw fail('malformed', `trust ${this.name} verifies JWTs only`);
    const now = nowSeconds(this.#clock);
    // Our own session and access tokens are not federation proofs, whoever signed them.
    const jwt = await validateJwt(proof.token, {
      algorithms: this.#algorithms,
      issuer: this.config.issuer,
      audiences: this.config.audiences,
      leewaySeconds: this.#leeway,
      nowSeconds: now,
      typ: federationTyp,
      ...this.#checks,
    }, (h) => this.keys.getKey(h));
    const { claims, audience } = jwt;
    this.#checkRequired(claims);
    const identityId = this.#identity(claims);
    return {
      identityId,
      kind: this.config.identity_kind,
      facts: {
        method: 'oidc',
        trust: this.name,
        mfa: Array.isArray(claims.amr) && claims.amr.includes('mfa'),
        assurance: 'high',
        auth_time: authTime(claims, now, this.#leeway),
      },
      attributes: copyAttributes(claims, this.config.attributes ?? []),
      defaults: defaultsOf(this.config),
      evidence: {
        trust: this.name,
        issuer: this.config.issuer,
        alg: jwt.header.alg,
        ...(typeof jwt.header.kid === 'string' ? { kid: jwt.header.kid } : {}),
        ...(typeof claims.sub === 'string' ? { subject: claims.sub.slice(0, 256) } : {}),
        ...(typeof claims.jti === 'string' ? { jti: claims.jti.slice(0, 128) } : {}),
        audience,
        token_sha256: tokenFingerprint(jwt.token),
      },
    };
  }

  #checkRequired(claims: JWTPayload): void {
    for (const [name, expected] of Object.entries(this.config.require ?? {})) {
      if (!(name in claims)) throw fail('claim_mismatch', `required claim ${name} is missing`);
      if (claims[name] !== expected) throw fail('claim_mismatch', `claim ${name} does not have the required value`);
    }
  }
}

/**
 * The time of the original authentication: `auth_time` if the proof carries a sane one, else
 * unknown (AUTH_TIME_UNKNOWN) — never `iat`, which says when the token was minted, not when anyone
 * authenticated (a refreshed token has a fresh `iat` over an old login). An `auth_time` in the
 * future is refused.
 */
export function authTime(claims: JWTPayload, now: number, leeway: number): number {
  const c = claims.auth_time;
  if (c === undefined) return AUTH_TIME_UNKNOWN;
  if (typeof c !== 'number' || !Number.isFinite(c) || c <= 0) throw fail('malformed', 'claim auth_time is not a positive number');
  if (c > now + leeway) throw fail('issued_in_future', `auth_time ${c} is in the future, now ${now}`);
  return Math.floor(c);
}

export function defaultsOf(c: { boundary?: string; environment?: string; owner?: string }): VerifiedProof['defaults'] {
  return {
    ...(c.boundary !== undefined ? { boundary: c.boundary } : {}),
    ...(c.environment !== undefined ? { environment: c.environment } : {}),
    ...(c.owner !== undefined ? { owner: c.owner } : {}),
  };
}
