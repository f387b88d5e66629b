// Fingerprints of secrets and certificates: the only form of them that audit records and leases hold.
import { createHash } from 'node:crypto';

/** SHA-256 fingerprint (base64url) of a secret or certificate: what audit and leases may hold. */
export function fingerprint(data: string | Uint8Array): string {
  return `sha256:${createHash('sha256').update(data).digest('base64url')}`;
}
