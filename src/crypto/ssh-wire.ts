// The SSH wire format (RFC 4251 §5: string, uint32, uint64) and the layout of OpenSSH certificates
// (PROTOCOL.certkeys): the one bounded reader and writer the SSH issuer and the SSH gateway share.

/** Bounded reader over an SSH wire buffer; every overrun throws `truncated()` (default: Error('truncated')). */
export class SshWireReader {
  #b: Buffer;
  #o = 0;
  #truncated: () => Error;
  constructor(b: Buffer, truncated: () => Error = () => new Error('truncated')) {
    this.#b = b;
    this.#truncated = truncated;
  }
  #need(n: number): void {
    if (n > this.#b.length - this.#o) throw this.#truncated();
  }
  string(): Buffer {
    const n = this.u32();
    this.#need(n);
    const out = this.#b.subarray(this.#o, this.#o + n);
    this.#o += n;
    return out;
  }
  text(): string {
    return this.string().toString('utf8');
  }
  u32(): number {
    this.#need(4);
    const n = this.#b.readUInt32BE(this.#o);
    this.#o += 4;
    return n;
  }
  u64(): bigint {
    this.#need(8);
    const n = this.#b.readBigUInt64BE(this.#o);
    this.#o += 8;
    return n;
  }
  /** A reader over the next string, failing the same way. */
  nested(): SshWireReader {
    return new SshWireReader(this.string(), this.#truncated);
  }
  get offset(): number {
    return this.#o;
  }
  done(): boolean {
    return this.#o === this.#b.length;
  }
}

/** Builds an SSH wire buffer. */
export class SshWireWriter {
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

/** A certificate's fields as they stand on the wire, unchecked (no signature, type or validity check). */
export interface SshCertificateFields {
  /** e.g. `ssh-ed25519-cert-v01@openssh.com`. */
  type: string;
  /** The certified key's fields (ed25519: [key]; rsa: [e, n]; ecdsa: [curve, point]). */
  keyFields: Buffer[];
  serial: bigint;
  /** 1 user, 2 host. */
  certType: number;
  keyId: string;
  principals: string[];
  validAfter: bigint;
  validBefore: bigint;
  criticalOptions: Record<string, string>;
  extensions: string[];
  /** The CA's public key blob. */
  signatureKey: Buffer;
  /** How many leading bytes the signature covers (everything up to and including the CA key). */
  signedLength: number;
  /** The signature blob (`string type string sig`). */
  signature: Buffer;
  /** Whether bytes follow the signature (a well-formed certificate has none). */
  trailing: boolean;
}

/**
 * Reads a certificate blob per PROTOCOL.certkeys; an overrun throws `truncated()`. The key fields
 * are one string for ssh-ed25519 certificates and two for the rsa and ecdsa ones.
 */
export function readSshCertificate(blob: Buffer, truncated?: () => Error): SshCertificateFields {
  const r = new SshWireReader(blob, truncated);
  const type = r.text();
  r.string(); // nonce
  const keyFields = [r.string()];
  if (!type.startsWith('ssh-ed25519-')) keyFields.push(r.string());
  const serial = r.u64();
  const certType = r.u32();
  const keyId = r.text();
  const pr = r.nested();
  const principals: string[] = [];
  while (!pr.done()) principals.push(pr.text());
  const validAfter = r.u64();
  const validBefore = r.u64();
  // Critical options: name + string-wrapped value; extensions: name + (empty) data.
  const cr = r.nested();
  const criticalOptions: Record<string, string> = {};
  while (!cr.done()) {
    const name = cr.text();
    const data = cr.nested();
    criticalOptions[name] = data.done() ? '' : data.text();
  }
  const er = r.nested();
  const extensions: string[] = [];
  while (!er.done()) {
    extensions.push(er.text());
    er.string();
  }
  r.string(); // reserved
  const signatureKey = r.string();
  const signedLength = r.offset;
  const signature = r.string();
  return { type, keyFields, serial, certType, keyId, principals, validAfter, validBefore, criticalOptions, extensions, signatureKey, signedLength, signature, trailing: !r.done() };
}
