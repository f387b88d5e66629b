// SSH user certificates from a Portcullis Ed25519 CA. The certificate carries the identity as key
// id, the principals the target maps for that identity, validity = the lease, `source-address`
// when configured, and only the allowed extensions (default: permit-pty only).
// Revocation: certificates cannot be recalled, so they are short-lived; the revoked serials — read
// from the lease table, so every replica sharing a store lists the same — compile to an OpenSSH KRL
// (via `ssh-keygen -k`) that sshd reads through `RevokedKeys`, refusing new logins at once: written
// to the data dir on each revocation here, and served to remote sshd hosts by `GET /v1/ssh/krl`.
// Live SSH sessions are not ended by this (the SSH gateway does that).
import { execFile } from 'node:child_process';
import { createHash, generateKeyPairSync } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Clock } from '../../../common/clock.ts';
import { Forbidden, InvalidInput } from '../../../common/errors.ts';
import type { SshTarget } from './config.ts';
import { TargetError } from '../../errors.ts';
import { fingerprint } from '../../fingerprint.ts';
import { ed25519PublicLine, parseSshPublicKey, signUserCertificate } from './ssh-cert.ts';
import type { SshPublicKey } from './ssh-cert.ts';
import { randomPooled } from '../../../crypto/random.ts';
import type { CredentialIssuer, IssueRequest, IssueResult, Lease, ReconcileResult, RenewResult, RevocationList } from '../../types.ts';
import type { LeaseRepository } from '../../ports.ts';

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
  /** The lease table, whose revoked and superseded certificates the KRL lists. */
  leases?: Pick<LeaseRepository, 'list'>;
  /** ssh-keygen binary used to compile the KRL (default: from PATH). */
  sshKeygen?: string;
}

/** A serial that must stay refused until its certificate would have expired anyway. */
interface RevokedSerial {
  serial: string;
  until: number;
}

/**
 * The serials a KRL must list, from the lease table: every certificate of a lease that is no
 * longer active (revoked, failing to revoke, withdrawn) and not yet expired, and every certificate
 * a renewal replaced (`params.superseded`) that has not expired.
 */
export function revokedSerials(leases: readonly Lease[], now: number): RevokedSerial[] {
  const out = new Map<string, number>();
  for (const l of leases) {
    if (l.kind !== 'ssh') continue;
    if (l.handle && l.status !== 'active' && l.status !== 'issuing' && l.expiresAt > now) out.set(l.handle, l.expiresAt);
    for (const s of supersededOf(l)) if (s.until > now) out.set(s.serial, s.until);
  }
  return [...out].map(([serial, until]) => ({ serial, until })).sort((a, b) => a.serial.localeCompare(b.serial));
}

function supersededOf(l: Lease): RevokedSerial[] {
  const list = l.params.superseded;
  return Array.isArray(list) ? list.filter((s): s is RevokedSerial => typeof s?.serial === 'string' && typeof s?.until === 'number') : [];
}

/**
 * What an SSH issuer (user or host certificates) returns for one signed certificate: the serial as
 * the handle, and the credential fields both kinds share around `names` (principals or hosts).
 */
export function certificateResult(
  cert: { line: string; blob: Buffer },
  c: { serial: bigint; keyId: string; validAfter: number; validBeforeMs: number; caPublicKeyLine: string },
  names: Record<string, unknown>,
): { handle: string; fingerprint: string; credential: Record<string, unknown> } {
  return {
    handle: c.serial.toString(),
    fingerprint: fingerprint(cert.blob),
    credential: {
      certificate: cert.line,
      serial: c.serial.toString(),
      key_id: c.keyId,
      ...names,
      valid_after: new Date(c.validAfter * 1000).toISOString(),
      valid_before: new Date(c.validBeforeMs).toISOString(),
      ca_public_key: c.caPublicKeyLine,
    },
  };
}

/** 63-bit random serial: unique per certificate, the handle revocation lists refer to. */
export function newSerial(): bigint {
  return randomPooled(8).readBigUInt64BE() >> 1n;
}

/** Principals an identity may have in a certificate of the target (user logins, host names): union of every matching pattern. */
export function principalsFor(target: { principals: Record<string, string[]> }, identityId: string): string[] {
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
  readonly #leases: Pick<LeaseRepository, 'list'> | undefined;
  readonly #keygen: string;
  #krlWrite: Promise<void> = Promise.resolve();

  constructor(opts: SshIssuerOptions) {
    this.#cfg = opts.target;
    this.target = opts.target.name;
    this.#ca = opts.ca;
    this.#clock = opts.clock;
    this.#krl = opts.krlPath;
    this.#leases = opts.leases;
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
    return certificateResult(cert, { serial, keyId: lease.identityId, validAfter, validBeforeMs: validBefore, caPublicKeyLine: this.#ca.publicKeyLine }, { principals, hosts: this.#cfg.hosts });
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
    if (!lease.handle) return out;
    // The superseded certificate must stop working too: kept on the lease until it would expire.
    const now = this.#clock.now();
    const replaced = { serial: lease.handle, until: lease.expiresAt };
    const superseded = [...supersededOf(lease).filter((s) => s.until > now), replaced];
    await this.#refreshKrl([replaced]);
    return { ...out, params: { superseded } };
  }

  async revoke(lease: Lease): Promise<void> {
    if (lease.handle) await this.#refreshKrl([{ serial: lease.handle, until: lease.expiresAt }]);
  }

  /** The KRL as it stands in the lease table now, compiled (what `GET /v1/ssh/krl` serves). */
  async revocationList(): Promise<RevocationList> {
    const { krl, spec } = await this.#compile([]);
    return { bytes: krl, version: createHash('sha256').update(this.#ca.publicKeyLine).update('\n').update(spec).digest('base64url') };
  }

  /** The KRL from the lease table plus `extra` (not on record yet), and its spec (serial lines). */
  async #compile(extra: readonly RevokedSerial[]): Promise<{ krl: Buffer; spec: string }> {
    const now = this.#clock.now();
    const fromTable = this.#leases ? revokedSerials(await this.#leases.list({ kind: 'ssh' }, 1_000_000), now) : [];
    const serials = [...new Set([...fromTable.map((s) => s.serial), ...extra.filter((s) => s.until > now).map((s) => s.serial)])].sort();
    const spec = serials.map((s) => `serial: ${s}\n`).join('');
    const dir = await mkdtemp(join(tmpdir(), 'pcx-krl-'));
    try {
      await writeFile(join(dir, 'spec'), spec);
      await writeFile(join(dir, 'ca.pub'), `${this.#ca.publicKeyLine}\n`);
      try {
        await run(this.#keygen, ['-k', '-f', join(dir, 'krl'), '-s', join(dir, 'ca.pub'), join(dir, 'spec')], { timeout: 10_000 });
      } catch (e) {
        throw new TargetError(this.target, `cannot compile the KRL: ${(e as Error).message.split('\n')[0]}`);
      }
      return { krl: await readFile(join(dir, 'krl')), spec };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /** Rewrites the data dir's KRL from the lease table; serialised, each run reads the table afresh. */
  #refreshKrl(extra: readonly RevokedSerial[]): Promise<void> {
    const path = this.#krl;
    if (!path) return Promise.resolve();
    const next = this.#krlWrite.then(async () => {
      const { krl, spec } = await this.#compile(extra);
      await writeFile(`${path}.spec`, spec); // what it lists, for people (sshd reads the KRL)
      await writeFile(`${path}.tmp`, krl, { mode: 0o644 });
      await rename(`${path}.tmp`, path);
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
