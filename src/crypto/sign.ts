// Ed25519 signatures made on libuv's thread pool instead of the event loop: issuance signs a token
// or a certificate per request, and the signature (~30 µs here) is most of its CPU that is not
// bookkeeping. The event loop only hands the data over (~8 µs) and goes on with other requests.
import { sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';

/** Ed25519 (or any one-shot algorithm: `null` digest) signature of `data`, off the event loop. */
export function signOffLoop(data: Uint8Array, key: KeyObject): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    sign(null, data, key, (err, sig) => (err ? reject(err) : resolve(sig)));
  });
}

const headers = new Map<string, string>();

/**
 * A compact JWS (JWT) signed with an Ed25519 key: `alg: EdDSA`, the given `kid` and `typ`, the
 * claims as JSON — what jose's SignJWT writes for the same input, without its per-call key
 * import and checks (the claims come from our own code), and with the signature off the loop.
 */
export async function signEdDsaJwt(claims: Record<string, unknown>, key: KeyObject, kid: string, typ?: string): Promise<string> {
  const hk = `${kid}\n${typ ?? ''}`;
  let header = headers.get(hk);
  if (header === undefined) {
    header = Buffer.from(JSON.stringify({ alg: 'EdDSA', kid, ...(typ !== undefined && { typ }) })).toString('base64url');
    if (headers.size > 64) headers.clear(); // kids rotate; a handful are live at once
    headers.set(hk, header);
  }
  const input = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  const sig = await signOffLoop(Buffer.from(input), key);
  return `${input}.${sig.toString('base64url')}`;
}
