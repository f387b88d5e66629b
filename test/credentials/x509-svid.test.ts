// X.509-SVIDs: one spiffe:// URI SAN, chained to a Portcullis intermediate and root; real mTLS
// with node:tls against a server that trusts only the bundle.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { connect, createServer } from 'node:tls';
import type { Server, TLSSocket } from 'node:tls';
import { ManualClock, systemClock } from '../../src/common/clock.ts';
import type { Clock } from '../../src/common/clock.ts';
import { InvalidInput } from '../../src/common/errors.ts';
import { validateTargets } from '../../src/credentials/config.ts';
import { createCredentialService } from '../../src/credentials/service.ts';
import { createIntermediate, generateSpiffeRoot, spiffeIdFor } from '../../src/credentials/issuers/spiffe-x509/x509-svid.ts';
import type { CaMaterial } from '../../src/credentials/issuers/spiffe-x509/x509-svid.ts';
import { MemoryAudit, TablePolicy, sqliteLeases } from './helpers.ts';

const TD = 'prod.example.org';
const targets = validateTargets([{ name: 'svid-prod', kind: 'spiffe-x509', trust_domain: TD, max_ttl: '1h', default_ttl: '10m' }]);
let root: CaMaterial;
let intermediate: CaMaterial;
let server: Server;
let port = 0;
const seen: string[] = [];

function service(clock: Clock = systemClock, ca = { root: root.cert, intermediate }) {
  const policy = new TablePolicy();
  policy.allow('workload:payments/api', 'Workload::svid-prod');
  policy.allow('workload:gateway', 'Workload::svid-prod');
  return createCredentialService({ leases: sqliteLeases(), clock, audit: new MemoryAudit(), decide: policy.decide, targets, spiffe: { [TD]: ca } });
}

function keyPair() {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { key: privateKey.export({ format: 'pem', type: 'pkcs8' }) as string, pub: publicKey.export({ format: 'pem', type: 'spki' }) as string };
}

function mtls(cert: string, key: string, ca: string): Promise<{ ok: boolean; reply?: string; error?: string }> {
  return new Promise((resolve) => {
    const s: TLSSocket = connect({
      host: '127.0.0.1', port, cert, key, ca,
      // SPIFFE peers are named by URI SAN, not DNS: check the server's SPIFFE ID instead.
      checkServerIdentity: (_h, c) => (c.subjectaltname === `URI:spiffe://${TD}/workload/gateway` ? undefined : new Error('unexpected server SPIFFE ID')),
    });
    s.setTimeout(5000, () => s.destroy(new Error('timeout')));
    let data = '';
    s.on('data', (d) => (data += d));
    s.on('end', () => resolve({ ok: data.length > 0, reply: data }));
    s.on('error', (e) => resolve({ ok: false, error: e.message }));
    s.on('close', () => resolve({ ok: data.length > 0, reply: data }));
  });
}

before(async () => {
  root = await generateSpiffeRoot(TD, systemClock);
  intermediate = await createIntermediate(root, TD, systemClock);
  // The server's own SVID comes from the same issuer.
  const svc = service();
  const k = keyPair();
  const { credential } = await svc.issue({ identityId: 'workload:gateway', target: 'svid-prod', purpose: 'serve', params: { publicKeyPem: k.pub } });
  await svc.stop();
  server = createServer({ key: k.key, cert: credential.chain as string, ca: credential.bundle as string, requestCert: true, rejectUnauthorized: true }, (sock) => {
    const san = sock.getPeerCertificate().subjectaltname ?? '';
    seen.push(san);
    sock.end(`hello ${san}`);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  port = (server.address() as { port: number }).port;
});

after(async () => {
  await new Promise((r) => server?.close(r));
});

describe('X.509-SVIDs', () => {
  test('an SVID has exactly one spiffe URI SAN, chains to the bundle, and works as a client cert for mTLS', async () => {
    const svc = service();
    const k = keyPair();
    const { lease, credential } = await svc.issue({ identityId: 'workload:payments/api', target: 'svid-prod', ttl: '5m', purpose: 'call gateway', params: { publicKeyPem: k.pub } });
    const leaf = new X509Certificate(credential.certificate as string);
    assert.equal(leaf.subjectAltName, `URI:spiffe://${TD}/workload/payments/api`);
    assert.equal(credential.spiffe_id, `spiffe://${TD}/workload/payments/api`);
    assert.equal(leaf.ca, false);
    assert.ok(leaf.checkIssued(new X509Certificate(intermediate.cert.toString('pem'))));
    assert.ok(leaf.verify(new X509Certificate(intermediate.cert.toString('pem')).publicKey));
    assert.equal(Date.parse(leaf.validTo), Math.floor(lease.expiresAt / 1000) * 1000);
    assert.equal(lease.permission, `spiffe://${TD}/workload/payments/api`);
    const r = await mtls(credential.chain as string, k.key, credential.bundle as string);
    assert.equal(r.ok, true, r.error);
    assert.equal(r.reply, `hello URI:spiffe://${TD}/workload/payments/api`);
    assert.equal((await svc.introspect('spiffe-x509', leaf.serialNumber.toLowerCase())).active, true);
    await svc.revoke({ lease: lease.id }, { by: 'user:ops', reason: 'rotate' });
    assert.equal((await svc.introspect('spiffe-x509', leaf.serialNumber.toLowerCase())).active, false);
    await svc.stop();
  });

  test('an expired SVID and one from a foreign CA are rejected by the TLS server', async () => {
    const past = service(new ManualClock(Date.now() - 3 * 3_600_000));
    const k = keyPair();
    const old = await past.issue({ identityId: 'workload:payments/api', target: 'svid-prod', ttl: '1h', purpose: 'old', params: { publicKeyPem: k.pub } });
    assert.equal((await mtls(old.credential.chain as string, k.key, old.credential.bundle as string)).ok, false);
    await past.stop();
    const foreignRoot = await generateSpiffeRoot(TD, systemClock);
    const foreign = service(systemClock, { root: foreignRoot.cert, intermediate: await createIntermediate(foreignRoot, TD, systemClock) });
    const f = await foreign.issue({ identityId: 'workload:payments/api', target: 'svid-prod', purpose: 'forged', params: { publicKeyPem: k.pub } });
    assert.equal((await mtls(f.credential.chain as string, k.key, root.cert.toString('pem'))).ok, false);
    await foreign.stop();
    // Positive control against the same TLS server: a live SVID from the real CA is accepted, so
    // the refusals above are the server judging those certificates, not TLS failing altogether.
    const live = service();
    const lk = keyPair();
    const ok = await live.issue({ identityId: 'workload:payments/api', target: 'svid-prod', ttl: '5m', purpose: 'control', params: { publicKeyPem: lk.pub } });
    const r = await mtls(ok.credential.chain as string, lk.key, ok.credential.bundle as string);
    assert.equal(r.ok, true, r.error);
    assert.equal(r.reply, `hello URI:spiffe://${TD}/workload/payments/api`);
    await live.stop();
  });

  test('identities that are not valid SPIFFE paths are refused; key input is validated', async () => {
    assert.equal(spiffeIdFor(TD, 'agent:support-bot'), `spiffe://${TD}/agent/support-bot`);
    assert.throws(() => spiffeIdFor(TD, 'user:alice@example.com'), InvalidInput);
    assert.throws(() => spiffeIdFor(TD, 'workload:a/../b'), InvalidInput);
    const svc = service();
    await assert.rejects(svc.issue({ identityId: 'workload:payments/api', target: 'svid-prod', purpose: 'x', params: { publicKeyPem: 'nope' } }), /publicKeyPem/);
    await svc.stop();
  });
});
