// Lease identifiers. The lease table itself is the domain's LeaseRepository port (ports.ts),
// implemented by the store (src/store/sqlite/credentials.ts).
import { randomPooled } from '../crypto/random.ts';

const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyz';

/**
 * `lse_` + the time in base 36 (8 characters until 2059, so ids sort by creation) + 16 random
 * base-36 characters (about 82 bits). Ids that grow with time land at the end of the lease
 * table's primary-key index instead of on a random page of it: fewer pages written per issuance.
 */
export function newLeaseId(): string {
  let id = `lse_${Date.now().toString(36).padStart(8, '0')}`;
  for (const b of randomPooled(16)) id += ALPHABET[b % 36]; // 256 % 36 = 4: a negligible bias
  return id;
}
