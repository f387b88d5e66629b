// Issue 8.25 over real mTLS: an X.509-SVID chain root → intermediate → leaf presented by the
// client (as SPIRE issues them) logs in; the TLS layer hands the whole presented chain to the
// spiffe trust, which refuses a non-CA intermediate, one without keyCertSign, an expired one,
// and a chain longer than a CA's pathLenConstraint allows.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as x509 from '../../src/crypto/x509.ts';
import type { TestServer } from '../credentials/server.ts';
import { TD, bundleOf, leaf, makeCa, mtlsLogin, pem, startSpiffeServer } from './x509-chain.ts';
import type { Ca } from './x509-chain.ts';

const day = 86_400_000;

describe('X.509-SVIDs through intermediates over mTLS (a SPIRE-style bundle file)', () => {
  let s: TestServer;
  let dir: string;
  let root: Ca;
  let strictRoot: Ca;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pcx-chain-'));
    root = await makeCa('spire root');
    strictRoot = await makeCa('strict root', undefined, { pathLength: 0 });
    writeFileSync(join(dir, 'bundle.json'), bundleOf(root, strictRoot));
    s = await startSpiffeServer(join(dir, 'bundle.json'), { spire: TD });
  });
  after(async () => {
    await s?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const { mtls, reason } = mtlsLogin(() => s);

  it('root → intermediate → leaf: accepted as the SPIFFE ID', async () => {
    const inter = await makeCa('spire intermediate', root);
    const l = await leaf(inter, 'ns/prod/sa/api');
    const r = await mtls(pem(l.cert, inter), l.key);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.identity.id, `spiffe://${TD}/ns/prod/sa/api`);
  });
  it('root → intermediate → intermediate → leaf: accepted', async () => {
    const i1 = await makeCa('spire intermediate 1', root);
    const i2 = await makeCa('spire intermediate 2', i1);
    const l = await leaf(i2, 'ns/prod/sa/deep');
    const r = await mtls(pem(l.cert, i2, i1), l.key);
    assert.equal(r.status, 200, JSON.stringify(r.body));
  });
  it('the leaf alone, without its intermediate, is refused (untrusted_chain)', async () => {
    const inter = await makeCa('spire intermediate', root);
    const l = await leaf(inter, 'ns/prod/sa/alone');
    assert.equal((await mtls(l.cert, l.key)).status, 401);
    assert.equal(await reason(), 'untrusted_chain');
  });
  it('a non-CA intermediate (cA=false) is refused, even with keyCertSign', async () => {
    const notCa = await makeCa('not a ca', root, { ca: false });
    const l = await leaf(notCa, 'ns/prod/sa/evil');
    assert.equal((await mtls(pem(l.cert, notCa), l.key)).status, 401);
    assert.equal(await reason(), 'untrusted_chain');
  });
  it('an intermediate without keyCertSign (or without keyUsage at all) is refused', async () => {
    for (const usage of [x509.KeyUsageFlags.digitalSignature, null]) {
      const inter = await makeCa('no certsign', root, { usage });
      const l = await leaf(inter, 'ns/prod/sa/evil');
      assert.equal((await mtls(pem(l.cert, inter), l.key)).status, 401);
      assert.equal(await reason(), 'untrusted_chain');
    }
  });
  it('an expired intermediate is refused (expired)', async () => {
    const old = await makeCa('expired intermediate', root, { notAfter: new Date(Date.now() - day) });
    const l = await leaf(old, 'ns/prod/sa/old');
    assert.equal((await mtls(pem(l.cert, old), l.key)).status, 401);
    assert.equal(await reason(), 'expired');
  });
  it('pathLenConstraint: a root allowing 0 intermediates refuses one; an intermediate allowing 0 refuses one below it', async () => {
    const inter = await makeCa('under strict root', strictRoot);
    const l = await leaf(inter, 'ns/prod/sa/strict');
    assert.equal((await mtls(pem(l.cert, inter), l.key)).status, 401);
    assert.equal(await reason(), 'untrusted_chain');
    const i1 = await makeCa('path 0', root, { pathLength: 0 });
    const i2 = await makeCa('below path 0', i1);
    const l2 = await leaf(i2, 'ns/prod/sa/deep2');
    assert.equal((await mtls(pem(l2.cert, i2, i1), l2.key)).status, 401);
    assert.equal(await reason(), 'untrusted_chain');
    const ok = await makeCa('path 0 ok', root, { pathLength: 0 });
    const l3 = await leaf(ok, 'ns/prod/sa/ok');
    assert.equal((await mtls(pem(l3.cert, ok), l3.key)).status, 200, 'pathLength 0 still allows its own leaf');
  });
  it('a chain from another root is refused', async () => {
    const foreign = await makeCa('foreign root');
    const inter = await makeCa('foreign intermediate', foreign);
    const l = await leaf(inter, 'ns/prod/sa/api');
    assert.equal((await mtls(pem(l.cert, inter, foreign), l.key)).status, 401);
    assert.equal(await reason(), 'untrusted_chain');
  });
});
