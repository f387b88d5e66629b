// The `oidc` trust kind: workload tokens from an OIDC issuer (oidc.ts), routed by their `iss`;
// the identity is the trust's template over verified claims.
import { lazyModule } from '../../../common/lazy-module.ts';
import type { TrustPlugin } from '../plugin.ts';
import { oidcConfig, parseOidcTrust } from './config.ts';
import type { OidcTrustConfig } from './config.ts';

const impl = lazyModule<typeof import('./oidc.ts')>(import.meta.url, './oidc.ts');

export const oidc: TrustPlugin<OidcTrustConfig, 'oidc'> = {
  kind: 'oidc',
  methods: ['oidc'],
  config: oidcConfig,
  parse: parseOidcTrust,
  producer: (t) => ({ trust: t.name, template: t.identity!, kind: t.identity_kind, shared: t.shared_namespace === true }),
  create: (t, deps) => ({ verifier: new (impl().OidcTrust)(t, { clock: deps.clock, replay: deps.replay, ...(deps.fetch && { fetch: deps.fetch }) }) }),
};
