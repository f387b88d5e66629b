// Verifies an OpenSSH user certificate offered to the gateway (ssh2's Server does not understand
// certificates): strict parse per PROTOCOL.certkeys, signed by the expected CA, user type, validity
// window, principal, no unknown critical option, and the client's signature over the session id.
import { createPublicKey, verify } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { SshWireReader, readSshCertificate } from '../../crypto/ssh-wire.ts';

export const ED25519_CERT = 'ssh-ed25519-cert-v01@openssh.com';
const SSH_CERT_USER = 1;
/** Critical options the gateway understands; any other one refuses the certificate (PROTOCOL.certkeys). */
const KNOWN_CRITICAL = new Set(['source-address', 'force-command', 'verify-required']);

/** Why a certificate was refused (for the authn audit record; the client only sees "denied"). */
export class CertificateRefused extends Error {
  readonly reason: string;
  constructor(reason: string, detail: string) {
    super(detail);
    this.name = 'CertificateRefused';
    this.reason = reason;
  }
}

/** Any overrun of the wire format refuses the certificate as malformed. */
const truncated = (): Error => new CertificateRefused('malformed', 'truncated');
function wire(b: Buffer): SshWireReader {
  return new SshWireReader(b, truncated);
}

export interface UserCertificate {
  serial: string;
  keyId: string;
  principals: string[];
  validAfter: number;
  validBefore: number;
  criticalOptions: Record<string, string>;
  extensions: string[];
  /** The certified Ed25519 public key (raw 32 bytes). */
  publicKey: Buffer;
}

function ed25519Key(raw: Buffer): KeyObject {
  if (raw.length !== 32) throw new CertificateRefused('malformed', 'ed25519 key must be 32 bytes');
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' });
}

/** `string "ssh-ed25519" string sig(64)` → the raw signature. */
function ed25519Signature(blob: Buffer): Buffer {
  const r = wire(blob);
  if (r.text() !== 'ssh-ed25519') throw new CertificateRefused('bad_signature', 'signature is not ssh-ed25519');
  const sig = r.string();
  if (sig.length !== 64 || !r.done()) throw new CertificateRefused('bad_signature', 'malformed ed25519 signature');
  return sig;
}

/**
 * Parses and checks a user certificate blob: structure, certificate type, validity at `nowSec`,
 * principal `login` (when given), critical options, and — when `caBlob` is given — that the CA is
 * that key and its signature verifies (the broker checks the CA again when it authenticates the
 * certificate). Throws CertificateRefused with a reason.
 */
export function verifyUserCertificate(blob: Buffer, caBlob: Buffer | undefined, nowSec: number, login?: string): UserCertificate {
  if (wire(blob).text() !== ED25519_CERT) throw new CertificateRefused('unsupported', 'only ssh-ed25519 user certificates are accepted');
  const c = readSshCertificate(blob, truncated);
  const publicKey = c.keyFields[0]!;
  if (publicKey.length !== 32) throw new CertificateRefused('malformed', 'ed25519 key must be 32 bytes');
  const { serial, certType: type, keyId, principals, validAfter, validBefore, criticalOptions, extensions, signatureKey, signedLength } = c;
  const signature = ed25519Signature(c.signature);
  if (c.trailing) throw new CertificateRefused('malformed', 'trailing data after the signature');
  // The CA: byte-equal to Portcullis' user CA, then its signature over everything before it.
  if (caBlob !== undefined) {
    if (!signatureKey.equals(caBlob)) throw new CertificateRefused('untrusted_ca', 'certificate is not signed by the Portcullis user CA');
    const ca = wire(caBlob);
    ca.text();
    if (!verify(null, blob.subarray(0, signedLength), ed25519Key(ca.string()), signature)) {
      throw new CertificateRefused('bad_signature', 'CA signature does not verify');
    }
  }
  if (type !== SSH_CERT_USER) throw new CertificateRefused('wrong_type', 'not a user certificate');
  if (BigInt(nowSec) < validAfter) throw new CertificateRefused('not_yet_valid', 'certificate is not valid yet');
  if (BigInt(nowSec) >= validBefore) throw new CertificateRefused('expired', 'certificate has expired');
  if (login !== undefined && !principals.includes(login)) throw new CertificateRefused('principal', `certificate does not name the login ${login}`);
  for (const name of Object.keys(criticalOptions)) {
    if (!KNOWN_CRITICAL.has(name)) throw new CertificateRefused('critical_option', `unknown critical option ${name}`);
  }
  // The gateway forces no command; a certificate restricted to one must not open a shell here.
  if ('force-command' in criticalOptions) throw new CertificateRefused('critical_option', 'force-command certificates are not accepted by the gateway');
  return {
    serial: serial.toString(),
    keyId,
    principals,
    validAfter: Number(validAfter),
    validBefore: Number(validBefore),
    criticalOptions,
    extensions,
    publicKey: Buffer.from(publicKey),
  };
}

/**
 * The client's proof of possession: `signature` (SSH wire form, as ssh2 passes it for certificate
 * algorithms it does not know) over `signedData` (session id + USERAUTH_REQUEST, built by ssh2).
 */
/** The certificate as an OpenSSH line (what the broker's authenticate takes). */
export function certificateLine(blob: Buffer): string {
  return `${ED25519_CERT} ${blob.toString('base64')}`;
}

export function verifyPossession(cert: UserCertificate, signedData: Buffer, signature: Buffer): boolean {
  try {
    return verify(null, signedData, ed25519Key(cert.publicKey), ed25519Signature(signature));
  } catch {
    return false;
  }
}

/** Checks `source-address` (comma-separated addresses/CIDRs) against the client address. */
export function sourceAllowed(list: string, address: string): boolean {
  const addr = address.replace(/^::ffff:/, '');
  for (const entry of list.split(',')) {
    const [net, bits] = entry.trim().split('/');
    if (!net) continue;
    if (net.includes(':') || addr.includes(':')) {
      if (bits === undefined && net === addr) return true;
      continue; // IPv6 prefixes: exact match only (the issuer writes IPv4 CIDRs in practice)
    }
    const a = ipv4(addr);
    const n = ipv4(net);
    if (a === undefined || n === undefined) continue;
    const b = bits === undefined ? 32 : Number(bits);
    if (!(b >= 0 && b <= 32)) continue;
    const mask = b === 0 ? 0 : (~0 << (32 - b)) >>> 0;
    if (((a & mask) >>> 0) === ((n & mask) >>> 0)) return true;
  }
  return false;
}

function ipv4(s: string): number | undefined {
  const p = s.split('.');
  if (p.length !== 4) return undefined;
  let out = 0;
  for (const x of p) {
    if (!/^\d{1,3}$/.test(x) || Number(x) > 255) return undefined;
    out = (out << 8) + Number(x);
  }
  return out >>> 0;
}
