// SPIFFE trust: workloads prove themselves with SVIDs from their trust domain's authority
// (SPIRE, Istio, …). JWT-SVIDs verify against the bundle's `jwt-svid` keys; X.509-SVIDs (client
// certificates presented over mTLS — the TLS handshake proved key possession) chain to the
// bundle's `x509-svid` roots. The identity is the SPIFFE ID itself.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import * as x509 from '../../../crypto/x509.ts';
import { AsnConvert } from '@peculiar/asn1-schema';
import { NameConstraints } from '@peculiar/asn1-x509';
import type { GeneralSubtrees } from '@peculiar/asn1-x509';
import type { JWK } from 'jose';
import type { SpiffeTrustConfig } from './config.ts';
import type { Clock } from '../../../common/clock.ts';
import { nowSeconds, systemClock } from '../../../common/clock.ts';
import type { Proof, TrustVerifier, VerifiedProof } from '../../types.ts';
import { fail } from '../../reasons.ts';
import { tokenFingerprint, validateJwt } from '../../jwt.ts';
import type { JwtPolicy, ReplayGuard } from '../../jwt.ts';
import { InlineJwks } from '../../jwks.ts';
import { authTime, defaultsOf, DEFAULT_LEEWAY_SECONDS, MAX_LEEWAY_SECONDS, trustTokenChecks } from '../oidc/oidc.ts';
import { isValidTrustDomain, parseSpiffeId } from '../../spiffe-id.ts';
import type { SpiffeId } from '../../spiffe-id.ts';
import { SESSION_TOKEN_TYPE } from '../../session-claims.ts';

export { parseSpiffeId } from '../../spiffe-id.ts';
export type { SpiffeId } from '../../spiffe-id.ts';

/** Algorithms the JWT-SVID specification allows. */
const JWT_SVID_ALGORITHMS: readonly string[] = ['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512', 'PS256', 'PS384', 'PS512'];
const MAX_CHAIN = 8;
const MAX_CERT_BYTES = 16 * 1024;

export interface SpiffeTrustOptions {
  clock?: Clock;
  /** Folder a relative `bundle` path resolves against (default: the working directory). */
  baseDir?: string;
  /**
   * Set when the bundle is Portcullis' own CA: maps the SPIFFE ID of an X.509-SVID back to the
   * identity it was issued for, and refuses one whose lease was revoked (throw `fail(...)`).
   */
  issuedBy?: (id: SpiffeId, serial: string) => Promise<string>;
  /** Where seen JWT-SVID ids are kept; required when the trust sets `replay: reject`. */
  replay?: ReplayGuard;
}

interface ParsedBundle {
  jwt: InlineJwks;
  roots: X509Certificate[];
}

/** Reads a SPIFFE bundle (a JWKS whose keys carry `use: jwt-svid` or `use: x509-svid`). */
function parseBundle(value: unknown, source = 'bundle'): ParsedBundle {
  const keys = (value as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) throw new TypeError(`${source}: not a SPIFFE bundle (no "keys" array)`);
  const jwtKeys: JWK[] = [];
  const roots: X509Certificate[] = [];
  keys.forEach((k: JWK, i) => {
    if (k === null || typeof k !== 'object') return;
    if (k.use === 'jwt-svid') jwtKeys.push(k);
    else if (k.use === 'x509-svid') {
      if (!Array.isArray(k.x5c) || k.x5c.length !== 1) throw new TypeError(`${source}: keys[${i}] (x509-svid) must carry exactly one x5c certificate`);
      let cert: X509Certificate;
      try {
        cert = new X509Certificate(Buffer.from(k.x5c[0]!, 'base64'));
      } catch {
        throw new TypeError(`${source}: keys[${i}].x5c[0] is not a DER certificate`);
      }
      if (!cert.ca) throw new TypeError(`${source}: keys[${i}] x509-svid authority is not a CA certificate`);
      roots.push(cert);
    }
  });
  return { jwt: new InlineJwks({ keys: jwtKeys }, ['jwt-svid']), roots };
}

export class SpiffeTrust implements TrustVerifier {
  readonly name: string;
  readonly kind = 'spiffe' as const;
  readonly routesBy = 'subject' as const;
  readonly config: SpiffeTrustConfig;
  readonly #clock: Clock;
  readonly #bundlePath: string | undefined;
  readonly #leeway: number;
  readonly #audiences: readonly string[];
  readonly #issuedBy: SpiffeTrustOptions['issuedBy'];
  readonly #checks: Pick<JwtPolicy, 'maxLifetimeSeconds' | 'replay'>;
  #bundle: ParsedBundle;

  /** Reads the bundle file named by the configuration. */
  static fromConfig(config: SpiffeTrustConfig, options: SpiffeTrustOptions = {}): SpiffeTrust {
    const path = isAbsolute(config.bundle) ? config.bundle : resolve(options.baseDir ?? process.cwd(), config.bundle);
    return new SpiffeTrust(config, readBundleFile(path), { ...options, bundlePath: path });
  }

  constructor(config: SpiffeTrustConfig, bundle: unknown, options: SpiffeTrustOptions & { bundlePath?: string } = {}) {
    if (!isValidTrustDomain(config.trust_domain)) throw new TypeError(`trust ${config.name}: "${config.trust_domain}" is not a valid trust domain`);
    this.name = config.name;
    this.config = config;
    this.#clock = options.clock ?? systemClock;
    this.#bundlePath = options.bundlePath;
    this.#issuedBy = options.issuedBy;
    this.#leeway = Math.min(Math.max(config.leeway_seconds ?? DEFAULT_LEEWAY_SECONDS, 0), MAX_LEEWAY_SECONDS);
    this.#audiences = config.audiences?.length ? [...config.audiences] : ['portcullis'];
    this.#bundle = parseBundle(bundle, `trust ${config.name} bundle`);
    this.#checks = trustTokenChecks(config.name, config, options.replay);
  }

  /** Re-reads the bundle file (after the authority rotated its keys). */
  reloadBundle(bundle?: unknown): void {
    if (bundle === undefined && this.#bundlePath === undefined) throw new TypeError('no bundle file to reload');
    this.#bundle = parseBundle(bundle ?? readBundleFile(this.#bundlePath!), `trust ${this.name} bundle`);
  }

  accepts(proof: Proof, hint: { issuer?: string; subject?: string }): boolean {
    const prefix = `spiffe://${this.config.trust_domain}/`;
    if (proof.type === 'jwt') return hint.subject?.startsWith(prefix) === true;
    if (proof.type !== 'x509') return false;
    try {
      return leafUris(proof.chain[0]!).some((u) => u.startsWith(prefix));
    } catch {
      return false;
    }
  }

  async verify(proof: Proof): Promise<VerifiedProof> {
    if (proof.type === 'jwt') return this.#verifyJwt(proof.token);
    if (proof.type === 'x509') return this.#verifyX509(proof.chain);
    throw fail('malformed', `trust ${this.name} verifies SVIDs only`);
  }

  #spiffeId(value: unknown): SpiffeId {
    const id = parseSpiffeId(value);
    if (id === undefined) throw fail('bad_spiffe_id', 'not a valid workload SPIFFE ID');
    if (id.trustDomain !== this.config.trust_domain) throw fail('wrong_trust_domain', `SPIFFE ID is in trust domain ${id.trustDomain}, not ${this.config.trust_domain}`);
    return id;
  }

  #result(id: SpiffeId, method: 'spiffe-jwt' | 'spiffe-x509', authAt: number, evidence: Record<string, unknown>, identityId = id.id): VerifiedProof {
    return {
      identityId,
      kind: this.config.identity_kind ?? 'workload',
      facts: { method, trust: this.name, mfa: false, assurance: 'high', auth_time: authAt },
      attributes: { spiffe_id: id.id, trust_domain: id.trustDomain, spiffe_path: id.path },
      defaults: defaultsOf(this.config),
      evidence: { trust: this.name, trust_domain: this.config.trust_domain, spiffe_id: id.id, ...evidence },
    };
  }

  async #verifyJwt(token: string): Promise<VerifiedProof> {
    const bundle = this.#bundle;
    const now = nowSeconds(this.#clock);
    // JWT-SVIDs may leave out `iss` (SPIFFE JWT-SVID §3); the bundle's keys are the issuer.
    const jwt = await validateJwt(token, {
      algorithms: JWT_SVID_ALGORITHMS,
      audiences: this.#audiences,
      leewaySeconds: this.#leeway,
      nowSeconds: now,
      typ: (typ) => typ === undefined || typ === 'JWT' || typ === 'JOSE' ? undefined : typ === SESSION_TOKEN_TYPE ? 'a session token is not an identity proof' : 'JWT-SVID typ must be JWT or JOSE',
      requiredClaims: ['sub'],
      ...this.#checks,
    }, (h) => bundle.jwt.getKey(h));
    const id = this.#spiffeId(jwt.claims.sub);
    const audience = jwt.audience;
    return this.#result(id, 'spiffe-jwt', authTime(jwt.claims, now, this.#leeway), {
      alg: jwt.header.alg,
      ...(typeof jwt.header.kid === 'string' ? { kid: jwt.header.kid } : {}),
      audience,
      token_sha256: tokenFingerprint(token),
    });
  }

  async #verifyX509(chainDer: Uint8Array[]): Promise<VerifiedProof> {
    if (!Array.isArray(chainDer) || chainDer.length === 0) throw fail('malformed', 'no client certificate');
    if (chainDer.length > MAX_CHAIN) throw fail('malformed', `certificate chain longer than ${MAX_CHAIN}`);
    const chain = chainDer.map((der, i) => {
      if (!(der instanceof Uint8Array) || der.length > MAX_CERT_BYTES) throw fail('malformed', `certificate ${i} is not DER of a sane size`);
      try {
        return new X509Certificate(der);
      } catch {
        throw fail('malformed', `certificate ${i} does not parse`);
      }
    });
    const leaf = chain[0]!;
    const now = this.#clock.now();
    checkValidity(leaf, now, 'leaf');
    // X509-SVID spec: a leaf must have cA=false (node's `ca` also looks at key usage, so ask the extension).
    if (leaf.ca || basicConstraintsCa(chainDer[0]!)) throw fail('bad_certificate', 'leaf certificate is a CA');
    // X509-SVID spec §4.3: keyUsage digitalSignature is required, keyCertSign and cRLSign forbidden.
    const usage = keyUsage(chainDer[0]!);
    if (usage === undefined || (usage & x509.KeyUsageFlags.digitalSignature) === 0 || (usage & (x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign)) !== 0) {
      throw fail('bad_certificate', 'leaf key usage must be present, allow digitalSignature, and not keyCertSign or cRLSign');
    }
    // What OpenSSL checked before the trust took over chain verification (issue 8.25): the purpose
    // (a certificate restricted to serverAuth is no client credential) and critical extensions.
    if (!allowsClientAuth(chainDer[0]!)) throw fail('bad_certificate', 'leaf extended key usage does not include clientAuth');
    const critical = unknownCritical(chainDer[0]!);
    if (critical !== undefined) throw fail('bad_certificate', `leaf has a critical extension Portcullis does not process (${critical})`);
    let uris: string[];
    try {
      uris = leafUris(chainDer[0]!);
    } catch {
      throw fail('bad_certificate', 'subject alternative names do not parse');
    }
    if (uris.length !== 1) throw fail('bad_spiffe_id', `leaf must have exactly one URI SAN, has ${uris.length}`);
    const id = this.#spiffeId(uris[0]);
    this.#verifyChain(chain, chainDer, now, id);
    const identityId = this.#issuedBy ? await this.#issuedBy(id, leaf.serialNumber) : id.id;
    const result = this.#result(id, 'spiffe-x509', Math.floor(now / 1000), {
      serial: leaf.serialNumber,
      fingerprint256: leaf.fingerprint256,
      not_after: new Date(leaf.validTo).toISOString(),
    }, identityId);
    return this.#issuedBy ? { ...result, issued: true } : result;
  }

  /**
   * Builds a path from the leaf through the presented certificates until one is signed by a bundle
   * root (RFC 5280 §6.1, the parts SVIDs use): each intermediate signs the one below, is a CA by its
   * basicConstraints extension (cA=true), may sign certificates (keyUsage keyCertSign), is valid
   * now, and no CA's pathLenConstraint is exceeded by the intermediates below it (roots included).
   */
  #verifyChain(chain: X509Certificate[], der: Uint8Array[], now: number, id: SpiffeId): void {
    const roots = this.#bundle.roots;
    const leafNames = { hosts: [id.trustDomain], dns: leafDnsNames(der[0]!) };
    let current = chain[0]!;
    const pool = chain.map((_, k) => k).slice(1);
    for (let i = 0; i < chain.length; i++) {
      const root = roots.find((r) => current.checkIssued(r) && current.verify(r.publicKey));
      if (root !== undefined) {
        checkValidity(root, now, 'bundle root');
        checkPathLength(new Uint8Array(root.raw), i, 'bundle root');
        checkNameConstraints(new Uint8Array(root.raw), leafNames, 'bundle root');
        return;
      }
      // The path is built from what was presented, not from its order (RFC 8446 §4.4.2: a client
      // may send its chain unsorted, with extra certificates); each certificate is used once.
      const j = pool.findIndex((k) => current.checkIssued(chain[k]!) && current.verify(chain[k]!.publicKey));
      if (j < 0) throw fail('untrusted_chain', i === 0 ? 'chain does not lead to a root of the trust domain bundle' : `certificate ${i} is not signed by a presented certificate or a bundle root`);
      const k = pool.splice(j, 1)[0]!;
      const next = chain[k]!;
      const nextDer = der[k]!;
      if (!basicConstraintsCa(nextDer)) throw fail('untrusted_chain', `certificate ${i + 1} is not a CA (basicConstraints cA is not true)`);
      const u = keyUsage(nextDer);
      if (u === undefined || (u & x509.KeyUsageFlags.keyCertSign) === 0) throw fail('untrusted_chain', `certificate ${i + 1} may not sign certificates (no keyUsage keyCertSign)`);
      checkValidity(next, now, `intermediate ${i + 1}`);
      checkPathLength(nextDer, i, `intermediate ${i + 1}`);
      if (!allowsClientAuth(nextDer)) throw fail('untrusted_chain', `intermediate ${i + 1} extended key usage does not include clientAuth`);
      const critical = unknownCritical(nextDer);
      if (critical !== undefined) throw fail('untrusted_chain', `intermediate ${i + 1} has a critical extension Portcullis does not process (${critical})`);
      // A signing certificate that names a SPIFFE ID must name this trust domain: with one root
      // shared by several trust domains, the intermediate of one never signs for another.
      let caUris: string[];
      try {
        caUris = leafUris(nextDer);
      } catch {
        throw fail('untrusted_chain', `intermediate ${i + 1} subject alternative names do not parse`);
      }
      const own = `spiffe://${id.trustDomain}`;
      if (caUris.some((n) => n !== own && !n.startsWith(`${own}/`))) throw fail('untrusted_chain', `intermediate ${i + 1} belongs to another trust domain than ${id.trustDomain}`);
      checkNameConstraints(nextDer, leafNames, `intermediate ${i + 1}`);
      current = next;
    }
    throw fail('untrusted_chain', 'chain does not lead to a root of the trust domain bundle');
  }
}

function readBundleFile(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new TypeError(`SPIFFE bundle ${path}: ${(e as Error).message}`, { cause: e });
  }
}

function checkValidity(cert: X509Certificate, now: number, what: string): void {
  if (now < Date.parse(cert.validFrom)) throw fail('not_yet_valid', `${what} certificate not valid before ${cert.validFrom}`);
  if (now > Date.parse(cert.validTo)) throw fail('expired', `${what} certificate expired ${cert.validTo}`);
}

/** `below`: intermediates between this CA and the leaf; a pathLenConstraint smaller than that is a refusal. */
function checkPathLength(der: Uint8Array, below: number, what: string): void {
  const limit = new x509.X509Certificate(der).getExtension(x509.BasicConstraintsExtension)?.pathLength;
  if (typeof limit === 'number' && below > limit) throw fail('untrusted_chain', `${what} allows ${limit} intermediate(s) below it, the chain has ${below}`);
}

function basicConstraintsCa(der: Uint8Array): boolean {
  return new x509.X509Certificate(der).getExtension(x509.BasicConstraintsExtension)?.ca === true;
}

function keyUsage(der: Uint8Array): number | undefined {
  const ext = new x509.X509Certificate(der).getExtension(x509.KeyUsagesExtension);
  return ext === null ? undefined : ext.usages;
}

const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
/** Extensions the chain check processes (or that carry no constraint): basicConstraints, keyUsage,
 * extKeyUsage, subjectAltName, nameConstraints, certificatePolicies (no policy is required), SKI, AKI. */
const PROCESSED_EXTENSIONS = new Set(['2.5.29.19', '2.5.29.15', '2.5.29.37', '2.5.29.17', '2.5.29.30', '2.5.29.32', '2.5.29.14', '2.5.29.35']);
const NAME_CONSTRAINTS = '2.5.29.30';

/** No extended key usage, or one that includes TLS client authentication. */
function allowsClientAuth(der: Uint8Array): boolean {
  const eku = new x509.X509Certificate(der).getExtension(x509.ExtendedKeyUsageExtension);
  return eku === null || eku.usages.map(String).includes(CLIENT_AUTH);
}

/** The OID of a critical extension the chain check does not process (RFC 5280 §4.2: refuse it), or undefined. */
function unknownCritical(der: Uint8Array): string | undefined {
  return new x509.X509Certificate(der).extensions.find((e) => e.critical && !PROCESSED_EXTENSIONS.has(e.type))?.type;
}

function leafDnsNames(der: Uint8Array): string[] {
  const san = new x509.X509Certificate(der).getExtension(x509.SubjectAlternativeNameExtension);
  return san === null ? [] : san.names.items.filter((n) => n.type === 'dns').map((n) => n.value.toLowerCase());
}

/**
 * RFC 5280 §4.2.1.10 name constraints of a CA, for the names an SVID carries: URI subtrees on the
 * SPIFFE ID's host (the trust domain; ".x" = subdomains of x, else exactly x) and dNSName
 * subtrees on DNS SANs. A constraint of any other type is not evaluated, so it is refused.
 */
function checkNameConstraints(der: Uint8Array, leaf: { hosts: string[]; dns: string[] }, what: string): void {
  const ext = new x509.X509Certificate(der).extensions.find((e) => e.type === NAME_CONSTRAINTS);
  if (ext === undefined) return;
  let nc: NameConstraints;
  try {
    nc = AsnConvert.parse(ext.value, NameConstraints);
  } catch {
    throw fail('untrusted_chain', `${what} name constraints do not parse`);
  }
  const uriMatch = (host: string, c: string) => (c.startsWith('.') ? host.endsWith(c) : host === c);
  const dnsMatch = (name: string, c: string) => {
    const base = c.replace(/^\./, '');
    return name === base || name.endsWith(`.${base}`);
  };
  const split = (subtrees: GeneralSubtrees | undefined) => {
    const uri: string[] = [];
    const dns: string[] = [];
    for (const st of subtrees ?? []) {
      if (st.base.uniformResourceIdentifier !== undefined) uri.push(st.base.uniformResourceIdentifier.toLowerCase());
      else if (st.base.dNSName !== undefined) dns.push(st.base.dNSName.toLowerCase());
      else throw fail('untrusted_chain', `${what} has name constraints of a type Portcullis does not evaluate (only URI and DNS)`);
    }
    return { uri, dns };
  };
  const permitted = split(nc.permittedSubtrees);
  const excluded = split(nc.excludedSubtrees);
  const outside = (names: string[], allowed: string[], match: (n: string, c: string) => boolean) => allowed.length > 0 && names.some((n) => !allowed.some((c) => match(n, c)));
  const inside = (names: string[], banned: string[], match: (n: string, c: string) => boolean) => names.some((n) => banned.some((c) => match(n, c)));
  if (outside(leaf.hosts, permitted.uri, uriMatch) || outside(leaf.dns, permitted.dns, dnsMatch) || inside(leaf.hosts, excluded.uri, uriMatch) || inside(leaf.dns, excluded.dns, dnsMatch)) {
    throw fail('untrusted_chain', `the leaf's names are outside the name constraints of ${what}`);
  }
}

/** URI SANs of a DER certificate (throws on unparsable names). */
function leafUris(der: Uint8Array): string[] {
  const cert = new x509.X509Certificate(der);
  const sans = cert.getExtensions(x509.SubjectAlternativeNameExtension);
  if (sans.length > 1) throw new TypeError('duplicate SAN extension');
  if (sans.length === 0) return [];
  return sans[0]!.names.items.filter((n) => n.type === 'url').map((n) => n.value);
}
