import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { webcrypto } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as x509 from '../../src/crypto/x509.ts';
import { ManualClock, nowSeconds } from '../../src/common/clock.ts';
import { SpiffeTrust, parseSpiffeId } from '../../src/identity/trusts/spiffe/spiffe.ts';
import type { SpiffeTrustConfig } from '../../src/config/types.ts';
import { Authenticator } from '../../src/identity/authenticator.ts';
import { makeKey, sign, refused } from './helpers.ts';

const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
const clock = new ManualClock(Date.parse('2026-06-01T12:00:00Z'));
const jwtKey = makeKey('svid-1', 'ES256');
const otherJwtKey = makeKey('svid-other', 'ES256');

interface Ca {
  cert: x509.X509Certificate;
  keys: webcrypto.CryptoKeyPair;
}
let root: Ca;
let intermediate: Ca;
let otherRoot: Ca;
let serial = 1;

const day = 86_400_000;
async function makeCa(name: string, issuer?: Ca, notAfter = new Date(clock.now() + 365 * day)): Promise<Ca> {
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const extensions = [
    new x509.BasicConstraintsExtension(true, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
  ];
  const common = { serialNumber: (serial++).toString(16).padStart(2, '0'), notBefore: new Date(clock.now() - day), notAfter, signingAlgorithm: alg, extensions };
  const cert = issuer
    ? await x509.X509CertificateGenerator.create({ ...common, subject: `CN=${name}`, issuer: issuer.cert.subject, publicKey: keys.publicKey, signingKey: issuer.keys.privateKey })
    : await x509.X509CertificateGenerator.createSelfSigned({ ...common, name: `CN=${name}`, keys });
  return { cert, keys };
}

async function makeLeaf(
  issuer: Ca,
  uris: string[],
  opts: { notBefore?: Date; notAfter?: Date; ca?: boolean } = {},
): Promise<Uint8Array> {
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: (serial++).toString(16).padStart(2, '0'),
    subject: 'O=SPIRE',
    issuer: issuer.cert.subject,
    notBefore: opts.notBefore ?? new Date(clock.now() - 60_000),
    notAfter: opts.notAfter ?? new Date(clock.now() + 3_600_000),
    signingAlgorithm: alg,
    publicKey: keys.publicKey,
    signingKey: issuer.keys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(opts.ca === true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.SubjectAlternativeNameExtension(uris.map((value) => ({ type: 'url' as const, value }))),
    ],
  });
  return new Uint8Array(cert.rawData);
}

const der = (c: Ca) => new Uint8Array(c.cert.rawData);
const b64 = (c: Ca) => Buffer.from(c.cert.rawData).toString('base64');

function config(over: Partial<SpiffeTrustConfig> = {}): SpiffeTrustConfig {
  return { name: 'mesh', kind: 'spiffe', trust_domain: 'example.org', bundle: 'bundle.json', audiences: ['portcullis'], identity_kind: 'workload', leeway_seconds: 30, boundary: 'application', environment: 'prod', ...over };
}

function bundle(): unknown {
  return {
    spiffe_sequence: 1,
    keys: [
      { ...jwtKey.jwk, use: 'jwt-svid' },
      { kty: 'EC', crv: 'P-256', use: 'x509-svid', x5c: [b64(root)] },
    ],
  };
}

before(async () => {
  root = await makeCa('example.org root');
  intermediate = await makeCa('example.org intermediate', root);
  otherRoot = await makeCa('evil.org root');
});

function svid(over: Record<string, unknown> = {}, key = jwtKey): string {
  const now = nowSeconds(clock);
  return sign({ sub: 'spiffe://example.org/ns/prod/sa/api', aud: ['portcullis'], exp: now + 300, iat: now, ...over }, key);
}

test('SPIFFE IDs: parsing rules', () => {
  assert.deepEqual(parseSpiffeId('spiffe://example.org/ns/prod/sa/api'), { trustDomain: 'example.org', path: '/ns/prod/sa/api', id: 'spiffe://example.org/ns/prod/sa/api' });
  for (const bad of ['spiffe://example.org', 'spiffe://example.org/', 'spiffe://Example.org/a', 'spiffe://example.org/a/../b', 'spiffe://example.org//a', 'spiffe://example.org/a/', 'SPIFFE://example.org/a', 'spiffe://ex ample.org/a', 'spiffe://example.org/a?x=1', 'spiffe://user@example.org/a', 'spiffe://example.org:443/a', 'https://example.org/a']) {
    assert.equal(parseSpiffeId(bad), undefined, bad);
  }
});

test('JWT-SVID: valid; wrong trust domain; missing or wrong aud; expired; foreign key; bad ids', async () => {
  const trust = new SpiffeTrust(config(), bundle(), { clock });
  const ok = await trust.verify({ type: 'jwt', token: svid() });
  assert.equal(ok.identityId, 'spiffe://example.org/ns/prod/sa/api');
  assert.equal(ok.facts.method, 'spiffe-jwt');
  assert.equal(ok.facts.assurance, 'high');
  assert.deepEqual(ok.defaults, { boundary: 'application', environment: 'prod' });
  assert.ok(trust.accepts({ type: 'jwt', token: 'x' }, { subject: 'spiffe://example.org/a' }));
  assert.ok(!trust.accepts({ type: 'jwt', token: 'x' }, { subject: 'spiffe://evil.org/a' }));
  await refused(trust.verify({ type: 'jwt', token: svid({ sub: 'spiffe://evil.org/ns/prod/sa/api' }) }), 'wrong_trust_domain');
  await refused(trust.verify({ type: 'jwt', token: svid({ aud: undefined }) }), 'missing_claim');
  await refused(trust.verify({ type: 'jwt', token: svid({ aud: 'someone-else' }) }), 'wrong_audience');
  await refused(trust.verify({ type: 'jwt', token: svid({ exp: undefined }) }), 'missing_claim');
  await refused(trust.verify({ type: 'jwt', token: svid({ exp: nowSeconds(clock) - 60 }) }), 'expired');
  await refused(trust.verify({ type: 'jwt', token: svid({ sub: 'spiffe://example.org/a/../admin' }) }), 'bad_spiffe_id');
  await refused(trust.verify({ type: 'jwt', token: svid({ sub: 'workload:api' }) }), 'bad_spiffe_id');
  await refused(trust.verify({ type: 'jwt', token: svid({}, { ...otherJwtKey, kid: 'svid-1' }) }), 'bad_signature');
  await refused(trust.verify({ type: 'jwt', token: svid({}, otherJwtKey) }), 'unknown_kid');
  await refused(trust.verify({ type: 'jwt', token: svid({}, makeKey('svid-1', 'EdDSA')) }), 'algorithm_not_allowed');
});

test('JWT-SVID: x509-svid bundle keys never verify JWTs; bundle from a file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pcx-spiffe-'));
  writeFileSync(join(dir, 'bundle.json'), JSON.stringify({ keys: [{ ...jwtKey.jwk, use: 'x509-svid', x5c: [b64(root)] }] }));
  const trust = SpiffeTrust.fromConfig(config(), { clock, baseDir: dir });
  await refused(trust.verify({ type: 'jwt', token: svid() }), 'unknown_kid');
  writeFileSync(join(dir, 'bundle.json'), JSON.stringify(bundle()));
  trust.reloadBundle();
  await trust.verify({ type: 'jwt', token: svid() });
});

test('X.509-SVID: valid via root and via intermediate', async () => {
  const trust = new SpiffeTrust(config(), bundle(), { clock });
  const leaf = await makeLeaf(root, ['spiffe://example.org/ns/prod/sa/api']);
  assert.ok(trust.accepts({ type: 'x509', chain: [leaf] }, {}));
  const v = await trust.verify({ type: 'x509', chain: [leaf] });
  assert.equal(v.identityId, 'spiffe://example.org/ns/prod/sa/api');
  assert.equal(v.facts.method, 'spiffe-x509');
  assert.ok(typeof v.evidence.fingerprint256 === 'string');
  const viaInt = await makeLeaf(intermediate, ['spiffe://example.org/ns/prod/sa/worker']);
  const v2 = await trust.verify({ type: 'x509', chain: [viaInt, der(intermediate)] });
  assert.equal(v2.identityId, 'spiffe://example.org/ns/prod/sa/worker');
  await refused(trust.verify({ type: 'x509', chain: [viaInt] }), 'untrusted_chain');
});

test('X.509-SVID: wrong domain, foreign CA, expired, not yet valid, two URI SANs, CA leaf, garbage', async () => {
  const trust = new SpiffeTrust(config(), bundle(), { clock });
  await refused(trust.verify({ type: 'x509', chain: [await makeLeaf(root, ['spiffe://evil.org/ns/prod/sa/api'])] }), 'wrong_trust_domain');
  await refused(trust.verify({ type: 'x509', chain: [await makeLeaf(otherRoot, ['spiffe://example.org/ns/prod/sa/api'])] }), 'untrusted_chain');
  // A foreign CA's chain that includes its own root is still not trusted.
  await refused(trust.verify({ type: 'x509', chain: [await makeLeaf(otherRoot, ['spiffe://example.org/a']), der(otherRoot)] }), 'untrusted_chain');
  await refused(
    trust.verify({ type: 'x509', chain: [await makeLeaf(root, ['spiffe://example.org/a'], { notBefore: new Date(clock.now() - 7200_000), notAfter: new Date(clock.now() - 3600_000) })] }),
    'expired',
  );
  await refused(trust.verify({ type: 'x509', chain: [await makeLeaf(root, ['spiffe://example.org/a'], { notBefore: new Date(clock.now() + 3600_000), notAfter: new Date(clock.now() + 7200_000) })] }), 'not_yet_valid');
  await refused(trust.verify({ type: 'x509', chain: [await makeLeaf(root, ['spiffe://example.org/a', 'spiffe://example.org/b'])] }), 'bad_spiffe_id');
  await refused(trust.verify({ type: 'x509', chain: [await makeLeaf(root, [])] }), 'bad_spiffe_id');
  await refused(trust.verify({ type: 'x509', chain: [await makeLeaf(root, ['spiffe://example.org/a'], { ca: true })] }), 'bad_certificate');
  await refused(trust.verify({ type: 'x509', chain: [der(root)] }), 'bad_certificate');
  await refused(trust.verify({ type: 'x509', chain: [new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01])] }), 'malformed');
  await refused(trust.verify({ type: 'x509', chain: [] }), 'malformed');
});

test('authenticator: routes JWT-SVIDs by SPIFFE sub and certificates to their trust domain', async () => {
  const mesh = new SpiffeTrust(config(), bundle(), { clock });
  const auth = new Authenticator([mesh]);
  assert.equal((await auth.authenticate({ type: 'jwt', token: svid() })).facts.trust, 'mesh');
  const leaf = await makeLeaf(root, ['spiffe://example.org/ns/prod/sa/api']);
  assert.equal((await auth.authenticate({ type: 'x509', chain: [leaf] })).identityId, 'spiffe://example.org/ns/prod/sa/api');
  await refused(auth.authenticate({ type: 'x509', chain: [await makeLeaf(root, ['spiffe://evil.org/a'])] }), 'wrong_trust_domain');
  await refused(auth.authenticate({ type: 'jwt', token: svid({ sub: 'spiffe://evil.org/a' }) }), 'unknown_issuer');
});
