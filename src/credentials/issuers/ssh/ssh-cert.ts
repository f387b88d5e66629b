// OpenSSH user and host certificates, encoded by hand per PROTOCOL.certkeys and signed with node:crypto
// Ed25519. The format is small and fixed; doing it in-process avoids a subprocess per issuance
// and keeps the CA private key out of files. Tests check the result with ssh-keygen -L and sshd.
import { createPublicKey, sign, verify } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { InvalidInput } from '../../../common/errors.ts';
import { randomPooled } from '../../../crypto/random.ts';

const CERT_TYPES: Record<string, string> = {
  'ssh-ed25519': 'ssh-ed25519-cert-v01@openssh.com',
  'ecdsa-sha2-nistp256': 'ecdsa-sha2-nistp256-cert-v01@openssh.com',
  'ecdsa-sha2-nistp384': 'ecdsa-sha2-nistp384-cert-v01@openssh.com',
  'ecdsa-sha2-nistp521': 'ecdsa-sha2-nistp521-cert-v01@openssh.com',
  'ssh-rsa': 'ssh-rsa-cert-v01@openssh.com',
};

const SSH_CERT_USER = 1;
const SSH_CERT_HOST = 2;

class Writer {
  readonly parts: Buffer[] = [];
  raw(b: Uint8Array): this {
    this.parts.push(Buffer.from(b));
    return this;
  }
  u32(n: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return this.raw(b);
  }
  u64(n: bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(n);
    return this.raw(b);
  }
  string(s: string | Uint8Array): this {
    const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : Buffer.from(s);
    return this.u32(b.length).raw(b);
  }
  bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}

class Reader {
  #b: Buffer;
  #o = 0;
  constructor(b: Buffer) {
    this.#b = b;
  }
  string(): Buffer {
    if (this.#o + 4 > this.#b.length) throw new Error('truncated');
    const n = this.#b.readUInt32BE(this.#o);
    this.#o += 4;
    if (this.#o + n > this.#b.length) throw new Error('truncated');
    const out = this.#b.subarray(this.#o, this.#o + n);
    this.#o += n;
    return out;
  }
  u32(): number {
    const n = this.#b.readUInt32BE(this.#o);
    this.#o += 4;
    return n;
  }
  u64(): bigint {
    const n = this.#b.readBigUInt64BE(this.#o);
    this.#o += 8;
    return n;
  }
  rest(): Buffer {
    return this.#b.subarray(this.#o);
  }
  get offset(): number {
    return this.#o;
  }
  done(): boolean {
    return this.#o === this.#b.length;
  }
}

export interface SshPublicKey {
  type: string;
  /** The whole wire blob (string type + key fields). */
  blob: Buffer;
  /** The key fields after the type string, copied verbatim into the certificate. */
  fields: Buffer;
  /** `ssh-ed25519 AAAA…` without comment. */
  line: string;
}

/** Parses an OpenSSH public key line (`type base64 [comment]`), checking type and size. */
export function parseSshPublicKey(text: string, field = 'publicKey'): SshPublicKey {
  const m = /^([a-z0-9@.-]+) ([A-Za-z0-9+/]+={0,2})(?: .*)?$/.exec(text.trim());
  if (!m) throw new InvalidInput(`${field}: expected an OpenSSH public key line (e.g. ssh-ed25519 AAAA…)`, field);
  const type = m[1]!;
  if (!CERT_TYPES[type]) throw new InvalidInput(`${field}: key type ${type} is not supported (${Object.keys(CERT_TYPES).join(', ')})`, field);
  const blob = Buffer.from(m[2]!, 'base64');
  try {
    const r = new Reader(blob);
    if (r.string().toString() !== type) throw new Error('type mismatch');
    const fieldsStart = r.offset;
    if (type === 'ssh-ed25519') {
      if (r.string().length !== 32) throw new Error('bad ed25519 key');
    } else if (type === 'ssh-rsa') {
      r.string();
      const n = r.string();
      const bits = (n.length - (n[0] === 0 ? 1 : 0)) * 8;
      if (bits < 2048) throw new InvalidInput(`${field}: RSA keys must be at least 2048 bits`, field);
    } else {
      r.string();
      r.string();
    }
    if (!r.done()) throw new Error('trailing data');
    return { type, blob, fields: blob.subarray(fieldsStart), line: `${type} ${m[2]}` };
  } catch (e) {
    if (e instanceof InvalidInput) throw e;
    throw new InvalidInput(`${field}: malformed ${type} public key`, field);
  }
}

/** OpenSSH wire blob of an Ed25519 public key. */
function ed25519Blob(key: KeyObject): Buffer {
  const jwk = createPublicKey(key).export({ format: 'jwk' });
  if (jwk.crv !== 'Ed25519' || !jwk.x) throw new Error('SSH CA key must be Ed25519');
  return new Writer().string('ssh-ed25519').string(Buffer.from(jwk.x, 'base64url')).bytes();
}

/** The CA's public blob goes into every certificate: derived once per key, not per issuance. */
const caBlobs = new WeakMap<KeyObject, Buffer>();
function caBlob(ca: KeyObject): Buffer {
  let b = caBlobs.get(ca);
  if (b === undefined) caBlobs.set(ca, (b = ed25519Blob(ca)));
  return b;
}

export function ed25519PublicLine(key: KeyObject, comment = ''): string {
  return `ssh-ed25519 ${ed25519Blob(key).toString('base64')}${comment ? ` ${comment}` : ''}`;
}

export interface UserCertSpec {
  publicKey: SshPublicKey;
  serial: bigint;
  keyId: string;
  principals: string[];
  /** Seconds since the epoch. */
  validAfter: number;
  validBefore: number;
  criticalOptions: Record<string, string>;
  extensions: string[];
  /** A host certificate (its principals are host names; no options or extensions); default user. */
  host?: boolean;
}

/** The signed part of a user certificate (PROTOCOL.certkeys), up to and including the CA key. */
function certificateBody(ca: KeyObject, spec: UserCertSpec): Buffer {
  const certType = CERT_TYPES[spec.publicKey.type]!;
  const principals = new Writer();
  for (const p of spec.principals) principals.string(p);
  // Critical options: name + string-wrapped value; extensions: name + empty. Both sorted by name.
  const crit = new Writer();
  for (const name of Object.keys(spec.criticalOptions).sort()) {
    crit.string(name).string(new Writer().string(spec.criticalOptions[name]!).bytes());
  }
  const ext = new Writer();
  for (const name of [...new Set(spec.extensions)].sort()) ext.string(name).string('');
  return new Writer()
    .string(certType)
    .string(randomPooled(32))
    .raw(spec.publicKey.fields)
    .u64(spec.serial)
    .u32(spec.host ? SSH_CERT_HOST : SSH_CERT_USER)
    .string(spec.keyId)
    .string(principals.bytes())
    .u64(BigInt(spec.validAfter))
    .u64(BigInt(spec.validBefore))
    .string(crit.bytes())
    .string(ext.bytes())
    .string('')
    .string(caBlob(ca))
    .bytes();
}

function certificate(spec: UserCertSpec, body: Buffer, sig: Buffer): { line: string; blob: Buffer } {
  const blob = Buffer.concat([body, new Writer().string(new Writer().string('ssh-ed25519').string(sig).bytes()).bytes()]);
  return { line: `${CERT_TYPES[spec.publicKey.type]!} ${blob.toString('base64')} ${spec.keyId}`, blob };
}

/** Builds and signs a user certificate; returns the `type base64 keyid` line for `-cert.pub`. */
export function signUserCertificate(ca: KeyObject, spec: UserCertSpec): { line: string; blob: Buffer } {
  const body = certificateBody(ca, spec);
  return certificate(spec, body, sign(null, body, ca));
}

/** Parsed view of a user certificate (for tests, introspection and the CLI). */
export interface ParsedUserCert {
  type: string;
  serial: bigint;
  certType: number;
  keyId: string;
  principals: string[];
  validAfter: number;
  validBefore: number;
  criticalOptions: Record<string, string>;
  extensions: string[];
  signatureValid: boolean;
}

export function parseUserCertificate(line: string, ca: KeyObject): ParsedUserCert {
  const blob = Buffer.from(line.trim().split(' ')[1] ?? '', 'base64');
  const r = new Reader(blob);
  const type = r.string().toString();
  r.string(); // nonce
  const keyType = Object.entries(CERT_TYPES).find(([, v]) => v === type)?.[0];
  if (keyType === 'ssh-ed25519') r.string();
  else {
    // ssh-rsa: e, n; ecdsa: curve, point
    r.string();
    r.string();
  }
  const serial = r.u64();
  const certType = r.u32();
  const keyId = r.string().toString();
  const pr = new Reader(r.string());
  const principals: string[] = [];
  while (!pr.done()) principals.push(pr.string().toString());
  const validAfter = Number(r.u64());
  const validBefore = Number(r.u64());
  const cr = new Reader(r.string());
  const criticalOptions: Record<string, string> = {};
  while (!cr.done()) criticalOptions[cr.string().toString()] = new Reader(cr.string()).string().toString();
  const er = new Reader(r.string());
  const extensions: string[] = [];
  while (!er.done()) {
    extensions.push(er.string().toString());
    er.string();
  }
  r.string(); // reserved
  r.string(); // signature key
  const signedLen = r.offset;
  const sr = new Reader(r.string());
  sr.string();
  const sig = sr.string();
  const signatureValid = verify(null, blob.subarray(0, signedLen), createPublicKey(ca), sig);
  return { type, serial, certType, keyId, principals, validAfter, validBefore, criticalOptions, extensions, signatureValid };
}
