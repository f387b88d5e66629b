// Target kind → issuer factory. Adding a kind adds one entry here and one file; nothing else moves.
import type { Clock } from '../../common/clock.ts';
import { InvalidInput } from '../../common/errors.ts';
import type { TargetConfig } from '../config.ts';
import { AccessTokenIssuer } from './api/access-token.ts';
import { PostgresIssuer } from './postgres/postgres.ts';
import { SshIssuer } from './ssh/ssh.ts';
import { SpiffeX509Issuer } from './spiffe-x509/x509-svid.ts';
import type { CaMaterial } from './spiffe-x509/x509-svid.ts';
import type * as x509 from '../../crypto/x509.ts';
import type { SshCa } from './ssh/ssh.ts';
import type { CredentialIssuer, JwtSigner } from '../types.ts';

/** What the built-in issuers may need; each uses only its part. */
export interface IssuerDeps {
  clock: Clock;
  /** Environment for secrets named in config (`password_env`). Default process.env. */
  env?: Record<string, string | undefined>;
  /** SSH user CA (ssh targets); `krlPath` enables immediate revocation through sshd RevokedKeys. */
  ssh?: { ca: SshCa; krlPath?: string };
  /** Signs access tokens (api targets); its public key must be in the broker's JWKS. */
  signer?: JwtSigner;
  /** `iss` of access tokens: the broker's external URL. */
  issuerUrl?: string;
  /** SPIFFE CAs by trust domain: root certificate (the bundle) and the issuing intermediate. */
  spiffe?: Record<string, { root: x509.X509Certificate; intermediate: CaMaterial }>;
}

function need<T>(v: T | undefined, target: TargetConfig, what: string): T {
  if (v === undefined) throw new InvalidInput(`target ${target.name}: ${target.kind} targets need ${what}`, 'kind');
  return v;
}

type Factory = (target: TargetConfig, deps: IssuerDeps) => CredentialIssuer;

const FACTORIES: Partial<Record<TargetConfig['kind'], Factory>> = {
  postgres: (t, d) => new PostgresIssuer({ target: t as Extract<TargetConfig, { kind: 'postgres' }>, env: d.env }),
  api: (t, d) =>
    new AccessTokenIssuer({
      target: t as Extract<TargetConfig, { kind: 'api' }>,
      signer: need(d.signer, t, 'a JWT signer (deps.signer)'),
      issuer: need(d.issuerUrl, t, 'the broker URL (deps.issuerUrl)'),
      clock: d.clock,
    }),
  'spiffe-x509': (t, d) => {
    const st = t as Extract<TargetConfig, { kind: 'spiffe-x509' }>;
    const ca = need(d.spiffe?.[st.trust_domain], t, `a CA for trust domain ${st.trust_domain} (deps.spiffe)`);
    return new SpiffeX509Issuer({ target: st, root: ca.root, intermediate: ca.intermediate, clock: d.clock });
  },
  ssh: (t, d) => {
    const ssh = need(d.ssh, t, 'an SSH CA (deps.ssh)');
    return new SshIssuer({ target: t as Extract<TargetConfig, { kind: 'ssh' }>, ca: ssh.ca, clock: d.clock, krlPath: ssh.krlPath });
  },
};

export function createIssuer(target: TargetConfig, deps: IssuerDeps): CredentialIssuer {
  const f = FACTORIES[target.kind];
  if (!f) throw new InvalidInput(`target ${target.name}: kind ${target.kind} has no issuer`, 'kind');
  return f(target, deps);
}
