// The configured trusts, built by their kind's plug-in (identity/trusts/registry.ts): proof
// verifiers and API keys behind one Authenticator, interactive (human) sign-in trusts by name.
import type { OutboundFetch } from '../common/outbound.ts';
import type { TrustConfig } from '../config/types.ts';
import type { Clock } from '../common/clock.ts';
import { InvalidInput } from '../common/errors.ts';
import type { TrustVerifier } from '../identity/types.ts';
import { trustKind } from '../identity/trusts/registry.ts';
import type { OwnSpiffeCa, TrustDeps as PluginDeps } from '../identity/trusts/plugin.ts';
import type { ApiKeyService } from '../identity/apikeys.ts';
import { Authenticator } from '../identity/authenticator.ts';
import { fail as authnFail } from '../identity/reasons.ts';
import type { HumanOidcTrust } from '../identity/trusts/oidc-human/oidc-human.ts';
import { JtiReplayStore } from '../identity/replay.ts';
import type { LoginStateRepository, ReplayRepository } from '../identity/ports.ts';
import { LoginStates } from '../identity/login-state.ts';
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
  replay: ReplayRepository;
  /** Keeps the pending logins of `oidc-human` trusts, sealed under `loginStateKey` (32 bytes). */
  loginState: LoginStateRepository;
  loginStateKey: Uint8Array;
}

export function createTrusts(trusts: readonly TrustConfig[], deps: TrustDeps): { authenticator: Authenticator; humanTrusts: Map<string, HumanOidcTrust> } {
  const humanTrusts = new Map<string, HumanOidcTrust>();
  const verifiers: TrustVerifier[] = [];
  const made: PluginDeps = {
    clock: deps.clock,
    replay: new JtiReplayStore(deps.replay),
    ...(deps.fetch && { fetch: deps.fetch }),
    ownCa: ownCa(deps),
    loginStates: new LoginStates(deps.loginState, deps.loginStateKey),
  };
  for (const t of trusts) {
    const plugin = trustKind(t.kind);
    if (!plugin) throw new InvalidInput(`trust ${t.name}: kind ${t.kind} is not a trust kind`, 'trusts');
    const built = plugin.create(t, made);
    if ('verifier' in built) verifiers.push(built.verifier);
    else humanTrusts.set(t.name, built.human);
  }
  verifiers.push(deps.apikeys.verifier());
  return { authenticator: new Authenticator(verifiers, { sessionIssuer: deps.issuer }), humanTrusts };
}

/**
 * Portcullis' own SPIFFE CA for `bundle: portcullis` trusts: an SVID it issued logs in as the
 * identity it was issued for, while its lease is active.
 */
function ownCa(deps: TrustDeps): OwnSpiffeCa {
  return {
    bundle: (trustDomain) => deps.spiffeCa.bundle(trustDomain),
    issuedBy: async (trustDomain, id, serial) => {
      const identityId = identityForSpiffeId(trustDomain, id.id);
      if (identityId === undefined) throw authnFail('bad_spiffe_id', 'SPIFFE ID was not issued for a Portcullis identity');
      const credentials = deps.credentials();
      const lease = await svidLease(credentials, serial);
      if (!lease || lease.identityId !== identityId) throw authnFail('untrusted_chain', 'no lease for this SVID');
      if (!(await credentials.isActive(lease.id))) throw authnFail('revoked', `SVID lease ${lease.id} is ${lease.status}`);
      return identityId;
    },
  };
}

/** The lease of an SVID by certificate serial (node prints it upper-case, the issuer stores lower-case hex). */
export async function svidLease(credentials: CredentialService, serial: string): Promise<Lease | undefined> {
  const hex = serial.toLowerCase().replace(/^0+/, '');
  for (const h of [hex, `0${hex}`, `00${hex}`]) {
    const r = await credentials.introspect('spiffe-x509', h);
    if (r.lease) return r.lease;
  }
  return undefined;
}
