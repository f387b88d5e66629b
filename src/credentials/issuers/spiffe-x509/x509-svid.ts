// X.509-SVIDs: short-lived ECDSA-signed workload certificates with exactly one URI SAN
// (spiffe://<trust-domain>/<path>), issued by a Portcullis intermediate CA under a Portcullis
// root. The root is the trust bundle; the intermediate is sent along as the chain. SPIFFE relies
// on short lifetimes instead of CRLs: revocation is recorded on the lease (introspect by serial)
// and the SVID ends on its own within its TTL.
import { createPublicKey, randomBytes, webcrypto } from 'node:crypto';
import * as x509 from '../../../crypto/x509.ts'; // loads the reflect-metadata polyfill first
import type { Clock } from '../../../common/clock.ts';
import { InvalidInput } from '../../../common/errors.ts';
import type { SpiffeX509Target } from './config.ts';
import { TargetError } from '../../errors.ts';
import { fingerprint } from '../../fingerprint.ts';
import type { CredentialIssuer, IssueRequest, IssueResult, Lease, ReconcileResult, RenewResult } from '../../types.ts';

type CryptoKeyPair = webcrypto.CryptoKeyPair;

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export interface CaMaterial {
  cert: x509.X509Certificate;
  keys: CryptoKeyPair;
}

function serial(): string {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f; // positive INTEGER
  return b.toString('hex');
}

async function keys(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
}

/** A Portcullis root for a trust domain (development/tests; production roots come from the keyring). */
export async function generateSpiffeRoot(trustDomain: string, clock: Clock, ttlMs = 10 * 365 * 86_400_000): Promise<CaMaterial> {
  const k = await keys();
  const now = clock.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=Portcullis root for ${trustDomain}, O=Portcullis`,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + ttlMs),
    keys: k,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 1, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(k.publicKey),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://${trustDomain}` }]),
    ],
  });
  return { cert, keys: k };
}

/** The issuing intermediate, signed by the root; its SAN is the trust domain's SPIFFE ID. */
export async function createIntermediate(root: CaMaterial, trustDomain: string, clock: Clock, ttlMs = 30 * 86_400_000): Promise<CaMaterial> {
  const k = await keys();
  const now = clock.now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=Portcullis intermediate for ${trustDomain}, O=Portcullis`,
    issuer: root.cert.subjectName,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(Math.min(now + ttlMs, root.cert.notAfter.getTime())),
    publicKey: k.publicKey,
    signingKey: root.keys.privateKey,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(k.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(root.keys.publicKey),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://${trustDomain}` }]),
    ],
  });
  return { cert, keys: k };
}

const SEGMENT_RE = /^[A-Za-z0-9._-]+$/;

/** `workload:github/acme/api` → `spiffe://<td>/workload/github/acme/api` (SPIFFE path charset only). */
export function spiffeIdFor(trustDomain: string, identityId: string): string {
  const i = identityId.indexOf(':');
  const segments = i > 0 ? [identityId.slice(0, i), ...identityId.slice(i + 1).split('/')] : identityId.split('/');
  if (segments.some((s) => !SEGMENT_RE.test(s) || s === '.' || s === '..')) {
    throw new InvalidInput(`identity ${identityId} cannot be expressed as a SPIFFE ID path (letters, digits, . _ - and / only)`, 'identityId');
  }
  return `spiffe://${trustDomain}/${segments.join('/')}`;
}

/**
 * The inverse of spiffeIdFor: `spiffe://<td>/workload/github/acme/api` → `workload:github/acme/api`,
 * or undefined when the ID is not one spiffeIdFor produces (other trust domain, a single segment).
 */
export function identityForSpiffeId(trustDomain: string, spiffeId: string): string | undefined {
  const prefix = `spiffe://${trustDomain}/`;
  if (!spiffeId.startsWith(prefix)) return undefined;
  const [kind, ...rest] = spiffeId.slice(prefix.length).split('/');
  if (!kind || rest.length === 0 || !/^[a-z][a-z0-9-]*$/.test(kind)) return undefined;
  const id = `${kind}:${rest.join('/')}`;
  // Only an exact round trip counts, so two IDs can never map to one identity.
  try {
    return spiffeIdFor(trustDomain, id) === spiffeId ? id : undefined;
  } catch {
    return undefined;
  }
}

export interface SpiffeX509IssuerOptions {
  target: SpiffeX509Target;
  root: x509.X509Certificate;
  intermediate: CaMaterial;
  clock: Clock;
}

export class SpiffeX509Issuer implements CredentialIssuer {
  readonly kind = 'spiffe-x509' as const;
  readonly target: string;
  readonly resourceType = 'Workload';
  /** A certificate is only signed: nothing exists until it is handed out. */
  readonly createsAtTarget = false;
  readonly #cfg: SpiffeX509Target;
  readonly #root: x509.X509Certificate;
  readonly #ca: CaMaterial;
  readonly #clock: Clock;

  constructor(opts: SpiffeX509IssuerOptions) {
    this.#cfg = opts.target;
    this.target = opts.target.name;
    this.#root = opts.root;
    this.#ca = opts.intermediate;
    this.#clock = opts.clock;
  }

  /** PEM trust bundle (the root) to serve to relying parties. */
  bundlePem(): string {
    return this.#root.toString('pem');
  }

  /** PEM of the intermediate, sent after the leaf. */
  intermediatePem(): string {
    return this.#ca.cert.toString('pem');
  }

  check(params: Record<string, unknown>, _permission: string | undefined, identityId: string): string {
    if (typeof params.publicKeyPem !== 'string' && typeof params.csr !== 'string') {
      throw new InvalidInput('publicKeyPem: required (SPKI PEM of the workload key), or csr (PKCS#10 PEM)', 'publicKeyPem');
    }
    if (typeof params.publicKeyPem === 'string') {
      try {
        createPublicKey(params.publicKeyPem);
      } catch {
        throw new InvalidInput('publicKeyPem: not a PEM public key', 'publicKeyPem');
      }
    }
    return spiffeIdFor(this.#cfg.trust_domain, identityId);
  }

  async #publicKey(params: Record<string, unknown>): Promise<x509.PublicKey> {
    if (typeof params.csr === 'string') {
      let csr: x509.Pkcs10CertificateRequest;
      try {
        csr = new x509.Pkcs10CertificateRequest(params.csr);
      } catch {
        throw new InvalidInput('csr: not a PKCS#10 PEM', 'csr');
      }
      // Proof of possession; whatever names the CSR asks for are ignored.
      if (!(await csr.verify())) throw new InvalidInput('csr: signature does not verify', 'csr');
      return csr.publicKey;
    }
    const der = createPublicKey(params.publicKeyPem as string).export({ format: 'der', type: 'spki' });
    return new x509.PublicKey(new Uint8Array(der));
  }

  async #sign(lease: Lease, expiresAt: number, pub: x509.PublicKey) {
    const notAfter = Math.min(expiresAt, this.#ca.cert.notAfter.getTime());
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: 'O=SPIFFE',
      issuer: this.#ca.cert.subjectName,
      notBefore: new Date(lease.issuedAt - 30_000), // small backdate for verifier clock skew
      notAfter: new Date(notAfter),
      publicKey: pub,
      signingKey: this.#ca.keys.privateKey,
      signingAlgorithm: ALG,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment | x509.KeyUsageFlags.keyAgreement, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        await x509.SubjectKeyIdentifierExtension.create(pub),
        await x509.AuthorityKeyIdentifierExtension.create(this.#ca.keys.publicKey),
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: lease.permission }], true),
      ],
    });
    const leafPem = cert.toString('pem');
    return {
      handle: cert.serialNumber,
      fingerprint: fingerprint(new Uint8Array(cert.rawData)),
      expiresAt: notAfter,
      credential: {
        spiffe_id: lease.permission,
        certificate: leafPem,
        /** Leaf then intermediate: what a TLS peer presents. */
        chain: `${leafPem}\n${this.intermediatePem()}`,
        bundle: this.bundlePem(),
        serial: cert.serialNumber,
        not_after: new Date(notAfter).toISOString(),
      },
    };
  }

  async issue(req: IssueRequest): Promise<IssueResult> {
    const pub = await this.#publicKey(req.params);
    if (this.#ca.cert.notAfter.getTime() <= this.#clock.now()) throw new TargetError(this.target, 'the intermediate CA has expired');
    const out = await this.#sign(req.lease, req.lease.expiresAt, pub);
    return { ...out, params: { spki: Buffer.from(pub.rawData).toString('base64') } };
  }

  async renew(lease: Lease, expiresAt: number): Promise<RenewResult> {
    const pub = new x509.PublicKey(new Uint8Array(Buffer.from(String(lease.params.spki), 'base64')));
    return this.#sign({ ...lease, issuedAt: this.#clock.now() }, expiresAt, pub);
  }

  async revoke(): Promise<void> {}

  async reconcile(): Promise<ReconcileResult> {
    return { dropped: [], missing: [], errors: [] };
  }

  async close(): Promise<void> {}
}
