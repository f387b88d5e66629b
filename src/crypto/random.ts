// Random bytes for identifiers and nonces on hot paths, drawn from the CSPRNG 4 KiB at a time: one
// randomBytes call per issuance (a token's jti, a certificate's serial and nonce) cost more than
// the rest of building the credential. Every byte is handed out once.
import { randomFillSync } from 'node:crypto';

const pool = Buffer.alloc(4096);
let used = pool.length;

/** `n` (at most 4096) fresh random bytes, the caller's own copy. */
export function randomPooled(n: number): Buffer {
  if (n > pool.length) throw new RangeError(`randomPooled: at most ${pool.length} bytes`);
  if (used + n > pool.length) {
    randomFillSync(pool);
    used = 0;
  }
  used += n;
  return Buffer.copyBytesFrom(pool, used - n, n);
}
