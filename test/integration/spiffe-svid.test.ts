// X.509-SVIDs end to end over HTTPS: a workload asks Portcullis for an SVID for its own key (CSR),
// then logs in to the TLS-enabled Portcullis with that SVID over mTLS and gets a session for the
// identity the SVID was issued for. Expired, revoked, or foreign-CA SVIDs get 401 and an audit event.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { systemClock } from '../../src/common/clock.ts';
import { validateTargets } from '../../src/credentials/config.ts';
import { createCredentialService } from '../../src/credentials/service.ts';
import { createIntermediate, generateSpiffeRoot } from '../../src/credentials/issuers/spiffe-x509/x509-svid.ts';
import { MemoryAudit, TablePolicy, sqliteLeases } from '../credentials/helpers.ts';
import { startServer } from '../credentials/server.ts';
import type { PostgresStore } from '../../src/store/postgres/index.ts';
import type { SqliteStore } from '../../src/store/sqlite/index.ts';
import type { TestServer } from '../credentials/server.ts';

const TD = 'prod.acme.test';
const API = 'workload:github/acme/api';

function workloadKey(dir: string, name: string) {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const key = privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
  const keyPath = join(dir, `${name}.key`);
  writeFileSync(keyPath, key, { mode: 0o600 });
  // The workload makes its own CSR; Portcullis only ever sees the public half.
  execFileSync('openssl', ['req', '-new', '-key', keyPath, '-subj', '/CN=ignored', '-out', join(dir, `${name}.csr`)], { stdio: 'ignore' });
  return { key, pub: publicKey.export({ format: 'pem', type: 'spki' }) as string, csr: readFileSync(join(dir, `${name}.csr`), 'utf8') };
}

describe('X.509-SVIDs: issued over the API, accepted for mTLS to Portcullis itself', () => {
  let s: TestServer;
  before(async () => {
    s = await startServer({
      tls: true,
      trusts: `  - { name: own-svids, kind: spiffe, trust_domain: ${TD}, bundle: portcullis, boundary: application, environment: prod }`,
      resources: `  - { type: Workload, id: svid, boundary: application, environment: prod }
  - { type: Database, id: orders, boundary: application, environment: prod }`,
      targets: `  - { name: svid, kind: spiffe-x509, trust_domain: ${TD}, max_ttl: 1h, default_ttl: 10m }`,
      policies: `
permit (principal == Workload::"${API}", action == Action::"credential.issue", resource == Workload::"svid");
permit (principal == Workload::"${API}", action == Action::"db.select", resource == Database::"orders")
when { context.authn.method == "spiffe-x509" };
`,
    });
  });
  after(async () => {
    await s?.close();
  });

  /** Positive control: a fresh SVID issued over the API logs in over mTLS (TLS and the trust work). */
  const assert200ViaSvid = async (name: string) => {
    const session = await s.login('acme/api');
    const k = workloadKey(s.dir, name);
    const r = await s.call('POST', '/v1/credentials', { target: 'svid', reason: 'positive control', ttl: '5m', public_key: k.pub }, session);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const login = await s.call('POST', '/v1/auth/token', {}, undefined, { cert: r.body.credential.chain, key: k.key });
    assert.equal(login.status, 200, `positive control: a valid SVID must log in over mTLS (${JSON.stringify(login.body)})`);
  };

  const failures = async () => {
    await s.running.broker.audit.flush();
    return (await s.running.broker.audit.query({ stream: 'authn', type: 'authn.failure' })).map((e) => e.payload.reason);
  };

  it('serves the bundle in SPIFFE format, issues an SVID for a CSR, and the SVID logs in as the same identity over mTLS', async () => {
    const bundle = await s.call('GET', `/v1/spiffe/bundle/${TD}`);
    assert.equal(bundle.status, 200);
    assert.equal(bundle.body.keys.length, 1);
    assert.equal(bundle.body.keys[0].use, 'x509-svid');
    assert.equal(bundle.body.keys[0].kty, 'EC');
    const root = new X509Certificate(Buffer.from(bundle.body.keys[0].x5c[0], 'base64'));
    assert.ok(root.ca);
    assert.equal((await s.call('GET', '/v1/spiffe/bundle/other.test')).status, 404);

    const session = await s.login('acme/api');
    const k = workloadKey(s.dir, 'api');
    const r = await s.call('POST', '/v1/credentials', { target: 'svid', reason: 'mTLS to the control plane', ttl: '5m', csr: k.csr }, session);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const c = r.body.credential;
    assert.equal(c.spiffe_id, `spiffe://${TD}/workload/github/acme/api`);
    assert.ok(!JSON.stringify(r.body).includes('PRIVATE KEY'), 'Portcullis never makes the workload key');
    assert.equal(new X509Certificate(c.certificate).publicKey.export({ format: 'pem', type: 'spki' }), k.pub);
    assert.equal(new X509Certificate(c.bundle).fingerprint256, root.fingerprint256, 'the SVID comes with the served bundle');

    // mTLS: no token in the body, the client certificate is the proof.
    const login = await s.call('POST', '/v1/auth/token', {}, undefined, { cert: c.chain, key: k.key });
    assert.equal(login.status, 200, JSON.stringify(login.body));
    assert.equal(login.body.identity.id, API, 'an SVID Portcullis issued maps back to its identity, not a new one');
    assert.equal(s.running.broker.identities.get(`spiffe://${TD}/workload/github/acme/api`), undefined);
    const d = await s.call('POST', '/v1/authorize', { action: 'db.select', resource: { type: 'Database', id: 'orders' } }, login.body.session_token);
    assert.equal(d.body.decision, 'allow', 'the session carries authn.method spiffe-x509');
  });

  it('the intermediate key is sealed at rest and the root key is not stored at all', async () => {
    const store = s.running.broker.store;
    const rows = store.kind === 'postgres'
      ? await (store as PostgresStore).db.query('SELECT * FROM spiffe_ca')
      : ((store as SqliteStore).main.raw.prepare('SELECT * FROM spiffe_ca').all() as Record<string, unknown>[]);
    assert.equal(rows.length, 1);
    assert.deepEqual(Object.keys(rows[0]!).sort(), ['created_at', 'generation', 'intermediate_key_sealed', 'intermediate_pem', 'not_after', 'root_pem', 'trust_domain']);
    assert.ok(!Buffer.from(rows[0]!.intermediate_key_sealed as Uint8Array).toString('latin1').includes('PRIVATE'));
  });

  it('refuses an SVID from another CA for the same trust domain (401, audited)', async () => {
    const foreignRoot = await generateSpiffeRoot(TD, systemClock);
    const foreign = await createIntermediate(foreignRoot, TD, systemClock);
    const policy = new TablePolicy();
    policy.allow(API, 'Workload::svid');
    const svc = createCredentialService({
      leases: sqliteLeases(), audit: new MemoryAudit(), decide: policy.decide,
      targets: validateTargets([{ name: 'svid', kind: 'spiffe-x509', trust_domain: TD, max_ttl: '1h' }]),
      spiffe: { [TD]: { root: foreignRoot.cert, intermediate: foreign } },
    });
    const k = workloadKey(s.dir, 'forged');
    const { credential } = await svc.issue({ identityId: API, target: 'svid', purpose: 'forgery', params: { publicKeyPem: k.pub } });
    await svc.stop();
    const login = await s.call('POST', '/v1/auth/token', {}, undefined, { cert: credential.chain as string, key: k.key });
    assert.equal(login.status, 401);
    assert.ok((await failures()).includes('untrusted_chain'));
    // Positive control over the same TLS listener: an SVID from the real CA logs in.
    await assert200ViaSvid('control-foreign');
  });

  it('refuses a revoked SVID at once and an expired one after its TTL (401, audited)', async () => {
    const session = await s.login('acme/api');
    const revoked = workloadKey(s.dir, 'revoked');
    const r1 = await s.call('POST', '/v1/credentials', { target: 'svid', reason: 'to be revoked', ttl: '5m', public_key: revoked.pub }, session);
    assert.equal(r1.status, 201, JSON.stringify(r1.body));
    assert.equal((await s.call('POST', '/v1/auth/token', {}, undefined, { cert: r1.body.credential.chain, key: revoked.key })).status, 200);
    const rev = await s.call('POST', '/v1/revocations', { selector: { lease: r1.body.lease.id }, reason: 'key compromise' }, session);
    assert.equal(rev.status, 200, JSON.stringify(rev.body));
    assert.equal((await s.call('POST', '/v1/auth/token', {}, undefined, { cert: r1.body.credential.chain, key: revoked.key })).status, 401);
    assert.ok((await failures()).includes('revoked'));

    const k = workloadKey(s.dir, 'short');
    const r2 = await s.call('POST', '/v1/credentials', { target: 'svid', reason: 'short-lived', ttl: '2m', public_key: k.pub }, session);
    assert.equal(r2.status, 201);
    assert.equal((await s.call('POST', '/v1/auth/token', {}, undefined, { cert: r2.body.credential.chain, key: k.key })).status, 200, 'positive control: the short-lived SVID logs in before its TTL');
    s.clock.advance(3 * 60_000);
    const login = await s.call('POST', '/v1/auth/token', {}, undefined, { cert: r2.body.credential.chain, key: k.key });
    assert.equal(login.status, 401);
    assert.ok((await failures()).includes('expired'));
  });
});
