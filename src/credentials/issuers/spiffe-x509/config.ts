// A `kind: spiffe-x509` target in portcullis.yaml: X.509-SVIDs for one SPIFFE trust domain.
import { mapping, text } from '../../../common/validation.ts';
import { targetFields, ttls } from '../plugin.ts';

export interface SpiffeX509Target {
  name: string;
  kind: 'spiffe-x509';
  trust_domain: string;
  max_ttl_ms: number;
  default_ttl_ms: number;
}

export const spiffeX509Config = mapping({
  ...targetFields('spiffe-x509'),
  trust_domain: text({ pattern: /^[a-z0-9._-]{1,255}$/, hint: 'expected a SPIFFE trust domain (lowercase letters, digits, . _ -)' }),
}).transform((o, ctx): SpiffeX509Target => ({
  name: o.name,
  kind: 'spiffe-x509',
  trust_domain: o.trust_domain,
  ...ttls(o, ctx, { ms: 86_400_000, message: 'SVIDs are capped at 24h' }),
}));
