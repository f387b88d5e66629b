// A `kind: oidc` trust in portcullis.yaml: workloads proving themselves with tokens from an OIDC
// issuer (GitHub Actions, GitLab, a cloud, Kubernetes). Keys come from `jwks_uri` or an inline /
// file JWKS; the identity is a template over verified claims.
import type { JsonWebKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError, describe, section, text, texts, validateConfig, z } from '../../../common/validation.ts';
import type { IdentityKind } from '../../types.ts';
import { identityKind, leeway, tokenCheckFields, tokenChecks, TRUST_NAME, trustDefaults, defaultsOf } from '../plugin.ts';
import type { TokenChecks, TrustBase, TrustConfigContext } from '../plugin.ts';

export interface OidcTrustConfig extends TrustBase, TokenChecks {
  name: string;
  kind: 'oidc';
  issuer: string;
  /** Exactly one of jwks_uri / jwks. */
  jwks_uri?: string;
  jwks?: { keys: JsonWebKey[] };
  audiences: string[];
  /** Asymmetric JWS algorithms only (RS256, PS256, ES256, ES384, EdDSA, …). */
  algorithms: string[];
  /** Claims that must equal these values. */
  require: Record<string, string | number | boolean>;
  /** Template over claims, e.g. `workload:github/{repository}`. */
  identity: string;
  identity_kind: IdentityKind;
  /** Claims copied into the principal's attributes. */
  attributes: string[];
  /** Allowed clock skew in seconds (default 30, at most 300). */
  leeway_seconds: number;
}

/** Asymmetric JWS algorithms a trust may name (= identity/jwt.ts ASYMMETRIC_ALGORITHMS; not imported: keeps jose out of config loading). */
const ASYMMETRIC_ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];

const claimValue = z.union([z.string(), z.number(), z.boolean()], { error: 'must be a string, number or boolean' });

export const oidcConfig = section({
  name: TRUST_NAME,
  kind: z.literal('oidc'),
  issuer: text({ pattern: /^https?:\/\/\S+$/, hint: 'must be an https:// URL' }),
  jwks_uri: text({ pattern: /^https?:\/\/\S+$/, hint: 'must be an http(s) URL' }).optional(),
  // A JWKS inline, or the path of a JWKS file (relative to the config file).
  jwks: z.union([text(), z.looseObject({ keys: z.array(z.record(z.string(), z.unknown())).min(1) })], { error: 'must be a JWKS: {keys: [...]} with at least one key' }).optional(),
  audiences: texts(),
  algorithms: z
    .array(z.string().refine((a) => ASYMMETRIC_ALGS.includes(a), { error: (iss) => `${describe(iss.input)} is not allowed: only asymmetric algorithms (${ASYMMETRIC_ALGS.join(', ')})` }))
    .default(['RS256', 'ES256', 'EdDSA']),
  require: z.record(z.string(), claimValue).default({}),
  identity: text({ max: 256 }).refine((s) => {
    const placeholders = [...s.matchAll(/\{([^}]*)\}/g)].map((m) => m[1]!);
    return placeholders.length > 0 && placeholders.every((p) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(p));
  }, 'must be a template with {claim} placeholders, e.g. "workload:github/{repository}"'),
  identity_kind: identityKind,
  attributes: texts({ pattern: /^[A-Za-z_][A-Za-z0-9_]*$/ }).default([]),
  leeway,
  ...tokenCheckFields,
  ...trustDefaults,
}).refine((o) => (o.jwks_uri === undefined) !== (o.jwks === undefined), 'needs exactly one of jwks_uri or jwks');

/** One `trusts[i]` entry of kind oidc; a `jwks` file is read now. */
export function parseOidcTrust(raw: unknown, ctx: TrustConfigContext, path: string): OidcTrustConfig {
  const o = validateConfig(oidcConfig, raw, path);
  let jwks: { keys: JsonWebKey[] } | undefined;
  if (typeof o.jwks === 'string') {
    const file = resolve(ctx.baseDir, o.jwks);
    try {
      jwks = JSON.parse(readFileSync(file, 'utf8'));
    } catch {
      throw new ConfigError(`${path}.jwks`, `cannot read a JWKS from ${file}`);
    }
    if (!jwks || !Array.isArray(jwks.keys) || jwks.keys.length === 0) throw new ConfigError(`${path}.jwks`, 'must be a JWKS: {keys: [...]} with at least one key');
  } else if (o.jwks !== undefined) {
    jwks = o.jwks as { keys: JsonWebKey[] };
  }
  return {
    name: o.name,
    kind: 'oidc',
    issuer: o.issuer,
    ...(o.jwks_uri !== undefined && { jwks_uri: o.jwks_uri }),
    ...(jwks && { jwks }),
    audiences: o.audiences,
    algorithms: o.algorithms,
    require: o.require,
    identity: o.identity,
    identity_kind: o.identity_kind,
    attributes: o.attributes,
    leeway_seconds: o.leeway,
    ...tokenChecks(o),
    ...defaultsOf(o),
  };
}
