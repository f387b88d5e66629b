// Issue 8.25, second round: variants of a hostile client chain over real mTLS. With OpenSSL no
// longer verifying client chains (the spiffe trust does), everything OpenSSL used to check must
// be checked by the trust: purpose (extended key usage clientAuth), critical extensions it does
// not understand, name constraints, and chains shaped to confuse (shuffled, duplicated, a CA
// leaf, a root presented as leaf, an intermediate naming another trust domain, very long).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as x509 from '../../src/crypto/x509.ts';
import { AsnConvert } from '@peculiar/asn1-schema';
import { GeneralName, GeneralSubtree, GeneralSubtrees, NameConstraints } from '@peculiar/asn1-x509';
import type { TestServer } from '../credentials/server.ts';
import { TD, bundleOf, keyPem, leaf, makeCa, mtlsLogin, pem, startSpiffeServer } from './x509-chain.ts';
import type { Ca, LeafOpts } from './x509-chain.ts';

const OTHER_TD = 'other.acme.test';
const day = 86_400_000;

describe('hostile X.509-SVID chains over mTLS (8.25, second round)', () => {
  let s: TestServer;
  let dir: string;
  let root: Ca;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pcx-chain2-'));
    root = await makeCa('shared root');
    // One root serves two trust domains (a common layout: one corporate root, an intermediate per domain).
    writeFileSync(join(dir, 'bundle.json'), bundleOf(root));
    s = await startSpiffeServer(join(dir, 'bundle.json'), { spire: TD, other: OTHER_TD });
  });
  after(async () => {
    await s?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const { mtls, reason } = mtlsLogin(() => s);
  const refused = async (cert: string, key: string, why: string) => {
    const r = await mtls(cert, key);
    assert.equal(r.status, 401, `${why}: ${JSON.stringify(r.body)}`);
    return reason();
  };

  it('control: a proper chain logs in', async () => {
    const inter = await makeCa('spire intermediate', root, { uri: `spiffe://${TD}` });
    const l = await leaf(inter, 'ns/prod/sa/api', { eku: [x509.ExtendedKeyUsage.clientAuth, x509.ExtendedKeyUsage.serverAuth] });
    const r = await mtls(pem(l.cert, inter), l.key);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.identity.id, `spiffe://${TD}/ns/prod/sa/api`);
  });
  it('duplicated intermediates and the root sent along still verify; a shuffled chain is never accepted as anything else, never a 500', async () => {
    const i1 = await makeCa('i1', root);
    const i2 = await makeCa('i2', i1);
    const l = await leaf(i2, 'ns/prod/sa/shuffled');
    for (const chain of [pem(l.cert, i2, i2, i1), pem(l.cert, i2, i1, i1, root), pem(l.cert, i2, i1, root, i2)]) {
      const r = await mtls(chain, l.key);
      assert.equal(r.status, 200, `${chain.split('BEGIN').length - 1} certs: ${String(await reason())}`);
      assert.equal(r.body.identity.id, `spiffe://${TD}/ns/prod/sa/shuffled`);
    }
    // Node's getPeerCertificate(true) drops an intermediate when the issuer of the leaf is the last
    // certificate sent (Node 24), so an unsorted chain may arrive incomplete: refused, fail closed.
    const r = await mtls(pem(l.cert, i1, i2), l.key);
    assert.ok(r.status === 401 || (r.status === 200 && r.body.identity.id === `spiffe://${TD}/ns/prod/sa/shuffled`), JSON.stringify(r.body));
    if (r.status === 401) assert.equal(await reason(), 'untrusted_chain');
  });
  it('a leaf whose extended key usage excludes clientAuth (a server certificate) is refused', async () => {
    const inter = await makeCa('eku intermediate', root);
    const l = await leaf(inter, 'ns/prod/sa/server-only', { eku: [x509.ExtendedKeyUsage.serverAuth] });
    assert.equal(await refused(pem(l.cert, inter), l.key, 'serverAuth only'), 'bad_certificate');
  });
  it('an intermediate whose extended key usage excludes clientAuth is refused', async () => {
    const inter = await makeCa('server-only intermediate', root, { extra: [new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth])] });
    const l = await leaf(inter, 'ns/prod/sa/eku-inter');
    assert.equal(await refused(pem(l.cert, inter), l.key, 'intermediate serverAuth only'), 'untrusted_chain');
  });
  it('a leaf without keyUsage, or with keyCertSign, is refused', async () => {
    const inter = await makeCa('ku intermediate', root);
    for (const usage of [null, x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyCertSign, x509.KeyUsageFlags.keyEncipherment]) {
      const l = await leaf(inter, 'ns/prod/sa/ku', { usage });
      assert.equal(await refused(pem(l.cert, inter), l.key, `usage ${usage}`), 'bad_certificate');
    }
  });
  it('an unknown critical extension in the leaf or an intermediate is refused', async () => {
    const crit = () => new x509.Extension('1.3.6.1.4.1.55555.1', true, new Uint8Array([0x05, 0x00]));
    const inter = await makeCa('crit-free intermediate', root);
    const l = await leaf(inter, 'ns/prod/sa/crit', { extra: [crit()] });
    assert.equal(await refused(pem(l.cert, inter), l.key, 'critical in leaf'), 'bad_certificate');
    const critInter = await makeCa('critical intermediate', root, { extra: [crit()] });
    const l2 = await leaf(critInter, 'ns/prod/sa/crit2');
    assert.equal(await refused(pem(l2.cert, critInter), l2.key, 'critical in intermediate'), 'untrusted_chain');
  });
  it('an intermediate naming another trust domain cannot sign for this one (shared root)', async () => {
    const otherInter = await makeCa('other domain intermediate', root, { uri: `spiffe://${OTHER_TD}` });
    const l = await leaf(otherInter, 'ns/prod/sa/admin');
    assert.equal(await refused(pem(l.cert, otherInter), l.key, 'cross-domain intermediate'), 'untrusted_chain');
    // …and the same intermediate still signs its own domain.
    const own = await leaf(otherInter, '', { uris: [`spiffe://${OTHER_TD}/ns/prod/sa/x`] });
    const r = await mtls(pem(own.cert, otherInter), own.key);
    assert.equal(r.status, 200, JSON.stringify(r.body));
  });
  it('name constraints (URI, DNS) are enforced, not ignored; types not evaluated are refused', async () => {
    const subtrees = (names: GeneralName[]) => new GeneralSubtrees(names.map((base) => new GeneralSubtree({ base })));
    const nc = (c: ConstructorParameters<typeof NameConstraints>[0]) => new x509.Extension('2.5.29.30', true, AsnConvert.serialize(new NameConstraints(c)));
    const uri = (v: string) => new GeneralName({ uniformResourceIdentifier: v });
    const cases: [string, x509.Extension, LeafOpts, number][] = [
      ['permitted other domain', nc({ permittedSubtrees: subtrees([uri(OTHER_TD)]) }), {}, 401],
      ['permitted subdomains only', nc({ permittedSubtrees: subtrees([uri('.acme.test')]) }), {}, 200],
      ['excluded this domain', nc({ excludedSubtrees: subtrees([uri(TD)]) }), {}, 401],
      ['excluded parent by subdomain rule', nc({ excludedSubtrees: subtrees([uri('.acme.test')]) }), {}, 401],
      ['permitted this domain', nc({ permittedSubtrees: subtrees([uri(TD)]) }), {}, 200],
      ['DNS outside permitted', nc({ permittedSubtrees: subtrees([uri(TD), new GeneralName({ dNSName: 'svc.acme.test' })]) }), { dns: ['evil.example'] }, 401],
      ['rfc822Name constraint (not evaluated)', nc({ permittedSubtrees: subtrees([new GeneralName({ rfc822Name: 'acme.test' })]) }), {}, 401],
    ];
    for (const [what, ext, lo, status] of cases) {
      const inter = await makeCa(`nc ${what}`, root, { extra: [ext] });
      const l = await leaf(inter, 'ns/prod/sa/nc', lo);
      const r = await mtls(pem(l.cert, inter), l.key);
      assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`);
      if (status === 401) assert.equal(await reason(), 'untrusted_chain', what);
    }
  });
  it('a CA leaf, the root itself as leaf, two URI SANs, a not-yet-valid intermediate: refused', async () => {
    const inter = await makeCa('misc intermediate', root);
    const caLeaf = await leaf(inter, 'ns/prod/sa/ca', { ca: true });
    assert.equal(await refused(pem(caLeaf.cert, inter), caLeaf.key, 'CA leaf'), 'bad_certificate');
    // The bundle root presented as the leaf (self-signed, cA=true): with a SPIFFE ID it is a CA leaf; without, no trust takes it.
    const selfRoot = await makeCa('self root', undefined, { uri: `spiffe://${TD}/ns/prod/sa/root` });
    assert.equal(await refused(pem(selfRoot), await keyPem(selfRoot.keys), 'self-signed CA as leaf'), 'bad_certificate');
    assert.equal(await refused(pem(root), await keyPem(root.keys), 'root as leaf'), 'wrong_trust_domain');
    const two = await leaf(inter, '', { uris: [`spiffe://${TD}/a`, `spiffe://${TD}/b`] });
    assert.equal(await refused(pem(two.cert, inter), two.key, 'two URIs'), 'bad_spiffe_id');
    const future = await makeCa('future intermediate', root, { notBefore: new Date(Date.now() + day) });
    const l = await leaf(future, 'ns/prod/sa/future');
    assert.equal(await refused(pem(l.cert, future), l.key, 'future intermediate'), 'not_yet_valid');
  });
  it('a very long chain is refused quickly, not walked (chain cap)', async () => {
    let ca = root;
    const cas: Ca[] = [];
    for (let i = 0; i < 12; i++) {
      ca = await makeCa(`deep ${i}`, ca);
      cas.unshift(ca);
    }
    const l = await leaf(ca, 'ns/prod/sa/deep');
    const r = await mtls(pem(l.cert, ...cas), l.key);
    assert.equal(r.status, 401, JSON.stringify(r.body));
  });
});
