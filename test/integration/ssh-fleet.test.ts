// SSH for a fleet, with real OpenSSH: a host proves its identity and gets a Portcullis host
// certificate; sshd is set up the way `portcullis ssh setup-host` says (user CA, RevokedKeys from
// GET /v1/ssh/krl, HostCertificate); a client that trusts only the host CA (`@cert-authority`,
// StrictHostKeyChecking=yes) logs in with a Portcullis user certificate; the host is refused under
// another CA; a revoked user certificate is refused once the host fetched the KRL.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSshCa } from '../../src/credentials/issuers/ssh/ssh.ts';
import { parseUserCertificate } from '../../src/credentials/issuers/ssh/ssh-cert.ts';
import { hostSetup } from '../../src/cli/ssh-setup.ts';
import { startServer } from '../credentials/server.ts';
import type { TestServer } from '../credentials/server.ts';
import { run, skipWithoutOpenSsh, sshUser, startSshd, userKey } from '../credentials/sshd.ts';
import type { Sshd } from '../credentials/sshd.ts';

const skip = skipWithoutOpenSsh();
const API = 'workload:github/acme/api';

describe('SSH for a fleet: host certificates, the KRL endpoint, @cert-authority', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'pcx-fleet-'));
  let s: TestServer;
  let sshd: Sshd | undefined;
  let targets: { ssh_user_ca: string; ssh_host_ca: string };
  const krlFile = join(dir, 'portcullis.krl');

  /** What the host's timer does: fetch the KRL into RevokedKeys. */
  const fetchKrl = async () => {
    const r = await fetch(`${s.url}/v1/ssh/krl`);
    assert.equal(r.status, 200);
    writeFileSync(krlFile, Buffer.from(await r.arrayBuffer()));
  };

  /** ssh as a client that trusts hosts only through `knownHosts`, strictly. */
  const login = async (key: string, knownHosts: string): Promise<{ ok: boolean; out: string }> => {
    writeFileSync(join(dir, 'known_hosts'), `${knownHosts}\n`);
    try {
      const r = await run('ssh', [
        '-F', '/dev/null', '-p', String(sshd!.port), '-i', key, '-o', `CertificateFile=${key}-cert.pub`, '-o', 'IdentitiesOnly=yes',
        '-o', 'IdentityAgent=none', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=yes', '-o', `UserKnownHostsFile=${join(dir, 'known_hosts')}`,
        '-o', 'GlobalKnownHostsFile=/dev/null', '-o', 'HostKeyAlgorithms=ssh-ed25519-cert-v01@openssh.com', '-o', 'ConnectTimeout=5', '-o', 'LogLevel=ERROR',
        `${sshUser}@127.0.0.1`, 'echo ok',
      ], { timeout: 15_000 });
      return { ok: r.stdout.trim() === 'ok', out: r.stdout + r.stderr };
    } catch (e) {
      return { ok: false, out: String((e as { stderr?: string }).stderr ?? e) };
    }
  };

  before(async () => {
    s = await startServer({
      resources: [
        '  - { type: Host, id: web, boundary: application, environment: prod }',
        '  - { type: Host, id: fleet, boundary: application, environment: prod }',
      ].join('\n'),
      targets: [
        `  - { name: web, kind: ssh, hosts: [127.0.0.1], principals: { "${API}": [deploy] }, max_ttl: 1h, default_ttl: 10m }`,
        '  - { name: fleet, kind: ssh-host, principals: { "workload:github/acme/host-*": [127.0.0.1, "*.web.test"] }, max_ttl: 7d, default_ttl: 1d }',
      ].join('\n'),
      policies: `
permit (principal, action == Action::"credential.issue", resource == Host::"web");
permit (principal, action == Action::"credential.issue", resource == Host::"fleet");
`,
    });
    const admin = await s.admin();
    targets = (await s.call('GET', '/v1/targets', undefined, admin)).body as unknown as typeof targets;
    assert.match(targets.ssh_host_ca, /^ssh-ed25519 \S+ portcullis-host-ca$/);
    assert.notEqual(targets.ssh_host_ca.split(' ')[1], targets.ssh_user_ca.split(' ')[1], 'the host CA is not the user CA');
  });

  after(async () => {
    sshd?.stop();
    await s?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a host gets a host certificate for the names mapped to it; another identity gets none', async () => {
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'host')]);
    const host = await s.login('acme/host-1');
    const r = await s.call('POST', '/v1/credentials', { target: 'fleet', reason: 'boot', public_key: readFileSync(join(dir, 'host.pub'), 'utf8').trim() }, host);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const cred = (r.body as { credential: { certificate: string; hosts: string[]; key_id: string } }).credential;
    assert.deepEqual(cred.hosts, ['*.web.test', '127.0.0.1']);
    writeFileSync(join(dir, 'host-cert.pub'), `${cred.certificate}\n`);
    const listed = await run('ssh-keygen', ['-L', '-f', join(dir, 'host-cert.pub')]);
    assert.match(listed.stdout, /Type: ssh-ed25519-cert-v01@openssh.com host certificate/);
    assert.match(listed.stdout, /Key ID: "workload:github\/acme\/host-1"/);

    const other = await s.login('acme/api');
    const refused = await s.call('POST', '/v1/credentials', { target: 'fleet', reason: 'x', public_key: readFileSync(join(dir, 'host.pub'), 'utf8').trim() }, other);
    assert.equal(refused.status, 403, JSON.stringify(refused.body));
  });

  it('set up as setup-host says, sshd presents the host certificate; a client trusting the host CA logs in with a user certificate', async () => {
    const setup = hostSetup({ userCa: targets.ssh_user_ca, hostCa: targets.ssh_host_ca, krlUrl: `${s.url}/v1/ssh/krl`, hostKey: join(dir, 'host.pub'), hostPattern: '127.0.0.1' });
    assert.match(setup.files['/etc/ssh/sshd_config.d/portcullis.conf']!, new RegExp(`HostCertificate ${join(dir, 'host-cert.pub')}`));
    assert.match(setup.files['/etc/systemd/system/portcullis-krl.service']!, /--etag-compare/);
    await fetchKrl();
    sshd = await startSshd(join(dir), { caPublicKeyLine: targets.ssh_user_ca, krlPath: krlFile, principals: ['deploy'], hostKey: join(dir, 'host'), hostCertificate: join(dir, 'host-cert.pub') });

    const { key, pub } = await userKey(dir, 'id_user');
    const session = await s.login('acme/api');
    const issued = await s.call('POST', '/v1/credentials', { target: 'web', reason: 'deploy', public_key: pub }, session);
    assert.equal(issued.status, 201, JSON.stringify(issued.body));
    writeFileSync(`${key}-cert.pub`, `${(issued.body as { credential: { certificate: string } }).credential.certificate}\n`);

    const ok = await login(key, setup.known_hosts);
    assert.ok(ok.ok, `logs in, the host verified by its certificate: ${ok.out}`);
    // A client that trusts another CA for this host refuses it (no trust on first use).
    const foreign = await login(key, `@cert-authority 127.0.0.1 ${generateSshCa().publicKeyLine}`);
    assert.equal(foreign.ok, false);
    assert.match(foreign.out, /Host key verification failed|No ED25519 host key is known/i, foreign.out);

    // Revoked: refused as soon as the host fetched the list.
    const lease = (issued.body as { lease: { id: string } }).lease.id;
    assert.equal((await s.call('POST', '/v1/revocations', { selector: { lease }, reason: 'laptop lost' }, session)).status, 200);
    await new Promise((r) => setTimeout(r, 1100)); // the replica compiles the KRL at most once a second
    await fetchKrl();
    const revoked = await login(key, setup.known_hosts);
    assert.equal(revoked.ok, false, 'the revoked certificate is refused');
    assert.match(revoked.out, /Permission denied/, revoked.out);
    const serial = parseUserCertificate(readFileSync(`${key}-cert.pub`, 'utf8'), generateSshCa().privateKey).serial;
    const q = await run('ssh-keygen', ['-Q', '-f', krlFile, `${key}-cert.pub`]).then(() => 'not revoked', (e: { stdout?: string }) => String(e.stdout));
    assert.match(q, /REVOKED/, `serial ${serial} in the fetched KRL`);
  });
});
