// OpenSSH user and host certificates, encoded by hand per PROTOCOL.certkeys and signed with node:crypto
// Ed25519. The format is small and fixed; doing it in-process avoids a subprocess per issuance
// and keeps the CA private key out of files. Tests check the result with ssh-keygen -L and sshd.
import { createPublicKey, sign, verify } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { InvalidInput } from '../../../common/errors.ts';
import { randomPooled } from '../../../crypto/random.ts';
import { SshWireReader, SshWireWriter, readSshCertificate } from '../../../crypto/ssh-wire.ts';

const CERT_TYPES: Record<string, string> = {
  'ssh-ed25519': 'ssh-ed25519-cert-v01@openssh.com',
  'ecdsa-sha2-nistp256': 'ecdsa-sha2-nistp256-cert-v01@openssh.com',
  'ecdsa-sha2-nistp384': 'ecdsa-sha2-nistp384-cert-v01@openssh.com',
  'ecdsa-sha2-nistp521': 'ecdsa-sha2-nistp521-cert-v01@openssh.com',
  'ssh-rsa': 'ssh-rsa-cert-v01@openssh.com',
};

const SSH_CERT_USER = 1;
const SSH_CERT_HOST = 2;

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
    const r = new SshWireReader(blob);
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
  return new SshWireWriter().string('ssh-ed25519').string(Buffer.from(jwk.x, 'base64url')).bytes();
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
  const principals = new SshWireWriter();
  for (const p of spec.principals) principals.string(p);
  // Critical options: name + string-wrapped value; extensions: name + empty. Both sorted by name.
  const crit = new SshWireWriter();
  for (const name of Object.keys(spec.criticalOptions).sort()) {
    crit.string(name).string(new SshWireWriter().string(spec.criticalOptions[name]!).bytes());
  }
  const ext = new SshWireWriter();
  for (const name of [...new Set(spec.extensions)].sort()) ext.string(name).string('');
  return new SshWireWriter()
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
  const blob = Buffer.concat([body, new SshWireWriter().string(new SshWireWriter().string('ssh-ed25519').string(sig).bytes()).bytes()]);
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
  const c = readSshCertificate(blob);
  const sr = new SshWireReader(c.signature);
  sr.string(); // signature type
  const signatureValid = verify(null, blob.subarray(0, c.signedLength), createPublicKey(ca), sr.string());
  const { type, serial, certType, keyId, principals, criticalOptions, extensions } = c;
  return { type, serial, certType, keyId, principals, validAfter: Number(c.validAfter), validBefore: Number(c.validBefore), criticalOptions, extensions, signatureValid };
}
