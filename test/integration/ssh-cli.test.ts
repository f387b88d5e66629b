// SSH end to end through the product: a real sshd trusts the CA that `GET /v1/targets` publishes
// and the broker's KRL; `portcullis creds ssh` writes the certificate next to the key, the real
// ssh client logs in with it, and after `portcullis revoke --lease` new logins are refused.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startServer } from '../credentials/server.ts';
import type { TestServer } from '../credentials/server.ts';
import { skipWithoutOpenSsh, sshLogin, startSshd, userKey } from '../credentials/sshd.ts';
import type { Sshd } from '../credentials/sshd.ts';

const CLI = join(import.meta.dirname, '..', '..', 'bin', 'portcullis.js');
const skip = skipWithoutOpenSsh();

describe('SSH certificates over the API and CLI, against a real sshd', { skip }, () => {
  let s: TestServer;
  let sshd: Sshd;
  let session = '';
  // Asynchronous: the server runs in this process and must keep serving while the CLI waits.
  const cli = (...args: string[]) =>
    new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [CLI, ...args], { env: { ...process.env, PORTCULLIS_ADDR: s.url, PORTCULLIS_TOKEN: session, PORTCULLIS_HOME: join(s.dir, 'home') }, encoding: 'utf8', timeout: 120_000 /* hang detector: a fresh Node per command is slow under load */ }, (err, stdout, stderr) =>
        resolve({ status: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr }));
    });

  before(async () => {
    s = await startServer({
      resources: '  - { type: Host, id: web-1, boundary: application, environment: prod }',
      targets: `  - { name: web-1, kind: ssh, hosts: [127.0.0.1], principals: { "workload:github/acme/api": [deploy] }, max_ttl: 1h, default_ttl: 10m }`,
      policies: `
permit (principal == Workload::"workload:github/acme/api", action == Action::"credential.issue", resource == Host::"web-1")
when { context.credential.ttlSeconds <= 3600 };
`,
    });
    session = await s.login('acme/api');
    const targets = await s.call('GET', '/v1/targets', undefined, session);
    assert.equal(targets.status, 200);
    assert.match(targets.body.ssh_user_ca, /^ssh-ed25519 /);
    const krl = s.running.broker.sshKrlPath;
    assert.ok(existsSync(krl), 'the broker keeps an (empty) KRL in its data dir from the start');
    mkdirSync(join(s.dir, 'sshd'));
    sshd = await startSshd(join(s.dir, 'sshd'), { caPublicKeyLine: targets.body.ssh_user_ca, krlPath: krl, principals: ['deploy'] });
  });
  after(async () => {
    sshd?.stop();
    await s?.close();
  });

  it('creds ssh writes the certificate next to the key and ssh logs in; after revoke --lease it does not', async () => {
    const { key } = await userKey(s.dir, 'id_ed25519');
    assert.equal((await sshLogin(sshd.port, key)).ok, false, 'no certificate, no login');

    const issued = (await cli('creds', 'ssh', 'web-1', '--key', `${key}.pub`, '--reason', 'deploy hotfix', '--json'));
    assert.equal(issued.status, 0, issued.stderr + issued.stdout);
    const out = JSON.parse(issued.stdout);
    assert.equal(out.certificate_path, `${key}-cert.pub`);
    assert.ok(existsSync(`${key}-cert.pub`));
    const login = await sshLogin(sshd.port, key);
    assert.ok(login.ok, login.out);

    const leases = (await cli('leases', '--json'));
    assert.equal(leases.status, 0, leases.stderr);
    assert.ok(JSON.parse(leases.stdout).leases.some((l: { id: string; status: string }) => l.id === out.lease.id && l.status === 'active'));

    const revoked = (await cli('revoke', '--lease', out.lease.id, '--reason', 'laptop lost'));
    assert.equal(revoked.status, 0, revoked.stderr);
    assert.match(revoked.stdout, /revoked 1 of 1 lease/);
    const after = await sshLogin(sshd.port, key);
    assert.equal(after.ok, false, 'the still-valid certificate is refused through the KRL');

    // A fresh certificate for a new key still works: only the revoked serial is refused.
    const { key: key2 } = await userKey(s.dir, 'id2_ed25519');
    assert.equal((await cli('creds', 'ssh', 'web-1', '--key', `${key2}.pub`)).status, 0);
    assert.ok((await sshLogin(sshd.port, key2)).ok);
  });
});
