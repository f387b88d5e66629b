// A `kind: spiffe` trust in portcullis.yaml: workloads proving themselves with SVIDs of one trust
// domain, verified against its bundle file — or, with `bundle: portcullis`, against Portcullis'
// own CA for that domain (a spiffe-x509 target must issue there).
import { resolve } from 'node:path';
import { ConfigError, section, text, texts, validateConfig, z } from '../../../common/validation.ts';
import type { IdentityKind } from '../../types.ts';
import { defaultsOf, identityKind, leeway, tokenCheckFields, tokenChecks, TRUST_NAME, trustDefaults } from '../plugin.ts';
import type { ConfigView, TokenChecks, TrustBase, TrustConfigContext } from '../plugin.ts';

/** `bundle: portcullis`: Portcullis' own CA for the trust domain. */
export const PORTCULLIS_BUNDLE = 'portcullis';

export interface SpiffeTrustConfig extends TrustBase, TokenChecks {
  name: string;
  kind: 'spiffe';
  trust_domain: string;
  /** Path of a SPIFFE bundle (JWKS with `use: jwt-svid` / `use: x509-svid` keys), resolved against the config file's folder; or `portcullis` for Portcullis' own CA. */
  bundle: string;
  /** Audiences accepted in JWT-SVIDs (default: ["portcullis"]). */
  audiences: string[];
  identity_kind: IdentityKind;
  leeway_seconds: number;
}

export const spiffeConfig = section({
  name: TRUST_NAME,
  kind: z.literal('spiffe'),
  trust_domain: text({ pattern: /^[a-z0-9._-]+$/, hint: 'must be a trust domain like "example.org"' }),
  bundle: text(),
  audiences: texts().default(['portcullis']),
  identity_kind: identityKind,
  leeway,
  ...tokenCheckFields,
  ...trustDefaults,
});

/** One `trusts[i]` entry of kind spiffe; a bundle path resolves against the config file's folder. */
export function parseSpiffeTrust(raw: unknown, ctx: TrustConfigContext, path: string): SpiffeTrustConfig {
  const o = validateConfig(spiffeConfig, raw, path);
  return {
    name: o.name,
    kind: 'spiffe',
    trust_domain: o.trust_domain,
    bundle: o.bundle === PORTCULLIS_BUNDLE ? o.bundle : resolve(ctx.baseDir, o.bundle),
    audiences: o.audiences,
    identity_kind: o.identity_kind,
    leeway_seconds: o.leeway,
    ...tokenChecks(o),
    ...defaultsOf(o),
  };
}

/** One trust per trust domain (SVIDs are routed by it, issue 8.1); `bundle: portcullis` needs Portcullis to issue there. */
export function checkSpiffeTrust(t: SpiffeTrustConfig, path: string, config: ConfigView): void {
  const first = config.trusts.find((x): x is SpiffeTrustConfig => x.kind === 'spiffe' && (x as SpiffeTrustConfig).trust_domain === t.trust_domain);
  if (first !== undefined && first !== t) {
    throw new ConfigError(`${path}.trust_domain`, `trust domain ${t.trust_domain} is already the trust ${first.name}'s: SVIDs are routed by trust domain, so one trust per domain`);
  }
  if (t.bundle === PORTCULLIS_BUNDLE && !config.targets.some((x) => x.kind === 'spiffe-x509' && x.trust_domain === t.trust_domain)) {
    throw new ConfigError(`${path}.bundle`, `"portcullis" needs a spiffe-x509 target with trust_domain ${t.trust_domain}`);
  }
}
