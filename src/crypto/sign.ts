// Compact JWS (JWT) signing with an Ed25519 key, without jose's per-call work: issuance signs a
// token per request, and jose's SignJWT (key import, claim checks, header validation) cost about
// as much again as the signature itself. The signature is made on the event loop: handing ~30 µs
// of work to the thread pool cost the event loop more (completion callback, wake-up) than it saved.
import { sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';

const headers = new Map<string, string>();

/**
 * A JWT signed with an Ed25519 key: header `alg: EdDSA` with the given `kid` and `typ`, the claims
 * as JSON — what jose's SignJWT writes for the same input (the claims come from our own code).
 */
export function signEdDsaJwt(claims: Record<string, unknown>, key: KeyObject, kid: string, typ?: string): string {
  const hk = `${kid}\n${typ ?? ''}`;
  let header = headers.get(hk);
  if (header === undefined) {
    header = Buffer.from(JSON.stringify({ alg: 'EdDSA', kid, ...(typ !== undefined && { typ }) })).toString('base64url');
    if (headers.size >= 64) headers.clear(); // kids rotate; a handful are live at once
    headers.set(hk, header);
  }
  const input = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  return `${input}.${sign(null, Buffer.from(input), key).toString('base64url')}`;
}
