// A real Portcullis server (startServer) running an SSH gateway in front of a real sshd that trusts
// the server's SSH user CA, and the real OpenSSH client pointed at the gateway. Shared by the SSH
// gateway tests.
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ManualClock } from '../../src/common/clock.ts';
import { generateSshCa } from '../../src/credentials/issuers/ssh/ssh.ts';
import { startServer } from '../credentials/server.ts';
import type { TestServer } from '../credentials/server.ts';
import { startSshd, sshUser } from '../credentials/sshd.ts';
import type { Sshd } from '../credentials/sshd.ts';

export const run = promisify(execFile);
export const WORKLOAD = 'workload:github/acme/api';

export interface SessionRecord {
  seq: number;
  /** When the server recorded it (RFC 3339, its own clock). */
  time: string;
  type: string;
  actor: string;
  payload: Record<string, unknown>;
}

export interface GatewayFixture {
  dir: string;
  s: TestServer;
  sshd: Sshd;
  /** The gateway's address (127.0.0.1). */
  port: number;
  /** The session token of the workload. */
  token: string;
  /** The server's SSH user CA line. */
  caLine: string;
  /** A fresh key pair with a Portcullis certificate for `web-1` (POST /v1/credentials); its lease id. */
  clientKey(): Promise<{ key: string; leaseId: string; serial: string }>;
  /** `ssh -p GATEWAY login@127.0.0.1 ARGS` with the key's certificate; exit code and output. */
  ssh(key: string, args: string[], opts?: { input?: string; timeoutMs?: number; login?: string; env?: Record<string, string> }): Promise<{ code: number | null; stdout: string; stderr: string }>;
  /** Client options (no config, pinned gateway key, the key's certificate) for scp/sftp: `-P`/`-o Port` is the caller's. */
  clientArgs(key: string): string[];
  /** The same with the session token as password (SSH_ASKPASS), no key at all. */
  sshWithToken(token: string, args: string[], env?: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }>;
  /** The `session` stream records of one gateway session (or all). */
  records(session?: string): Promise<SessionRecord[]>;
  /** The `admin` stream records of one type. */
  adminRecords(type: string): Promise<SessionRecord[]>;
  revoke(selector: Record<string, unknown>, reason: string): Promise<void>;
  /** The server's clock: frozen (a ManualClock) unless a test lets it run with real time. */
  clock: RunningClock;
  close(): Promise<void>;
}

/**
 * A ManualClock that can also run with real time, between `run()` and `pause()`: the times of the
 * records the server writes then measure real intervals on the server's own clock.
 */
export class RunningClock extends ManualClock {
  #since: number | undefined;
  override now(): number {
    return super.now() + (this.#since === undefined ? 0 : Date.now() - this.#since);
  }
  run(): void {
    this.#since ??= Date.now();
  }
  pause(): void {
    if (this.#since === undefined) return;
    const ran = Date.now() - this.#since;
    this.#since = undefined;
    this.advance(ran);
  }
}

/** OpenSSH client options: no agent, no config, the gateway's pinned host key. */
function clientOptions(dir: string, env: Record<string, string> = {}): string[] {
  // An agent only when the caller gives one (SSH_AUTH_SOCK: OpenSSH forwards only an agent it can reach).
  return ['-F', '/dev/null', '-o', `IdentityAgent=${env.SSH_AUTH_SOCK ?? 'none'}`, '-o', `UserKnownHostsFile=${join(dir, 'gw_known_hosts')}`, '-o', 'GlobalKnownHostsFile=/dev/null',
    '-o', 'StrictHostKeyChecking=yes', '-o', 'ConnectTimeout=10', '-o', 'LogLevel=ERROR'];
}

export function execSsh(args: string[], opts: { input?: string; timeoutMs?: number; env?: Record<string, string> } = {}): Promise<{ code: number | null; stdout: string; stderr: string; child: ChildProcess }> {
  return new Promise((resolve) => {
    const child: ChildProcess = execFile('ssh', args, { timeout: opts.timeoutMs ?? 30_000, encoding: 'utf8', ...(opts.env && { env: opts.env }) }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr, child });
    });
    child.stdin!.end(opts.input ?? '');
  });
}

export async function startGatewayFixture(dir: string, o: { policies: string; hostKeys?: (real: string) => string[]; recordInput?: boolean }): Promise<GatewayFixture> {
  mkdirSync(dir, { recursive: true });
  // sshd first (the gateway config names its port); it trusts the server's CA once that exists.
  const sshdDir = join(dir, 'sshd');
  mkdirSync(sshdDir);
  const sshd = await startSshd(sshdDir, { caPublicKeyLine: generateSshCa().publicKeyLine, krlPath: join(dir, 'revoked.krl'), principals: ['deploy'], extraConfig: ['Subsystem sftp internal-sftp'] });
  const realHostKey = readFileSync(join(sshdDir, 'host.pub'), 'utf8').trim();
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'gw_host')]);
  const hostKeys = (o.hostKeys ?? ((k) => [k]))(realHostKey);
  const clock = new RunningClock(Date.now());
  const s = await startServer({
    clock,
    resources: '  - { type: Host, id: web-1, boundary: application, environment: prod }',
    targets: '  - { name: web-1, kind: ssh, hosts: [127.0.0.1], principals: { "workload:github/acme/api": [deploy] }, max_ttl: 1h, default_ttl: 10m, extensions: [permit-pty, permit-port-forwarding, permit-agent-forwarding] }',
    gateways: `  - { name: ssh-gw, kind: ssh, listen: { host: 127.0.0.1, port: 0 }, target: web-1, host_key_file: ${join(dir, 'gw_host')}, upstream: "127.0.0.1:${sshd.port}", host_keys: ${JSON.stringify(hostKeys)}, record_input: ${o.recordInput ?? false} }`,
    policies: o.policies,
  });
  try {
    const targets = await s.call('GET', '/v1/targets', undefined, await s.login('acme/api'));
    const caLine = targets.body.ssh_user_ca as string;
    writeFileSync(join(sshdDir, 'ca.pub'), `${caLine}\n`); // sshd reads TrustedUserCAKeys at each login
    const port = s.running.broker.gatewayAddresses().get('ssh-gw')!.port;
    writeFileSync(join(dir, 'gw_known_hosts'), `[127.0.0.1]:${port} ${readFileSync(join(dir, 'gw_host.pub'), 'utf8').trim()}\n`);
    const token = await s.login('acme/api');
    let keyN = 0;
    const askpass = join(dir, 'askpass.sh');
    writeFileSync(askpass, '#!/bin/sh\nprintf "%s\\n" "$PCX_TEST_SECRET"\n');
    chmodSync(askpass, 0o700);
    const fx: GatewayFixture = {
      dir, s, sshd, port, token, caLine, clock,
      async clientKey() {
        const key = join(dir, `id_${++keyN}`);
        await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
        const r = await s.call('POST', '/v1/credentials', { target: 'web-1', reason: 'gateway login', public_key: readFileSync(`${key}.pub`, 'utf8').trim() }, token);
        if (r.status !== 200 && r.status !== 201) throw new Error(`issuing the login certificate failed: ${r.status} ${JSON.stringify(r.body)}`);
        const credential = r.body.credential as Record<string, string>;
        writeFileSync(`${key}-cert.pub`, `${credential.certificate}\n`);
        return { key, leaseId: (r.body.lease as Record<string, string>).id!, serial: credential.serial! };
      },
      ssh(key, args, opts = {}) {
        return execSsh([...clientOptions(dir, opts.env), '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-i', key, '-o', `CertificateFile=${key}-cert.pub`,
          '-p', String(port), '-l', opts.login ?? sshUser, '127.0.0.1', ...args], opts);
      },
      clientArgs(key) {
        return [...clientOptions(dir), '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-i', key, '-o', `CertificateFile=${key}-cert.pub`, '-o', `User=${sshUser}`];
      },
      sshWithToken(secret, args, env = {}) {
        return execSsh([...clientOptions(dir, env), '-o', 'PreferredAuthentications=password', '-o', 'PubkeyAuthentication=no', '-o', 'NumberOfPasswordPrompts=1',
          '-p', String(port), '-l', sshUser, '127.0.0.1', ...args], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force', DISPLAY: 'none', PCX_TEST_SECRET: secret, ...env } });
      },
      async records(session) {
        const admin = await s.admin();
        const out: SessionRecord[] = [];
        let after = 0;
        for (;;) {
          const r = await s.call('GET', `/v1/audit/session?after=${after}&limit=500`, undefined, admin);
          if (r.status !== 200) throw new Error(`GET /v1/audit/session: ${r.status} ${JSON.stringify(r.body)}`);
          const page = (r.body.records ?? r.body.events ?? []) as SessionRecord[];
          out.push(...page);
          if (page.length < 500) break;
          after = page.at(-1)!.seq;
        }
        return session === undefined ? out : out.filter((x) => x.payload.session === session);
      },
      async adminRecords(type) {
        const r = await s.call('GET', `/v1/audit/admin?type=${encodeURIComponent(type)}&limit=9999`, undefined, await s.admin());
        if (r.status !== 200) throw new Error(`GET /v1/audit/admin: ${r.status} ${JSON.stringify(r.body)}`);
        return (r.body.events ?? []) as SessionRecord[];
      },
      async revoke(selector, reason) {
        const r = await s.call('POST', '/v1/revocations', { selector, reason }, await s.admin());
        if (r.status !== 200) throw new Error(`revoke: ${r.status} ${JSON.stringify(r.body)}`);
      },
      async close() {
        await s.close();
        sshd.stop();
      },
    };
    return fx;
  } catch (e) {
    await s.close();
    sshd.stop();
    throw e;
  }
}

/** The real ssh client inside a pty of its own (script(1)) at cols×rows, for interactive sessions. */
export function interactiveSsh(fx: GatewayFixture, key: string, size: { cols: number; rows: number }): ChildProcess & { output(): string } {
  const cmd = ['ssh', '-tt', ...clientOptions(fx.dir), '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-i', key, '-o', `CertificateFile=${key}-cert.pub`,
    '-p', String(fx.port), '-l', sshUser, '127.0.0.1'].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const child = spawn('script', ['-q', '-e', '-f', '-c', `stty rows ${size.rows} cols ${size.cols}; exec ${cmd}`, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, TERM: 'xterm-256color' } });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  return Object.assign(child, { output: () => out });
}
