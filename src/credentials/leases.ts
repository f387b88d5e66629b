// Lease identifiers. The lease table itself is the domain's LeaseRepository port (ports.ts),
// implemented by the store (src/store/sqlite/credentials.ts).
import { randomFillSync } from 'node:crypto';

const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyz';
/** Random bytes drawn 4 KiB at a time: one randomBytes call per id cost about as much as the row write. */
const pool = Buffer.alloc(4096);
let used = pool.length;

function random(n: number): Buffer {
  if (used + n > pool.length) {
    randomFillSync(pool);
    used = 0;
  }
  used += n;
  return pool.subarray(used - n, used);
}

/**
 * `lse_` + the time in base 36 (8 characters until 2059, so ids sort by creation) + 16 random
 * base-36 characters (about 82 bits). Ids that grow with time land at the end of the lease
 * table's primary-key index instead of on a random page of it: fewer pages written per issuance.
 */
export function newLeaseId(): string {
  let id = `lse_${Date.now().toString(36).padStart(8, '0')}`;
  for (const b of random(16)) id += ALPHABET[b % 36]; // 256 % 36 = 4: a negligible bias
  return id;
}
