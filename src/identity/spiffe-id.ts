// SPIFFE IDs (spiffe://<trust domain>/<path>) per the SPIFFE-ID specification: lowercase trust
// domain, no empty/dot segments, no query, fragment, port or userinfo.

export interface SpiffeId {
  trustDomain: string;
  path: string;
  id: string;
}

const TRUST_DOMAIN = /^[a-z0-9._-]+$/;
const SEGMENT = /^[A-Za-z0-9._-]+$/;
const MAX_LENGTH = 2048;

export function isValidTrustDomain(td: string): boolean {
  return td.length > 0 && td.length <= 255 && TRUST_DOMAIN.test(td);
}

/** A workload SPIFFE ID (non-empty path), or undefined. */
export function parseSpiffeId(text: unknown): SpiffeId | undefined {
  if (typeof text !== 'string' || text.length > MAX_LENGTH || !text.startsWith('spiffe://')) return undefined;
  const rest = text.slice('spiffe://'.length);
  const slash = rest.indexOf('/');
  if (slash <= 0) return undefined;
  const trustDomain = rest.slice(0, slash);
  const path = rest.slice(slash);
  if (!isValidTrustDomain(trustDomain)) return undefined;
  const segments = path.slice(1).split('/');
  if (!segments.every((s) => SEGMENT.test(s) && s !== '.' && s !== '..')) return undefined;
  return { trustDomain, path, id: text };
}
