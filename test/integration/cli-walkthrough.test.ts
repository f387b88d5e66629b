// The README's five-minute walkthrough, run for real: `portcullis dev` as a child process and the
// CLI against it, checking output and exit codes.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CLI = join(import.meta.dirname, '..', '..', 'bin', 'portcullis.js');

describe('CLI walkthrough against `portcullis dev`', () => {
  let dir: string;
  let server: ChildProcess;
  let env: NodeJS.ProcessEnv;
  const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { env, encoding: 'utf8', timeout: 30_000 });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pcx-cli-'));
    server = spawn(process.execPath, [CLI, 'dev', '--data', join(dir, 'data'), '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const url = await new Promise<string>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`dev server did not start: ${out}`)), 30_000);
      server.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /Portcullis dev server on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      });
      server.once('exit', (code) => reject(new Error(`dev server exited with ${code}: ${out}`)));
    });
    env = { ...process.env, PORTCULLIS_ADDR: url, PORTCULLIS_HOME: join(dir, 'home') };
    delete env.PORTCULLIS_TOKEN;
  });

  after(async () => {
    if (server && server.exitCode === null) {
      const exited = new Promise((r) => server.once('exit', r));
      server.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  const token = (...who: string[]) => {
    const r = cli('dev', 'token', '--data', join(dir, 'data'), '--port', '0', ...who);
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.trim();
  };

  it('a workload logs in with a dev OIDC token and gets allow/deny decisions with exit codes', () => {
    const login = cli('login', '--token', token('--sub', 'repo:acme/api'));
    assert.equal(login.status, 0, login.stderr);
    assert.match(login.stdout, /logged in as workload:github\/acme\/api/);
    const allow = cli('authorize', 'db.select', 'Database::orders', '--reason', 'monthly report');
    assert.equal(allow.status, 0, allow.stdout + allow.stderr);
    assert.match(allow.stdout, /^ALLOW/);
    const deny = cli('authorize', 'db.select', 'Database::orders');
    assert.equal(deny.status, 3);
    assert.match(deny.stdout, /^DENY/);
    const boundary = cli('authorize', 'db.select', 'Database::analytics', '--reason', 'x', '--json');
    assert.equal(boundary.status, 3);
    assert.deepEqual(JSON.parse(boundary.stdout).reasons, ['system:boundary-guard']);
    const admin = cli('identities', 'list');
    assert.equal(admin.status, 3, 'workloads may not administer');
    assert.match(admin.stderr, /403/);
  });

  it('an administrator reads the inventory and the audit trail, and verifies it', () => {
    assert.equal(cli('login', '--token', token('--user', 'admin@example.com')).status, 0);
    const ids = cli('identities', 'list', '--json');
    assert.equal(ids.status, 0, ids.stderr);
    assert.ok(JSON.parse(ids.stdout).identities.some((i: { id: string }) => i.id === 'workload:github/acme/api'));
    const authz = cli('audit', 'authz', '--json');
    assert.equal(authz.status, 0, authz.stderr);
    const decisions = JSON.parse(authz.stdout).events.map((e: { decision: string }) => e.decision);
    assert.ok(decisions.includes('allow') && decisions.includes('deny'));
    const verify = cli('audit', 'verify');
    assert.equal(verify.status, 0, verify.stdout + verify.stderr);
    assert.match(verify.stdout, /ok\s+authz/);
  });

  it('mints an API key and logs in with it', () => {
    const mint = cli('apikeys', 'mint', '--identity', 'workload:github/acme/reports', '--ttl', '7d', '--json');
    assert.equal(mint.status, 0, mint.stderr);
    const key = JSON.parse(mint.stdout).api_key as string;
    assert.match(key, /^pcx_/);
    const login = cli('login', '--api-key', key, '--json');
    assert.equal(login.status, 0, login.stderr);
    assert.equal(JSON.parse(login.stdout).identity.id, 'workload:github/acme/reports');
  });

  it('short-lived credentials on the dev server: an access token and an SSH certificate, leased and revocable', () => {
    assert.equal(cli('login', '--token', token('--sub', 'repo:acme/api')).status, 0);
    const at = cli('creds', 'issue', 'api', 'orders-api', '--scope', 'orders:read', '--ttl', '10m', '--reason', 'sync job', '--json');
    assert.equal(at.status, 0, at.stderr);
    const issued = JSON.parse(at.stdout);
    const claims = JSON.parse(Buffer.from(String(issued.credential.access_token).split('.')[1]!, 'base64url').toString());
    assert.equal(claims.sub, 'workload:github/acme/api');
    assert.equal(claims.scope, 'orders:read');
    const keyPath = join(dir, 'id_ed25519');
    const keygen = spawnSync('ssh-keygen', ['-t', 'ed25519', '-N', '', '-q', '-f', keyPath]);
    if (keygen.error === undefined && keygen.status === 0) {
      const ssh = cli('creds', 'ssh', 'web-1', '--key', `${keyPath}.pub`);
      assert.equal(ssh.status, 0, ssh.stderr);
      assert.match(readFileSync(`${keyPath}-cert.pub`, 'utf8'), /^ssh-ed25519-cert-v01@openssh\.com /);
    }
    const tooLong = cli('creds', 'issue', 'api', 'orders-api', '--scope', 'orders:read', '--ttl', '2h', '--reason', 'x');
    assert.notEqual(tooLong.status, 0, 'beyond the target cap or the policy: refused');
    const leases = cli('leases', '--json');
    assert.equal(leases.status, 0, leases.stderr);
    const mine = JSON.parse(leases.stdout).leases as { id: string; status: string }[];
    assert.ok(mine.some((l) => l.id === issued.lease.id && l.status === 'active'));
    const revoke = cli('revoke', '--lease', issued.lease.id, '--reason', 'done');
    assert.equal(revoke.status, 0, revoke.stdout + revoke.stderr);
    assert.match(revoke.stdout, /revoked 1 of 1 lease/);
  });

  it('errors say what to do next', () => {
    const bad = spawnSync(process.execPath, [CLI, 'authorize', 'db.select', 'orders'], { env, encoding: 'utf8' });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /Database::orders/);
    const down = spawnSync(process.execPath, [CLI, 'identities', 'list'], { env: { ...env, PORTCULLIS_ADDR: 'http://127.0.0.1:1', PORTCULLIS_TOKEN: 'x.y.z' }, encoding: 'utf8' });
    assert.equal(down.status, 5, 'server unreachable');
    assert.match(down.stderr, /cannot reach Portcullis at http:\/\/127\.0\.0\.1:1.*npm start/);
    const otherServer = spawnSync(process.execPath, [CLI, 'identities', 'list'], { env: { ...env, PORTCULLIS_ADDR: 'http://127.0.0.1:1' }, encoding: 'utf8' });
    assert.equal(otherServer.status, 4, 'the saved session belongs to another server');
    assert.match(otherServer.stderr, /log in again/);
  });
});
