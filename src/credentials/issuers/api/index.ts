// The `api` issuer kind: RFC 9068 access tokens for one API audience (access-token.ts), decided on
// `Api::"<target>"`, with RFC 8693 token exchange (delegation) on the same targets.
import { text, z } from '../../../common/validation.ts';
import { lazyModule } from '../../../common/lazy-module.ts';
import { need } from '../plugin.ts';
import type { CliIssued, IssuerPlugin } from '../plugin.ts';
import { apiConfig } from './config.ts';
import type { ApiTarget } from './config.ts';

const impl = lazyModule<typeof import('./access-token.ts')>(import.meta.url, './access-token.ts');

export const api: IssuerPlugin<ApiTarget> = {
  kind: 'api',
  resourceType: 'Api',
  config: apiConfig,
  request: {
    fields: { scopes: z.array(text({ max: 256 })).max(64) },
    params: (b) => (b.scopes !== undefined ? { scopes: b.scopes } : {}),
  },
  cli: {
    text: (r: CliIssued) => `${String(r.credential.access_token ?? JSON.stringify(r.credential))}\n\nlease ${String(r.lease.id)} until ${String(r.lease.expires_at)}`,
  },
  create: (target, deps) =>
    new (impl().AccessTokenIssuer)({
      target,
      signer: need(deps.signer, target, 'a JWT signer (deps.signer)'),
      issuer: need(deps.issuerUrl, target, 'the broker URL (deps.issuerUrl)'),
      clock: deps.clock,
    }),
};
