// Verifying a pushed Security Event Token (RFC 8417) from a configured transmitter: compact JWS of
// `typ: secevent+jwt`, an asymmetric algorithm with a key from that transmitter's JWKS only, `iss`
// equal to it, `aud` equal to this receiver, `iat` within the window, a `jti` never seen before
// (store-backed, shared by replicas). A refusal carries its RFC 8935 `err` code.
import type { JWTPayload, JWSHeaderParameters } from 'jose';
import { AuthenticationFailed } from '../common/errors.ts';
import { parseJwt, verifySignature, type KeyLookup } from '../identity/jwt.ts';
import type { ReplayGuard } from '../identity/jwt.ts';

/** RFC 8935 §2.4 error codes. */
export type SetErrorCode = 'invalid_request' | 'invalid_key' | 'invalid_issuer' | 'invalid_audience' | 'authentication_failed' | 'access_denied';

/** A refused push: its `err` code and a description (never the token). */
export class SetRefused extends Error {
  readonly err: SetErrorCode;
  constructor(err: SetErrorCode, description: string) {
    super(description);
    this.err = err;
  }
}

const refuse = (err: SetErrorCode, description: string): never => {
  throw new SetRefused(err, description);
};

/** Headers that would let the token pick its own key. */
const KEY_CARRYING_HEADERS = ['jku', 'x5u', 'jwk', 'x5c'] as const;
const JTI = /^[\x21-\x7e]{1,256}$/;

export interface SetPolicy {
  /** The transmitter's name, to scope its ids. */
  transmitter: string;
  issuer: string;
  audience: string;
  algorithms: readonly string[];
  keys: KeyLookup;
  nowSeconds: number;
  maxAgeSeconds: number;
  leewaySeconds: number;
  replay: ReplayGuard;
}

export interface VerifiedSet {
  header: JWSHeaderParameters;
  claims: JWTPayload & { events: Record<string, Record<string, unknown>> };
  jti: string;
  iat: number;
}

function checkHeader(header: JWSHeaderParameters, algorithms: readonly string[], signed: boolean): void {
  const typ = typeof header.typ === 'string' ? header.typ.toLowerCase() : undefined;
  if (typ !== 'secevent+jwt' && typ !== 'application/secevent+jwt') refuse('invalid_request', 'the JWS header typ must be "secevent+jwt" (RFC 8417 §2.3)');
  const alg = header.alg;
  if (typeof alg !== 'string' || alg.length === 0) refuse('invalid_request', 'the JWS header has no alg');
  if ((alg as string).toLowerCase() === 'none' || !signed) refuse('invalid_key', 'the SET is not signed (alg "none" is never accepted)');
  if (/^HS/i.test(alg as string)) refuse('invalid_key', `symmetric alg ${(alg as string).slice(0, 16)} is never accepted: sign with a key of the transmitter's JWKS`);
  if (!algorithms.includes(alg as string)) refuse('invalid_key', `alg ${(alg as string).slice(0, 16)} is not configured for this transmitter`);
  for (const name of KEY_CARRYING_HEADERS) if (name in header) refuse('invalid_key', `header "${name}" is not accepted (keys come from the transmitter's configured JWKS only)`);
  if ('crit' in header || 'b64' in header) refuse('invalid_request', 'critical header extensions are not supported');
}

/** Verifies one SET against a transmitter's policy; throws SetRefused. */
export async function verifySet(token: string, p: SetPolicy): Promise<VerifiedSet> {
  let jwt: ReturnType<typeof parseJwt>;
  try {
    jwt = parseJwt(token);
  } catch (e) {
    throw new SetRefused('invalid_request', `the body is not a SET: ${e instanceof AuthenticationFailed ? e.detail : 'not a compact JWS'}`);
  }
  checkHeader(jwt.header, p.algorithms, jwt.hasSignature);
  try {
    await verifySignature(jwt, p.algorithms, p.keys);
  } catch (e) {
    const reason = e instanceof AuthenticationFailed ? e.reason : 'bad_signature';
    if (reason === 'jwks_unavailable') refuse('invalid_key', "the transmitter's JWKS could not be fetched; retry later");
    refuse('invalid_key', reason === 'unknown_kid' ? "no key of the transmitter's JWKS matches the SET header" : "the signature does not verify with the transmitter's keys");
  }
  const c = jwt.claims;
  if (c.iss !== p.issuer) refuse('invalid_issuer', 'iss is not the issuer configured for this transmitter');
  const aud = typeof c.aud === 'string' ? [c.aud] : Array.isArray(c.aud) ? c.aud : [];
  if (!aud.includes(p.audience)) refuse('invalid_audience', 'aud does not name this receiver');
  if (typeof c.iat !== 'number' || !Number.isFinite(c.iat)) refuse('invalid_request', 'claim iat (a number) is required');
  const iat = c.iat as number;
  if (iat > p.nowSeconds + p.leewaySeconds) refuse('invalid_request', 'iat is in the future');
  if (iat < p.nowSeconds - p.maxAgeSeconds) refuse('invalid_request', `iat is older than this receiver accepts (${p.maxAgeSeconds}s)`);
  if (c.exp !== undefined && (typeof c.exp !== 'number' || c.exp <= p.nowSeconds - p.leewaySeconds)) refuse('invalid_request', 'the SET has expired');
  if (typeof c.jti !== 'string' || !JTI.test(c.jti)) refuse('invalid_request', 'claim jti (1-256 printable characters) is required');
  const events = c.events;
  if (events === null || typeof events !== 'object' || Array.isArray(events)) refuse('invalid_request', 'claim events (an object) is required');
  const uris = Object.keys(events as object);
  if (uris.length !== 1) refuse('invalid_request', 'a SET carries exactly one event (SSF 1.0 §4.1.8)');
  const payload = (events as Record<string, unknown>)[uris[0]!];
  if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) refuse('invalid_request', `the event ${uris[0]!.slice(0, 100)} is not an object`);
  // Last: an id is spent only by a SET that passed every other check. Kept for the whole window a
  // SET is accepted in, so a replay is refused for as long as it could otherwise be taken.
  try {
    await p.replay.remember(`ssf:${p.transmitter}`, c.jti as string, iat + p.maxAgeSeconds + p.leewaySeconds, p.nowSeconds);
  } catch (e) {
    if (e instanceof AuthenticationFailed && e.reason === 'replayed') refuse('invalid_request', 'jti was already received from this transmitter (replayed SET)');
    throw e;
  }
  return { header: jwt.header, claims: c as VerifiedSet['claims'], jti: c.jti as string, iat };
}
