// A `kind: api` target in portcullis.yaml: RFC 9068 access tokens for one audience, a subset of
// its scopes, and how long a token-exchange delegation chain may grow.
import { integer, mapping, text, texts } from '../../../common/validation.ts';
import { targetFields, ttls } from '../plugin.ts';

export interface ApiTarget {
  name: string;
  kind: 'api';
  audience: string;
  scopes: string[];
  max_ttl_ms: number;
  default_ttl_ms: number;
  /** Longest delegation chain (number of actors in `act`) a token exchange may produce. */
  max_delegation_depth: number;
}

/** RFC 6749 scope-token. */
const SCOPE_RE = /^[\x21\x23-\x5B\x5D-\x7E]+$/;

export const apiConfig = mapping({
  ...targetFields('api'),
  audience: text(),
  scopes: texts({ nonEmpty: true, pattern: SCOPE_RE, hint: 'invalid scope token' }),
  max_delegation_depth: integer(0, 10).default(3),
}).transform((o, ctx): ApiTarget => ({
  name: o.name,
  kind: 'api',
  audience: o.audience,
  scopes: o.scopes,
  ...ttls(o, ctx, { ms: 3_600_000, message: 'access tokens are capped at 1h' }),
  max_delegation_depth: o.max_delegation_depth,
}));
