// `authzen:` — what the decision API for applications (AuthZEN, docs/authzen.md) needs beyond the
// declared identities and resources: resource types an application describes in each request,
// the `pdp.query` rate limit per application, and the search page size.
import { ConfigError, duration, integer, section, text, z } from '../common/validation.ts';
import type { RateLimit } from '../common/rate-limit.ts';

export interface DescribedType {
  /** Cedar entity type (= the AuthZEN resource type), e.g. `todo`. */
  type: string;
  /** Every resource of this type is in this boundary and environment (never taken from the request). */
  boundary: string;
  environment: string;
}

export interface AuthzenConfig {
  /**
   * Resource types whose instances the application describes in each request (AuthZEN
   * `resource.properties` become the entity's tags) instead of declaring each under `resources:`.
   */
  described_types: DescribedType[];
  /** Evaluations one application (`pdp.query` caller) may ask per window; a search counts each candidate. */
  rate_limit: RateLimit;
  /** Results per page of the search endpoints when the request names no `page.limit`. */
  page_size: number;
}

export const DEFAULT_AUTHZEN: AuthzenConfig = { described_types: [], rate_limit: { requests: 60_000, window_ms: 60_000 }, page_size: 50 };

/** A Cedar entity type name: AuthZEN types are often lowercase (`user`, `todo`). */
export const CEDAR_TYPE = { pattern: /^[A-Za-z_][A-Za-z0-9_]{0,63}(::[A-Za-z_][A-Za-z0-9_]{0,63})*$/, hint: 'must be a Cedar entity type like "todo" or "Document"' };

/**
 * Types Portcullis itself defines (src/policy/schema.ts): never described by an app. Their
 * entities are declared facts (principals, data resources) or the control plane's own; letting a
 * request describe one would let an app vouch for what policies trust as declared.
 */
const BUILTIN_TYPES = new Set(['Team', 'Role', 'Workload', 'Agent', 'ServiceAccount', 'User', 'Database', 'Table', 'Host', 'Api', 'Secret', 'Tool', 'ControlPlane', 'Policy', 'AuditStream', 'Lease', 'AccessRequest', 'Identity']);

/** `authzen` as written. */
export const AUTHZEN = section({
  described_types: z
    .array(section({ type: text(CEDAR_TYPE), boundary: text(), environment: text({ pattern: /^[a-z0-9][a-z0-9-]{0,63}$/, hint: 'must be a short lowercase name like "prod"' }) }))
    .optional(),
  rate_limit: section({ requests: integer(1, 100_000_000), window: duration({ numbers: 'seconds' }) }).optional(),
  page_size: integer(1, 1000).optional(),
}).optional();

/** The section resolved: boundaries declared, types unique. */
export function authzenConfig(a: z.output<typeof AUTHZEN>, boundaries: readonly string[], path = 'authzen'): AuthzenConfig {
  const seen = new Set<string>();
  const described_types = (a?.described_types ?? []).map((d, i) => {
    const at = `${path}.described_types[${i}]`;
    if (!boundaries.includes(d.boundary)) throw new ConfigError(`${at}.boundary`, `boundary "${d.boundary}" is not in boundaries (${boundaries.join(', ')})`);
    if (seen.has(d.type)) throw new ConfigError(`${at}.type`, `duplicate described type "${d.type}"`);
    if (BUILTIN_TYPES.has(d.type)) throw new ConfigError(`${at}.type`, `${d.type} is a built-in entity type: declare its resources under resources: (an app may describe only its own types, from schema_extension)`);
    seen.add(d.type);
    return { type: d.type, boundary: d.boundary, environment: d.environment };
  });
  return {
    described_types,
    rate_limit: a?.rate_limit ? { requests: a.rate_limit.requests, window_ms: a.rate_limit.window } : { ...DEFAULT_AUTHZEN.rate_limit },
    page_size: a?.page_size ?? DEFAULT_AUTHZEN.page_size,
  };
}
