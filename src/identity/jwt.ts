// Hostile-input handling shared by every JWT trust: size cap before parsing, strict compact
// shape, header policy (algorithm allow-list, no key-carrying headers, no `crit`), signature
// through jose, and time claims against the injected clock.
import { createHash } from 'node:crypto';
import { compactVerify, errors as joseErrors } from 'jose';
import type { JWSHeaderParameters, JWTPayload, CryptoKey, KeyObject } from 'jose';
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

/** Unverified `iss` and `sub` for routing a token to its trust. */
export function peekRouting(token: string): { issuer?: string; subject?: string } {
  const { claims } = parseJwt(token);
  return {
    ...(typeof claims.iss === 'string' ? { issuer: claims.iss } : {}),
    ...(typeof claims.sub === 'string' ? { subject: claims.sub } : {}),
  };
}

/** Header policy, checked before any key is looked up. */
export function checkHeader(jwt: ParsedJwt, algorithms: readonly string[]): void {
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

export type KeyLookup = (header: JWSHeaderParameters) => Promise<CryptoKey | KeyObject | Uint8Array>;

/** Verifies the signature; maps every jose error to a reason code. */
export async function verifySignature(jwt: ParsedJwt, algorithms: readonly string[], getKey: KeyLookup): Promise<void> {
  try {
    await compactVerify(jwt.token, (h) => getKey(h), { algorithms: [...algorithms] });
  } catch (e) {
    throw mapJoseError(e);
  }
}

export function mapJoseError(e: unknown): AuthenticationFailed {
  if (e instanceof AuthenticationFailed) return e;
  if (e instanceof joseErrors.JWSSignatureVerificationFailed) return fail('bad_signature', 'signature does not verify');
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
export function checkTimes(claims: JWTPayload, rules: TimeRules): void {
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

/** `aud` (string or array) must contain one of `accepted`. */
export function checkAudience(claims: JWTPayload, accepted: readonly string[]): string {
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
