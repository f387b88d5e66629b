// The `spiffe-x509` issuer kind: X.509-SVIDs from Portcullis' intermediate CA for a trust domain
// (x509-svid.ts), decided on the workload itself (`Workload::"<target>"`), for a PEM key or a CSR.
import { text } from '../../../common/validation.ts';
import { lazyModule } from '../../../common/lazy-module.ts';
import { need } from '../plugin.ts';
import type { IssuerPlugin } from '../plugin.ts';
import { spiffeX509Config } from './config.ts';
import type { SpiffeX509Target } from './config.ts';

const impl = lazyModule<typeof import('./x509-svid.ts')>(import.meta.url, './x509-svid.ts');

export const spiffeX509: IssuerPlugin<SpiffeX509Target> = {
  kind: 'spiffe-x509',
  resourceType: 'Workload',
  config: spiffeX509Config,
  // The holder's key pair stays with the holder: SVIDs are issued for its PEM public key or CSR.
  request: {
    fields: { public_key: text({ max: 16384 }), csr: text({ max: 16384 }) },
    params: (b) => ({ ...(b.public_key !== undefined && { publicKeyPem: b.public_key }), ...(b.csr !== undefined && { csr: b.csr }) }),
  },
  create: (target, deps) => {
    const ca = need(deps.spiffe?.[target.trust_domain], target, `a CA for trust domain ${target.trust_domain} (deps.spiffe)`);
    return new (impl().SpiffeX509Issuer)({ target, root: ca.root, intermediate: ca.intermediate, clock: deps.clock });
  },
};
