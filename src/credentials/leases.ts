// Lease identifiers. The lease table itself is the domain's LeaseRepository port (ports.ts),
// implemented by the store (src/store/sqlite/credentials.ts).
import { randomBytes } from 'node:crypto';

export function newLeaseId(): string {
  return `lse_${randomBytes(12).toString('base64url').replace(/[-_]/g, 'x').toLowerCase()}`;
}
