// The `oidc-human` trust kind: people signing in through the organisation's OpenID provider (code
// + PKCE or the device flow, oidc-human.ts); users become `user:<email|sub>`.
import { lazyModule } from '../../../common/lazy-module.ts';
import { isSafeClaimValue } from '../../template.ts';
import type { TrustPlugin } from '../plugin.ts';
import { humanOidcConfig, parseHumanOidcTrust } from './config.ts';
import type { HumanOidcTrustConfig } from './config.ts';

const impl = lazyModule<typeof import('./oidc-human.ts')>(import.meta.url, './oidc-human.ts');

export const oidcHuman: TrustPlugin<HumanOidcTrustConfig, 'oidc'> = {
  kind: 'oidc-human',
  methods: ['oidc'],
  config: humanOidcConfig,
  parse: parseHumanOidcTrust,
  producer: (t) => {
    const email = (t.identity_claim ?? 'email') === 'email';
    return {
      trust: t.name,
      template: email ? 'user:{email}' : 'user:{sub}',
      kind: 'user',
      shared: t.shared_namespace === true,
      ...(email && { value: (v: string) => isSafeClaimValue(v) && /^[^@/]+@[a-z0-9.-]+$/.test(v) }),
    };
  },
  create: (t, deps) => ({ human: new (impl().HumanOidcTrust)(t, { clock: deps.clock, replay: deps.replay, ...(deps.fetch && { fetch: deps.fetch }), ...(deps.loginStates && { loginStates: deps.loginStates }) }) }),
};
