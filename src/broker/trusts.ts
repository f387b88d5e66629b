// The configured trusts, turned into the verifiers logins are checked against: OIDC and SPIFFE
// workload trusts and API keys behind one Authenticator, human (oidc-human) trusts by name.
import type { OutboundFetch } from '../common/outbound.ts';
import type { SpiffeTrustConfig, TrustConfig } from '../config/types.ts';
import { PORTCULLIS_BUNDLE } from '../config/load.ts';
import type { Clock } from '../common/clock.ts';
import { InvalidInput } from '../common/errors.ts';
import type { TrustVerifier } from '../identity/types.ts';
import { OidcTrust } from '../identity/oidc.ts';
import { SpiffeTrust } from '../identity/spiffe.ts';
import type { ApiKeyService } from '../identity/apikeys.ts';
import { Authenticator } from '../identity/authenticator.ts';
import { fail as authnFail } from '../identity/reasons.ts';
import { HumanOidcTrust } from '../identity/oidc-human.ts';
import { JtiReplayStore } from '../identity/replay.ts';
import type { Db } from '../store/sqlite/db.ts';
import { identityForSpiffeId } from '../credentials/index.ts';
import type { CredentialService, Lease, SpiffeCaStore } from '../credentials/index.ts';

export interface TrustDeps {
  clock: Clock;
  /** `iss` of the broker's own session tokens. */
  issuer: string;
  apikeys: ApiKeyService;
  spiffeCa: SpiffeCaStore;
  /** Looked up at login time: the credential service is made after the verifiers. */
  credentials: () => CredentialService;
  /** How jwks_uri and OIDC endpoints are fetched (the outbound policy). */
  fetch?: OutboundFetch;
  /** Keeps the token ids of trusts with `replay: reject` (across restarts). */
  db: Db;
}

export function createTrusts(trusts: readonly TrustConfig[], deps: TrustDeps): { authenticator: Authenticator; humanTrusts: Map<string, HumanOidcTrust> } {
  const humanTrusts = new Map<string, HumanOidcTrust>();
  const verifiers: TrustVerifier[] = [];
  const replay = JtiReplayStore.open(deps.db);
  for (const t of trusts) {
    if (t.kind === 'oidc') verifiers.push(new OidcTrust(t, { clock: deps.clock, replay, ...(deps.fetch && { fetch: deps.fetch }) }));
    else if (t.kind === 'spiffe') verifiers.push(spiffeTrust(t, deps, replay));
    else humanTrusts.set(t.name, new HumanOidcTrust(t, { clock: deps.clock, replay, ...(deps.fetch && { fetch: deps.fetch }) }));
  }
  verifiers.push(deps.apikeys.verifier());
  return { authenticator: new Authenticator(verifiers, { sessionIssuer: deps.issuer }), humanTrusts };
}

/**
 * A spiffe trust reads its bundle file, or with `bundle: portcullis` uses Portcullis' own CA:
 * an SVID it issued logs in as the identity it was issued for, while its lease is active.
 */
function spiffeTrust(t: SpiffeTrustConfig, deps: TrustDeps, replay: JtiReplayStore): SpiffeTrust {
  if (t.bundle !== PORTCULLIS_BUNDLE) return SpiffeTrust.fromConfig(t, { clock: deps.clock, replay });
  const bundle = deps.spiffeCa.bundle(t.trust_domain);
  if (!bundle) throw new InvalidInput(`trust ${t.name}: no spiffe-x509 target for trust domain ${t.trust_domain}`, 'trusts');
  return new SpiffeTrust(t, bundle, {
    clock: deps.clock,
    replay,
    issuedBy: async (id, serial) => {
      const identityId = identityForSpiffeId(t.trust_domain, id.id);
      if (identityId === undefined) throw authnFail('bad_spiffe_id', 'SPIFFE ID was not issued for a Portcullis identity');
      const credentials = deps.credentials();
      const lease = await svidLease(credentials, serial);
      if (!lease || lease.identityId !== identityId) throw authnFail('untrusted_chain', 'no lease for this SVID');
      if (!(await credentials.isActive(lease.id))) throw authnFail('revoked', `SVID lease ${lease.id} is ${lease.status}`);
      return identityId;
    },
  });
}

/** The lease of an SVID by certificate serial (node prints it upper-case, the issuer stores lower-case hex). */
async function svidLease(credentials: CredentialService, serial: string): Promise<Lease | undefined> {
  const hex = serial.toLowerCase().replace(/^0+/, '');
  for (const h of [hex, `0${hex}`, `00${hex}`]) {
    const r = await credentials.introspect('spiffe-x509', h);
    if (r.lease) return r.lease;
  }
  return undefined;
}
