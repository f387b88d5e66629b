// The `spiffe` trust kind: JWT-SVIDs (routed by their SPIFFE ID) and X.509-SVIDs over mTLS
// (spiffe.ts); the identity is the SPIFFE ID, or with `bundle: portcullis` the identity the SVID
// was issued for.
import { InvalidInput } from '../../../common/errors.ts';
import { lazyModule } from '../../../common/lazy-module.ts';
import type { TrustPlugin } from '../plugin.ts';
import { checkSpiffeTrust, parseSpiffeTrust, PORTCULLIS_BUNDLE, spiffeConfig } from './config.ts';
import type { SpiffeTrustConfig } from './config.ts';

const impl = lazyModule<typeof import('./spiffe.ts')>(import.meta.url, './spiffe.ts');

export const spiffe: TrustPlugin<SpiffeTrustConfig, 'spiffe-jwt' | 'spiffe-x509'> = {
  kind: 'spiffe',
  methods: ['spiffe-jwt', 'spiffe-x509'],
  config: spiffeConfig,
  parse: parseSpiffeTrust,
  check: checkSpiffeTrust,
  // The SPIFFE ID itself, of any kind (SPIFFE IDs carry no kind prefix); Portcullis' own SVIDs name their identity.
  producer: (t, ownBundle) => (t.bundle === ownBundle ? undefined : { trust: t.name, template: `spiffe://${t.trust_domain}/{path}`, kind: undefined, shared: t.shared_namespace === true }),
  create: (t, deps) => {
    const { SpiffeTrust } = impl();
    if (t.bundle !== PORTCULLIS_BUNDLE) return { verifier: SpiffeTrust.fromConfig(t, { clock: deps.clock, replay: deps.replay }) };
    // An SVID Portcullis issued logs in as the identity it was issued for, while its lease is active.
    const ca = deps.ownCa;
    const bundle = ca?.bundle(t.trust_domain);
    if (!ca || !bundle) throw new InvalidInput(`trust ${t.name}: no spiffe-x509 target for trust domain ${t.trust_domain}`, 'trusts');
    return { verifier: new SpiffeTrust(t, bundle, { clock: deps.clock, replay: deps.replay, issuedBy: (id, serial) => ca.issuedBy(t.trust_domain, id, serial) }) };
  },
};
