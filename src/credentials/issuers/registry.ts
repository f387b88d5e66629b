// The credential issuer kinds. Adding a kind is one folder beside these (see plugin.ts for what
// it exports) and one line in ISSUERS; config, the Cedar schema, the credentials route, the broker
// and the CLI read everything else from here.
import { InvalidInput } from '../../common/errors.ts';
import { text, z } from '../../common/validation.ts';
import type { CredentialIssuer } from '../types.ts';
import type { IssuerDeps, IssuerPlugin, TargetBase } from './plugin.ts';
import { api } from './api/index.ts';
import { postgres } from './postgres/index.ts';
import { spiffeX509 } from './spiffe-x509/index.ts';
import { ssh } from './ssh/index.ts';
import { sshHost } from './ssh-host/index.ts';

export const ISSUERS = [postgres, ssh, sshHost, api, spiffeX509] as const;

export type { IssuerDeps, IssuerPlugin } from './plugin.ts';

/** A validated target of any registered kind. */
export type TargetConfig = z.output<(typeof ISSUERS)[number]['config']>;
export type TargetKind = TargetConfig['kind'];

const BY_KIND = new Map<string, IssuerPlugin<TargetBase>>(ISSUERS.map((p) => [p.kind, p as unknown as IssuerPlugin<TargetBase>]));

/** The plug-in of a kind, or undefined. */
export function issuerKind(kind: string): IssuerPlugin<TargetBase> | undefined {
  return BY_KIND.get(kind);
}

export function createIssuer(target: TargetConfig, deps: IssuerDeps): CredentialIssuer {
  const p = BY_KIND.get(target.kind);
  if (!p) throw new InvalidInput(`target ${target.name}: kind ${target.kind} has no issuer`, 'kind');
  const issuer = p.create(target, deps);
  if (issuer.resourceType !== p.resourceType) throw new TypeError(`the ${p.kind} issuer decides on ${issuer.resourceType}, its plug-in declares ${p.resourceType}`);
  return issuer;
}

// ── POST /v1/credentials ─────────────────────────────────────────────────────────────────────

/** The request fields every kind reads. */
const COMMON = {
  target: text({ max: 128 }),
  permission: text({ max: 128 }).optional(),
  ttl: z.string().regex(/^(\d+(ms|s|m|h|d))+$/, 'expected a duration such as 15m or 1h').optional(),
  reason: z.string().min(1).max(1024),
  // Defaults to the caller's active grant for this target; its end revokes the lease.
  grant_id: text({ max: 128 }).optional(),
};

/** Which kinds read each kind-specific field. */
const FIELD_KINDS = new Map<string, string[]>();
const kindFields: Record<string, z.ZodType> = {};
for (const p of ISSUERS) {
  for (const [name, schema] of Object.entries(p.request.fields)) {
    FIELD_KINDS.set(name, [...(FIELD_KINDS.get(name) ?? []), p.kind]);
    kindFields[name] = (schema as z.ZodType).optional();
  }
}

/** The body of POST /v1/credentials: the common fields and every kind's own (JSON Schema for the route: jsonSchemaOf). */
export const CREDENTIAL_REQUEST = z.strictObject({ ...COMMON, ...kindFields });

/** A credential request: the common fields, and kind-specific ones (public_key, csr, scopes…). */
export type CredentialRequest = z.output<z.ZodObject<typeof COMMON>> & { [field: string]: unknown };

/**
 * The issuer params of a request for a target of `kind`. A field only other kinds read is refused
 * (it would be silently ignored otherwise).
 */
export function requestParams(kind: string | undefined, body: Record<string, unknown>): Record<string, unknown> {
  const p = kind === undefined ? undefined : BY_KIND.get(kind);
  for (const [field, kinds] of FIELD_KINDS) {
    if (body[field] !== undefined && p !== undefined && !kinds.includes(p.kind)) {
      throw new InvalidInput(`${field}: only ${kinds.join(' and ')} targets take it, not ${p.kind}`, field);
    }
  }
  return p ? p.request.params(body) : {};
}
