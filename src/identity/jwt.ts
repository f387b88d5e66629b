// Hostile-input handling shared by every JWT trust: size cap before parsing, strict compact
// shape, header policy (algorithm allow-list, no key-carrying headers, no `crit`), signature
// through jose, and time claims against the injected clock.
import { createHash } from 'node:crypto';
import { compactVerify, errors as joseErrors } from 'jose';
import type { CompactVerifyGetKey, JWSHeaderParameters, JWTPayload } from 'jose';
import { AuthenticationFailed } from '../common/errors.ts';
import { fail } from './reasons.ts';

/** Larger tokens are refused before any decoding (a parser is an attack surface). */
export const MAX_TOKEN_BYTES = 16 * 1024;

/** Asymmetric JWS algorithms a trust may be configured with. */
export const ASYMMETRIC_ALGORITHMS: readonly string[] = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];

/** Headers that would let the token choose its own verification key. */
const KEY_CARRYING_HEADERS = ['jku', 'x5u', 'jwk', 'x5c'] as const;

const COMPACT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
const KID = /^[\x20-\x7e]{1,256}$/;

export interface ParsedJwt {
  token: string;
  header: JWSHeaderParameters;
  /** Unverified until `verifySignature` resolved. */
  claims: JWTPayload;
  hasSignature: boolean;
}

function decodeJsonObject(part: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch {
    throw fail('malformed', `${what} is not base64url JSON`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw fail('malformed', `${what} is not a JSON object`);
  return value as Record<string, unknown>;
}

/** Size and shape only; nothing here is trusted yet. */
export function parseJwt(token: unknown): ParsedJwt {
  if (typeof token !== 'string' || token.length === 0) throw fail('malformed', 'token is not a non-empty string');
  if (token.length > MAX_TOKEN_BYTES) throw fail('token_too_large', `token is ${token.length} bytes, limit ${MAX_TOKEN_BYTES}`);
  if (!COMPACT.test(token)) throw fail('malformed', 'token is not a compact JWS (three base64url parts)');
  const [h, p, s] = token.split('.') as [string, string, string];
  return { token, header: decodeJsonObject(h, 'header') as JWSHeaderParameters, claims: decodeJsonObject(p, 'payload') as JWTPayload, hasSignature: s.length > 0 };
}

/** Header policy, checked before any key is looked up. */
function checkHeader(jwt: ParsedJwt, algorithms: readonly string[]): void {
  const { header } = jwt;
  const alg = header.alg;
  if (typeof alg !== 'string' || alg.length === 0) throw fail('malformed', 'header has no alg');
  if (alg.toLowerCase() === 'none') throw fail('algorithm_not_allowed', 'alg "none" is never accepted');
  if (/^HS/i.test(alg)) throw fail('algorithm_not_allowed', `symmetric alg ${alg.slice(0, 16)} is never accepted`);
  if (!algorithms.includes(alg)) throw fail('algorithm_not_allowed', `alg ${alg.slice(0, 16)} is not configured for this trust`);
  for (const name of KEY_CARRYING_HEADERS) {
    if (name in header) throw fail('forbidden_header', `header "${name}" is not accepted (keys come from the trust's configuration only)`);
  }
  if ('crit' in header) throw fail('unknown_crit', 'critical header extensions are not supported');
  if ('b64' in header) throw fail('forbidden_header', 'header "b64" is not accepted');
  if (header.kid !== undefined && (typeof header.kid !== 'string' || !KID.test(header.kid))) {
    throw fail('malformed', 'kid is not a printable string of at most 256 characters');
  }
  if (!jwt.hasSignature) throw fail('bad_signature', 'token has no signature');
}

/** jose's key resolver shape (the header is the verified token's protected header). */
export type KeyLookup = CompactVerifyGetKey;

/** Verifies the signature; maps every jose error to a reason code. */
export async function verifySignature(jwt: ParsedJwt, algorithms: readonly string[], getKey: KeyLookup): Promise<void> {
  try {
    await compactVerify(jwt.token, (h, t) => getKey(h, t), { algorithms: [...algorithms] });
  } catch (e) {
    throw mapJoseError(e);
  }
}

export function mapJoseError(e: unknown): AuthenticationFailed {
  if (e instanceof AuthenticationFailed) return e;
  if (e instanceof joseErrors.JWSSignatureVerificationFailed) return fail('bad_signature', 'signature does not verify');
  if (e instanceof joseErrors.JWKSTimeout) return fail('jwks_unavailable', 'the key set could not be fetched in time');
  if (e instanceof joseErrors.JWKSNoMatchingKey) return fail('unknown_kid', 'no key in the trust matches the token header');
  if (e instanceof joseErrors.JWKSMultipleMatchingKeys) return fail('unknown_kid', 'token has no kid and several keys match');
  if (e instanceof joseErrors.JOSEAlgNotAllowed) return fail('algorithm_not_allowed', 'alg not allowed');
  if (e instanceof joseErrors.JOSENotSupported) return fail('algorithm_not_allowed', 'alg or key type not supported');
  if (e instanceof joseErrors.JWSInvalid) return fail('malformed', 'invalid JWS');
  // A key of the wrong type for the alg (e.g. an RSA key for ES256) surfaces as a TypeError.
  if (e instanceof TypeError) return fail('bad_signature', 'key does not fit the algorithm');
  return fail('bad_signature', 'signature verification failed');
}

export interface TimeRules {
  nowSeconds: number;
  leewaySeconds: number;
  requireExp: boolean;
}

/** exp / nbf / iat against the clock; call only after the signature verified. */
function checkTimes(claims: JWTPayload, rules: TimeRules): void {
  const { nowSeconds: now, leewaySeconds: leeway } = rules;
  for (const c of ['exp', 'nbf', 'iat'] as const) {
    if (claims[c] !== undefined && (typeof claims[c] !== 'number' || !Number.isFinite(claims[c]))) throw fail('malformed', `claim ${c} is not a number`);
  }
  if (claims.exp === undefined) {
    if (rules.requireExp) throw fail('missing_claim', 'claim exp is required');
  } else if (claims.exp <= now - leeway) {
    throw fail('expired', `expired at ${claims.exp}, now ${now}`);
  }
  if (claims.nbf !== undefined && claims.nbf > now + leeway) throw fail('not_yet_valid', `not valid before ${claims.nbf}, now ${now}`);
  if (claims.iat !== undefined && claims.iat > now + leeway) throw fail('issued_in_future', `issued at ${claims.iat}, now ${now}`);
}

/** Default `max_token_lifetime` of a trust: a proof whose `exp - iat` exceeds it is refused. */
export const DEFAULT_MAX_TOKEN_LIFETIME_SECONDS = 24 * 3600;

/** `exp - iat` (or, without `iat`, what is left of it) must not exceed `max`; call after checkTimes. */
function checkLifetime(claims: JWTPayload, maxSeconds: number, now: number): void {
  if (typeof claims.exp !== 'number') return;
  const from = typeof claims.iat === 'number' ? claims.iat : typeof claims.nbf === 'number' ? claims.nbf : now;
  const lifetime = claims.exp - from;
  if (lifetime > maxSeconds) throw fail('lifetime_too_long', `token lifetime ${Math.floor(lifetime)}s exceeds the trust's max_token_lifetime of ${maxSeconds}s`);
}

/** Remembers token ids (`replay: reject`); implemented over the store by replay.ts. */
export interface ReplayGuard {
  /** Records `jti` under `scope` until `expiresAt` (s); throws `replayed` if it is already there and not expired. */
  remember(scope: string, jti: string, expiresAt: number, now: number): Promise<void>;
}

/**
 * What a JWT must satisfy. Every path that accepts a JWT (workload OIDC, SPIFFE JWT-SVID, human ID
 * token, the broker's own session tokens) goes through `validateJwt` with one of these, so they
 * all check the same things: size and shape, header policy (alg allow-list, no key-carrying
 * headers, no `crit`), `typ`, signature, exp/nbf/iat-not-in-future, max lifetime, iss, aud,
 * required claims, and replay.
 */
export interface JwtPolicy {
  algorithms: readonly string[];
  /** Exact `iss`; leave out only where the token type makes it optional (JWT-SVID). */
  issuer?: string;
  /** `aud` must contain one of these. */
  audiences: readonly string[];
  leewaySeconds: number;
  nowSeconds: number;
  /** `exp - iat` above this is refused. */
  maxLifetimeSeconds: number;
  /** Judges the header `typ` (undefined when absent): a reason to refuse, or undefined to accept. */
  typ: (typ: unknown) => string | undefined;
  /** Claims that must be present (exp is always required). */
  requiredClaims?: readonly string[];
  /** `replay: reject`: a `jti` seen before within its lifetime is refused (and a token without one). */
  replay?: { guard: ReplayGuard; scope: string };
}

export interface ValidatedJwt {
  token: string;
  header: JWSHeaderParameters;
  claims: JWTPayload;
  /** The accepted audience. */
  audience: string;
}

/** The one JWT validation path (see JwtPolicy). Throws AuthenticationFailed with a precise reason. */
export async function validateJwt(token: unknown, policy: JwtPolicy, getKey: KeyLookup): Promise<ValidatedJwt> {
  const jwt = parseJwt(token);
  checkHeader(jwt, policy.algorithms);
  const typProblem = policy.typ(jwt.header.typ);
  if (typProblem !== undefined) throw fail('wrong_token_type', typProblem);
  await verifySignature(jwt, policy.algorithms, getKey);
  const claims = jwt.claims;
  const now = policy.nowSeconds;
  checkTimes(claims, { nowSeconds: now, leewaySeconds: policy.leewaySeconds, requireExp: true });
  checkLifetime(claims, policy.maxLifetimeSeconds, now);
  if (policy.issuer !== undefined && claims.iss !== policy.issuer) throw fail('unknown_issuer', 'token issuer is not the one this trust accepts');
  const audience = checkAudience(claims, policy.audiences);
  for (const c of policy.requiredClaims ?? []) {
    if (claims[c] === undefined || claims[c] === null) throw fail('missing_claim', `claim ${c} is required`);
  }
  if (policy.replay !== undefined) {
    const jti = claims.jti;
    if (typeof jti !== 'string' || jti.length === 0 || jti.length > 256) throw fail('missing_claim', 'claim jti (1-256 characters) is required: this trust rejects replays');
    await policy.replay.guard.remember(policy.replay.scope, jti, (claims.exp as number) + policy.leewaySeconds, now);
  }
  return { token: jwt.token, header: jwt.header, claims, audience };
}

/** `aud` (string or array) must contain one of `accepted`. */
function checkAudience(claims: JWTPayload, accepted: readonly string[]): string {
  const aud = claims.aud;
  if (aud === undefined) throw fail('missing_claim', 'claim aud is required');
  const list = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : undefined;
  if (list === undefined || list.length === 0 || !list.every((a) => typeof a === 'string')) throw fail('malformed', 'claim aud is not a string or array of strings');
  const hit = list.find((a) => accepted.includes(a));
  if (hit === undefined) throw fail('wrong_audience', 'token audience is not accepted by this trust');
  return hit;
}

/** Non-secret handle on a token for audit: the first 16 hex digits of its SHA-256. */
export function tokenFingerprint(token: string): string {
  return createHash('sha256').update(token).digest('hex').slice(0, 16);
}
