// Certificates for the X.509-SVID chain tests (issue 8.25): CAs, intermediates and SPIFFE leaves
// shaped per test, and the mTLS login helpers both chain suites use.
import { webcrypto } from 'node:crypto';
import * as x509 from '../../src/crypto/x509.ts';
import { startServer } from '../credentials/server.ts';
import type { TestServer } from '../credentials/server.ts';

export const TD = 'spire.acme.test';
const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
const day = 86_400_000;
let serial = 0x40;

export interface Ca {
  cert: x509.X509Certificate;
  keys: webcrypto.CryptoKeyPair;
}

export interface CaOpts { ca?: boolean; usage?: number | null; pathLength?: number; notBefore?: Date; notAfter?: Date; uri?: string; extra?: x509.Extension[] }

export async function makeCa(name: string, issuer?: Ca, o: CaOpts = {}): Promise<Ca> {
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const usage = o.usage === undefined ? x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign : o.usage;
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(o.ca ?? true, o.pathLength, true),
    ...(usage !== null ? [new x509.KeyUsagesExtension(usage, true)] : []),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ...(o.uri ? [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: o.uri }])] : []),
    ...(o.extra ?? []),
  ];
  const common = { serialNumber: (serial++).toString(16), notBefore: o.notBefore ?? new Date(Date.now() - 2 * day), notAfter: o.notAfter ?? new Date(Date.now() + 30 * day), signingAlgorithm: alg, extensions };
  const cert = issuer
    ? await x509.X509CertificateGenerator.create({ ...common, subject: `CN=${name}`, issuer: issuer.cert.subject, publicKey: keys.publicKey, signingKey: issuer.keys.privateKey })
    : await x509.X509CertificateGenerator.createSelfSigned({ ...common, name: `CN=${name}`, keys });
  return { cert, keys };
}

export interface LeafOpts { uris?: string[]; dns?: string[]; eku?: string[]; usage?: number | null; extra?: x509.Extension[]; ca?: boolean }

/** A SPIFFE leaf `spiffe://TD/<path>` signed by `issuer`, with its private key (PEM). */
export async function leaf(issuer: Ca, path: string, o: LeafOpts = {}): Promise<{ cert: string; key: string }> {
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const usage = o.usage === undefined ? x509.KeyUsageFlags.digitalSignature : o.usage;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: (serial++).toString(16), subject: 'O=SPIRE', issuer: issuer.cert.subject,
    notBefore: new Date(Date.now() - day), notAfter: new Date(Date.now() + day), signingAlgorithm: alg, publicKey: keys.publicKey, signingKey: issuer.keys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(o.ca ?? false, undefined, true),
      ...(usage !== null ? [new x509.KeyUsagesExtension(usage, true)] : []),
      ...(o.eku ? [new x509.ExtendedKeyUsageExtension(o.eku)] : []),
      new x509.SubjectAlternativeNameExtension([
        ...(o.uris ?? [`spiffe://${TD}/${path}`]).map((value) => ({ type: 'url' as const, value })),
        ...(o.dns ?? []).map((value) => ({ type: 'dns' as const, value })),
      ]),
      ...(o.extra ?? []),
    ],
  });
  return { cert: cert.toString('pem'), key: await keyPem(keys) };
}

export async function keyPem(keys: webcrypto.CryptoKeyPair): Promise<string> {
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
  return `-----BEGIN PRIVATE KEY-----\n${pkcs8.match(/.{1,64}/g)!.join('\n')}\n-----END PRIVATE KEY-----\n`;
}

/** The presented chain: leaf PEM first, then each issuer. */
export const pem = (...cs: (string | Ca)[]) => cs.map((c) => (typeof c === 'string' ? c : c.cert.toString('pem'))).join('\n');

/** A bundle file's JSON holding these CAs as x509-svid roots. */
export const bundleOf = (...cas: Ca[]) => JSON.stringify({ keys: cas.map((c) => ({ kty: 'EC', crv: 'P-256', use: 'x509-svid', x5c: [Buffer.from(c.cert.rawData).toString('base64')] })) });

/**
 * A TLS server whose spiffe trusts (name → trust domain) all read `bundlePath`, with one policy
 * that allows what an SVID login may do; nothing else configured.
 */
export function startSpiffeServer(bundlePath: string, trusts: Record<string, string>): Promise<TestServer> {
  return startServer({
    tls: true,
    trusts: Object.entries(trusts)
      .map(([name, td]) => `  - { name: ${name}, kind: spiffe, trust_domain: ${td}, bundle: ${bundlePath}, boundary: application, environment: prod }`)
      .join('\n'),
    resources: '  []',
    targets: '  []',
    policies: 'permit (principal, action == Action::"db.select", resource) when { context.authn.method == "spiffe-x509" };\n',
  });
}

/** Logging in over mTLS with a chain, and the reason of the newest authn failure. */
export function mtlsLogin(s: () => TestServer) {
  return {
    mtls: (cert: string, key: string) => s().call('POST', '/v1/auth/token', {}, undefined, { cert, key }),
    reason: async () => {
      await s().running.broker.audit.flush();
      return (await s().running.broker.audit.query({ stream: 'authn', type: 'authn.failure', order: 'desc', limit: 1 }))[0]?.payload.reason;
    },
  };
}
