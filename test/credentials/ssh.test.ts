// OpenSSH user certificates against a real sshd on a loopback port and the real ssh client.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock, systemClock } from '../../src/common/clock.ts';
import type { Clock } from '../../src/common/clock.ts';
import { Forbidden } from '../../src/common/errors.ts';
import { validateTargets } from '../../src/credentials/config.ts';
import type { TargetConfig } from '../../src/credentials/config.ts';
import { createCredentialService } from '../../src/credentials/service.ts';
import { parseUserCertificate } from '../../src/credentials/issuers/ssh/ssh-cert.ts';
import { generateSshCa } from '../../src/credentials/issuers/ssh/ssh.ts';
import { MemoryAudit, TablePolicy, sqliteLeases } from './helpers.ts';
import { run, skipWithoutOpenSsh, sshLogin as login, startSshd, userKey as newKey } from './sshd.ts';
import type { Sshd } from './sshd.ts';

const skip = skipWithoutOpenSsh();
const dir = mkdtempSync(join(tmpdir(), 'pcx-ssh-'));
const ca = generateSshCa();
const krl = join(dir, 'revoked.krl');
let sshd: Sshd | undefined;

const targets = validateTargets([
  { name: 'web-1', kind: 'ssh', hosts: ['127.0.0.1'], principals: { 'user:alice@example.com': ['ops'], 'user:mallory*': ['dba'], 'agent:*': ['ops'] }, max_ttl: '8h', default_ttl: '1h' },
  { name: 'web-1-lan-only', kind: 'ssh', hosts: ['127.0.0.1'], principals: { 'user:alice@example.com': ['ops'] }, max_ttl: '1h', source_address: ['10.0.0.0/8'] },
  { name: 'web-1-loopback', kind: 'ssh', hosts: ['127.0.0.1'], principals: { 'user:alice@example.com': ['ops'] }, max_ttl: '1h', source_address: ['127.0.0.1/32'], extensions: ['permit-pty', 'permit-port-forwarding'] },
]);

function service(clock: Clock = systemClock, t: TargetConfig[] = targets) {
  const audit = new MemoryAudit();
  const policy = new TablePolicy();
  for (const x of t) for (const id of ['user:alice@example.com', 'user:mallory', 'agent:deployer']) policy.allow(id, `Host::${x.name}`);
  const svc = createCredentialService({ leases: sqliteLeases(), clock, audit, decide: policy.decide, targets: t, ssh: { ca, krlPath: krl } });
  return { svc, audit, policy };
}

let keyN = 0;
const userKey = () => newKey(dir, `id_${++keyN}`);

async function sshLogin(key: string, certificate: string): Promise<{ ok: boolean; out: string }> {
  writeFileSync(`${key}-cert.pub`, `${certificate}\n`);
  return login(sshd!.port, key);
}

/**
 * Positive control: a fresh, valid certificate logs in to this sshd right now. Every test that
 * expects a refusal runs it, so a broken sshd (or ssh client) that refuses everything fails the
 * test instead of passing it.
 */
async function controlLogsIn(svc: ReturnType<typeof service>['svc']): Promise<void> {
  const { key, pub } = await userKey();
  const { credential } = await svc.issue({ identityId: 'user:alice@example.com', target: 'web-1', ttl: '10m', purpose: 'positive control', params: { publicKey: pub } });
  const r = await sshLogin(key, credential.certificate as string);
  assert.ok(r.ok, `positive control: a valid certificate must log in (${r.out})`);
}

describe('ssh user certificates', { skip }, () => {
  before(async () => {
    sshd = await startSshd(dir, { caPublicKeyLine: ca.publicKeyLine, krlPath: krl, principals: ['ops'] });
  });

  after(() => {
    sshd?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a valid certificate logs in; it carries identity, principals, lease validity, only allowed extensions', async () => {
    const { svc, audit } = service();
    const { key, pub } = await userKey();
    const { lease, credential } = await svc.issue({ identityId: 'user:alice@example.com', target: 'web-1', ttl: '30m', purpose: 'deploy hotfix', params: { publicKey: pub } });
    const cert = parseUserCertificate(credential.certificate as string, ca.privateKey);
    assert.equal(cert.signatureValid, true);
    assert.equal(cert.keyId, 'user:alice@example.com');
    assert.deepEqual(cert.principals, ['ops']);
    assert.equal(cert.validAfter, Math.floor(lease.issuedAt / 1000));
    assert.equal(cert.validBefore, Math.floor(lease.expiresAt / 1000));
    assert.deepEqual(cert.extensions, ['permit-pty']);
    assert.deepEqual(cert.criticalOptions, {});
    assert.equal(String(cert.serial), lease.handle);
    // OpenSSH itself agrees with our encoding.
    writeFileSync(join(dir, 'check-cert.pub'), `${credential.certificate}\n`);
    const l = (await run('ssh-keygen', ['-L', '-f', join(dir, 'check-cert.pub')])).stdout;
    assert.match(l, /Key ID: "user:alice@example.com"/);
    assert.match(l, /Principals: \n\s+ops/);
    assert.doesNotMatch(l, /permit-agent-forwarding|permit-port-forwarding|permit-X11-forwarding/);
    const login = await sshLogin(key, credential.certificate as string);
    assert.ok(login.ok, login.out);
    assert.equal(audit.ofType('credential.issued')[0]!.payload.permission, 'ops');
    await svc.stop();
  });

  test('an expired certificate is refused', async () => {
    const clock = new ManualClock(Date.now() - 2 * 3_600_000);
    const { svc } = service(clock);
    const { key, pub } = await userKey();
    const { credential } = await svc.issue({ identityId: 'user:alice@example.com', target: 'web-1', ttl: '1h', purpose: 'old', params: { publicKey: pub } });
    const login = await sshLogin(key, credential.certificate as string);
    assert.equal(login.ok, false);
    assert.match(login.out, /Permission denied/, login.out);
    await svc.stop();
    const live = service();
    await controlLogsIn(live.svc);
    await live.svc.stop();
  });

  test('a certificate for another principal is refused; unmapped principals are never signed', async () => {
    const { svc } = service();
    const { key, pub } = await userKey();
    const { credential } = await svc.issue({ identityId: 'user:mallory', target: 'web-1', purpose: 'try', params: { publicKey: pub } });
    assert.deepEqual(parseUserCertificate(credential.certificate as string, ca.privateKey).principals, ['dba']);
    const refused = await sshLogin(key, credential.certificate as string);
    assert.equal(refused.ok, false);
    assert.match(refused.out, /Permission denied/, refused.out);
    await assert.rejects(svc.issue({ identityId: 'user:mallory', target: 'web-1', purpose: 'widen', params: { publicKey: pub, principals: ['ops'] } }), Forbidden);
    await controlLogsIn(svc);
    await svc.stop();
  });

  test('source-address is enforced by sshd', async () => {
    const { svc } = service();
    const { key, pub } = await userKey();
    const lan = await svc.issue({ identityId: 'user:alice@example.com', target: 'web-1-lan-only', purpose: 'lan', params: { publicKey: pub } });
    assert.deepEqual(parseUserCertificate(lan.credential.certificate as string, ca.privateKey).criticalOptions, { 'source-address': '10.0.0.0/8' });
    assert.equal((await sshLogin(key, lan.credential.certificate as string)).ok, false);
    const lo = await svc.issue({ identityId: 'user:alice@example.com', target: 'web-1-loopback', purpose: 'lo', params: { publicKey: pub } });
    assert.deepEqual(parseUserCertificate(lo.credential.certificate as string, ca.privateKey).extensions, ['permit-port-forwarding', 'permit-pty']);
    const r = await sshLogin(key, lo.credential.certificate as string);
    assert.ok(r.ok, r.out);
    await svc.stop();
  });

  test('revocation puts the serial in the KRL: the still-valid certificate stops logging in', async () => {
    const { svc, audit } = service();
    const { key, pub } = await userKey();
    const { lease, credential } = await svc.issue({ identityId: 'agent:deployer', target: 'web-1', purpose: 'rollout', params: { publicKey: pub } });
    assert.ok((await sshLogin(key, credential.certificate as string)).ok);
    await svc.revoke({ identity: 'agent:deployer' }, { by: 'user:secops', reason: 'agent compromised' });
    assert.equal((await svc.get(lease.id)).status, 'revoked');
    assert.equal((await sshLogin(key, credential.certificate as string)).ok, false);
    assert.equal(audit.ofType('credential.revoked')[0]!.payload.reason, 'agent compromised');
    await controlLogsIn(svc); // the KRL refuses that serial, not every certificate
    await svc.stop();
  });

  test('renew issues a new certificate and the old one stops logging in (its serial goes in the KRL)', async () => {
    const { svc, audit } = service();
    const { key, pub } = await userKey();
    const { lease, credential } = await svc.issue({ identityId: 'user:alice@example.com', target: 'web-1', ttl: '20m', purpose: 'long job', params: { publicKey: pub } });
    const oldCert = credential.certificate as string;
    assert.ok((await sshLogin(key, oldCert)).ok, 'the first certificate logs in');
    const renewed = await svc.renew(lease.id, { ttl: '30m' });
    const newCert = renewed.credential.certificate as string;
    assert.ok(newCert, 'renew hands out a new certificate');
    assert.notEqual(newCert, oldCert);
    const oldSerial = parseUserCertificate(oldCert, ca.privateKey).serial;
    const newSerial = parseUserCertificate(newCert, ca.privateKey).serial;
    assert.notEqual(String(newSerial), String(oldSerial));
    assert.equal(String(newSerial), renewed.lease.handle);
    assert.equal(renewed.lease.renewals, 1);
    // The real sshd: the renewed certificate logs in, the superseded one is refused (KRL).
    const fresh = await sshLogin(key, newCert);
    assert.ok(fresh.ok, fresh.out);
    const stale = await sshLogin(key, oldCert);
    assert.equal(stale.ok, false, 'the superseded certificate still logs in');
    assert.match(stale.out, /Permission denied/, stale.out);
    // Renewing again supersedes the second one too; the third logs in.
    const third = await svc.renew(lease.id, { ttl: '30m' });
    assert.equal((await sshLogin(key, newCert)).ok, false, 'the second certificate is superseded too');
    assert.equal((await sshLogin(key, oldCert)).ok, false, 'the first stays refused: the lease keeps every superseded serial until it expires');
    assert.ok((await sshLogin(key, third.credential.certificate as string)).ok);
    assert.equal(audit.ofType('credential.renewed').length, 2);
    await svc.stop();
  });
});
