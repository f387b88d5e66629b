// OIDC/JWT federation: a workload proves itself with a token from an issuer we trust (GitHub
// Actions, GitLab, a cloud, Kubernetes). Keys only ever come from the trust's configuration
// (inline JWKS or its jwks_uri), never from the token.
import type { JWTPayload } from 'jose';
import type { OidcTrustConfig } from '../config/types.ts';
import type { Clock } from '../common/clock.ts';
import { nowSeconds, systemClock } from '../common/clock.ts';
import type { Proof, TrustVerifier, VerifiedProof } from './types.ts';
import { fail } from './reasons.ts';
import { ASYMMETRIC_ALGORITHMS, checkAudience, checkHeader, checkTimes, parseJwt, tokenFingerprint, verifySignature } from './jwt.ts';
import { InlineJwks, RemoteJwks } from './jwks.ts';
import type { KeySource, RemoteJwksOptions } from './jwks.ts';
import { compileIdentityTemplate } from './template.ts';
import type { IdentityTemplate } from './template.ts';
import { copyAttributes } from './attributes.ts';
import { SESSION_TOKEN_TYPE } from './session-claims.ts';

export const DEFAULT_LEEWAY_SECONDS = 30;
export const MAX_LEEWAY_SECONDS = 300;

export interface OidcTrustOptions extends Omit<RemoteJwksOptions, 'clock'> {
  clock?: Clock;
}

export class OidcTrust implements TrustVerifier {
  readonly name: string;
  readonly kind = 'oidc' as const;
  readonly config: OidcTrustConfig;
  readonly keys: KeySource;
  readonly #clock: Clock;
  readonly #identity: IdentityTemplate;
  readonly #algorithms: readonly string[];
  readonly #leeway: number;

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
    const jwt = parseJwt(proof.token);
    checkHeader(jwt, this.#algorithms);
    // Our own session tokens are not federation proofs, whoever signed them.
    if (typeof jwt.header.typ === 'string' && jwt.header.typ.toLowerCase() === SESSION_TOKEN_TYPE) {
      throw fail('wrong_token_type', 'a session token is not an identity proof');
    }
    await verifySignature(jwt, this.#algorithms, (h) => this.keys.getKey(h));
    const claims = jwt.claims;
    const now = nowSeconds(this.#clock);
    checkTimes(claims, { nowSeconds: now, leewaySeconds: this.#leeway, requireExp: true });
    if (claims.iss !== this.config.issuer) throw fail('unknown_issuer', `issuer does not match trust ${this.name}`);
    const audience = checkAudience(claims, this.config.audiences);
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

/** The time of the original authentication: `auth_time` if sane, else `iat`, else now. */
export function authTime(claims: JWTPayload, now: number, leeway: number): number {
  for (const c of [claims.auth_time, claims.iat]) {
    if (typeof c === 'number' && Number.isFinite(c) && c <= now + leeway && c > 0) return Math.floor(c);
  }
  return now;
}

export function defaultsOf(c: { boundary?: string; environment?: string; owner?: string }): VerifiedProof['defaults'] {
  return {
    ...(c.boundary !== undefined ? { boundary: c.boundary } : {}),
    ...(c.environment !== undefined ? { environment: c.environment } : {}),
    ...(c.owner !== undefined ? { owner: c.owner } : {}),
  };
}
