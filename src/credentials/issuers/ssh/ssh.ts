// SSH user certificates from a Portcullis Ed25519 CA. The certificate carries the identity as key
// id, the principals the target maps for that identity, validity = the lease, `source-address`
// when configured, and only the allowed extensions (default: permit-pty only).
// Revocation: certificates cannot be recalled, so they are short-lived; when a KRL path is
// configured, revoked serials are written to an OpenSSH KRL (via `ssh-keygen -k`) that sshd reads
// through `RevokedKeys`, refusing new logins at once. Live SSH sessions are not ended by this.
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { Clock } from '../../../common/clock.ts';
import { Forbidden, InvalidInput } from '../../../common/errors.ts';
import type { SshTarget } from './config.ts';
import { TargetError } from '../../errors.ts';
import { fingerprint } from '../../fingerprint.ts';
import { ed25519PublicLine, parseSshPublicKey, signUserCertificate } from './ssh-cert.ts';
import type { SshPublicKey } from './ssh-cert.ts';
import { randomPooled } from '../../../crypto/random.ts';
import type { CredentialIssuer, IssueRequest, IssueResult, Lease, ReconcileResult, RenewResult } from '../../types.ts';

const run = promisify(execFile);

export interface SshCa {
  /** Ed25519 private key (from the keyring). */
  privateKey: KeyObject;
  /** `ssh-ed25519 AAAA… portcullis-ca` — put it in sshd's TrustedUserCAKeys. */
  publicKeyLine: string;
}

export function sshCaFromKey(privateKey: KeyObject, comment = 'portcullis-user-ca'): SshCa {
  return { privateKey, publicKeyLine: ed25519PublicLine(privateKey, comment) };
}

/** A fresh CA key for development and tests; production keys come from the keyring. */
export function generateSshCa(): SshCa {
  return sshCaFromKey(generateKeyPairSync('ed25519').privateKey);
}

export interface SshIssuerOptions {
  target: SshTarget;
  ca: SshCa;
  clock: Clock;
  /** OpenSSH KRL sshd reads via `RevokedKeys`; when set, revocation refuses new logins at once. */
  krlPath?: string;
  /** ssh-keygen binary used to compile the KRL (default: from PATH). */
  sshKeygen?: string;
}

/** 63-bit random serial: unique per certificate, the handle revocation lists refer to. */
function newSerial(): bigint {
  return randomPooled(8).readBigUInt64BE() >> 1n;
}

/** Principals an identity may use on the target: union of every matching pattern. */
function principalsFor(target: SshTarget, identityId: string): string[] {
  const out = new Set<string>();
  for (const [pattern, list] of Object.entries(target.principals)) {
    const hit = pattern.endsWith('*') ? identityId.startsWith(pattern.slice(0, -1)) : pattern === identityId;
    if (hit) for (const p of list) out.add(p);
  }
  return [...out].sort();
}

export class SshIssuer implements CredentialIssuer {
  readonly kind = 'ssh' as const;
  readonly target: string;
  readonly resourceType = 'Host';
  /** A certificate is only signed: nothing exists until it is handed out. */
  readonly createsAtTarget = false;
  readonly #cfg: SshTarget;
  readonly #ca: SshCa;
  readonly #clock: Clock;
  readonly #krl: string | undefined;
  readonly #keygen: string;
  #krlWrite: Promise<void> = Promise.resolve();

  constructor(opts: SshIssuerOptions) {
    this.#cfg = opts.target;
    this.target = opts.target.name;
    this.#ca = opts.ca;
    this.#clock = opts.clock;
    this.#krl = opts.krlPath;
    this.#keygen = opts.sshKeygen ?? 'ssh-keygen';
  }

  get caPublicKey(): string {
    return this.#ca.publicKeyLine;
  }

  #principals(params: Record<string, unknown>, identityId: string): string[] {
    const mapped = principalsFor(this.#cfg, identityId);
    if (mapped.length === 0) throw new Forbidden(`no login principals are mapped for ${identityId} on ${this.target}`);
    if (params.principals === undefined) return mapped;
    if (!Array.isArray(params.principals) || params.principals.length === 0 || params.principals.some((p) => typeof p !== 'string')) {
      throw new InvalidInput('principals: expected a non-empty list of login names', 'principals');
    }
    const asked = [...new Set(params.principals as string[])].sort();
    const extra = asked.filter((p) => !mapped.includes(p));
    if (extra.length) throw new Forbidden(`principals not mapped for ${identityId} on ${this.target}: ${extra.join(', ')}`);
    return asked;
  }

  check(params: Record<string, unknown>, _permission: string | undefined, identityId: string): string {
    if (typeof params.publicKey !== 'string') throw new InvalidInput('publicKey: required OpenSSH public key line', 'publicKey');
    parseSshPublicKey(params.publicKey, 'publicKey');
    return this.#principals(params, identityId).join(',');
  }

  #sign(lease: Lease, pk: SshPublicKey, principals: string[], serial: bigint, validBefore: number) {
    const crit: Record<string, string> = {};
    if (this.#cfg.source_address) crit['source-address'] = this.#cfg.source_address.join(',');
    const validAfter = Math.floor(lease.issuedAt / 1000);
    const cert = signUserCertificate(this.#ca.privateKey, {
      publicKey: pk,
      serial,
      keyId: lease.identityId,
      principals,
      validAfter,
      validBefore: Math.floor(validBefore / 1000),
      criticalOptions: crit,
      extensions: this.#cfg.extensions,
    });
    return {
      handle: serial.toString(),
      fingerprint: fingerprint(cert.blob),
      credential: {
        certificate: cert.line,
        serial: serial.toString(),
        key_id: lease.identityId,
        principals,
        valid_after: new Date(validAfter * 1000).toISOString(),
        valid_before: new Date(validBefore).toISOString(),
        hosts: this.#cfg.hosts,
        ca_public_key: this.#ca.publicKeyLine,
      },
    };
  }

  async issue(req: IssueRequest): Promise<IssueResult> {
    const { lease, params } = req;
    const pk = parseSshPublicKey(params.publicKey as string);
    const principals = lease.permission.split(',');
    const out = this.#sign(lease, pk, principals, newSerial(), lease.expiresAt);
    return { ...out, params: { publicKey: pk.line, publicKeyFingerprint: fingerprint(pk.blob), serial: out.handle } };
  }

  /** A certificate's validity is signed into it: renewal issues a new certificate (new serial). */
  async renew(lease: Lease, expiresAt: number): Promise<RenewResult> {
    const out = this.#sign(lease, parseSshPublicKey(String(lease.params.publicKey)), lease.permission.split(','), newSerial(), expiresAt);
    // The superseded certificate must stop working too.
    if (lease.handle) await this.#addToKrl(lease.handle, lease.expiresAt);
    return out;
  }

  async revoke(lease: Lease): Promise<void> {
    if (lease.handle) await this.#addToKrl(lease.handle, lease.expiresAt);
  }

  #addToKrl(serial: string, expiresAt: number): Promise<void> {
    const krl = this.#krl;
    if (!krl) return Promise.resolve();
    // Serialised: concurrent revocations must not lose each other's serials.
    const next = this.#krlWrite.then(async () => {
      const statePath = `${krl}.serials.json`;
      const now = this.#clock.now();
      const state = JSON.parse(await readFile(statePath, 'utf8').catch(() => '{}')) as Record<string, number>;
      state[serial] = expiresAt;
      // Entries for certificates that have expired anyway are pruned to keep the KRL small.
      for (const [s, until] of Object.entries(state)) if (until < now - 60_000) delete state[s];
      await writeFile(`${statePath}.tmp`, JSON.stringify(state));
      await rename(`${statePath}.tmp`, statePath);
      const specPath = `${krl}.spec`;
      await writeFile(specPath, Object.keys(state).map((s) => `serial: ${s}\n`).join(''));
      const caPub = `${krl}.ca.pub`;
      await writeFile(caPub, `${this.#ca.publicKeyLine}\n`);
      const tmp = `${krl}.tmp`;
      try {
        await run(this.#keygen, ['-k', '-f', tmp, '-s', caPub, specPath], { timeout: 10_000 });
      } catch (e) {
        throw new TargetError(this.target, `cannot write KRL: ${(e as Error).message.split('\n')[0]}`);
      }
      await rename(tmp, krl);
    });
    this.#krlWrite = next.catch(() => {});
    return next;
  }

  /** Certificates live only on the holder's disk: there is nothing at the target to reconcile. */
  async reconcile(): Promise<ReconcileResult> {
    return { dropped: [], missing: [], errors: [] };
  }

  async close(): Promise<void> {
    await this.#krlWrite;
  }
}
