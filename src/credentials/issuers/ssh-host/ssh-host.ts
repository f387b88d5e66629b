// OpenSSH host certificates from the Portcullis host CA: principals = the host names the target
// maps for the requesting identity (all of them, or the subset asked for), key id = the identity,
// validity = the lease, no options or extensions. Revoking the lease ends the record; a host
// certificate already copied cannot be recalled, so keep them short and renew (`creds ssh-host`
// from a timer).
import type { Clock } from '../../../common/clock.ts';
import { Forbidden, InvalidInput } from '../../../common/errors.ts';
import { certificateResult, newSerial, principalsFor } from '../ssh/ssh.ts';
import type { SshCa } from '../ssh/ssh.ts';
import { parseSshPublicKey, signUserCertificate } from '../ssh/ssh-cert.ts';
import type { CredentialIssuer, IssueRequest, IssueResult, Lease, ReconcileResult, RenewResult } from '../../types.ts';
import type { SshHostTarget } from './config.ts';

export interface SshHostIssuerOptions {
  target: SshHostTarget;
  ca: SshCa;
  clock: Clock;
}

export class SshHostIssuer implements CredentialIssuer {
  readonly kind = 'ssh-host' as const;
  readonly target: string;
  readonly resourceType = 'Host';
  /** Only signed: nothing exists at a target until the host installs it. */
  readonly createsAtTarget = false;
  readonly #cfg: SshHostTarget;
  readonly #ca: SshCa;

  constructor(opts: SshHostIssuerOptions) {
    this.#cfg = opts.target;
    this.target = opts.target.name;
    this.#ca = opts.ca;
  }

  check(params: Record<string, unknown>, _permission: string | undefined, identityId: string): string {
    if (typeof params.publicKey !== 'string') throw new InvalidInput('public_key: required — the host\'s public key (e.g. /etc/ssh/ssh_host_ed25519_key.pub)', 'public_key');
    parseSshPublicKey(params.publicKey, 'public_key');
    const mapped = principalsFor(this.#cfg, identityId);
    if (mapped.length === 0) throw new Forbidden(`no host names are mapped for ${identityId} on ${this.target}`);
    if (params.principals === undefined) return mapped.join(',');
    if (!Array.isArray(params.principals) || params.principals.length === 0 || params.principals.some((p) => typeof p !== 'string')) {
      throw new InvalidInput('principals: expected a non-empty list of host names', 'principals');
    }
    const asked = [...new Set(params.principals as string[])].sort();
    const extra = asked.filter((p) => !mapped.includes(p));
    if (extra.length) throw new Forbidden(`host names not mapped for ${identityId} on ${this.target}: ${extra.join(', ')}`);
    return asked.join(',');
  }

  #sign(lease: Lease, publicKey: string, expiresAt: number) {
    const serial = newSerial();
    const hosts = lease.permission.split(',');
    const validAfter = Math.floor(lease.issuedAt / 1000);
    const cert = signUserCertificate(this.#ca.privateKey, {
      publicKey: parseSshPublicKey(publicKey),
      serial,
      keyId: lease.identityId,
      principals: hosts,
      validAfter,
      validBefore: Math.floor(expiresAt / 1000),
      criticalOptions: {},
      extensions: [],
      host: true,
    });
    return certificateResult(cert, { serial, keyId: lease.identityId, validAfter, validBeforeMs: expiresAt, caPublicKeyLine: this.#ca.publicKeyLine }, { hosts });
  }

  async issue(req: IssueRequest): Promise<IssueResult> {
    const pk = parseSshPublicKey(req.params.publicKey as string);
    const out = this.#sign(req.lease, pk.line, req.lease.expiresAt);
    return { ...out, params: { publicKey: pk.line, serial: out.handle } };
  }

  async renew(lease: Lease, expiresAt: number): Promise<RenewResult> {
    return this.#sign(lease, String(lease.params.publicKey), expiresAt);
  }

  /** Nothing to undo at a target: the lease's record ends; the certificate runs out at its end. */
  async revoke(): Promise<void> {}

  async reconcile(): Promise<ReconcileResult> {
    return { dropped: [], missing: [], errors: [] };
  }

  async close(): Promise<void> {}
}
