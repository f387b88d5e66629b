// `portcullis dev`'s demo host behind the SSH gateway: a throwaway sshd on loopback (when OpenSSH is
// installed) that trusts the dev broker's SSH user CA and lets the `deploy` principal log in as the
// user running the server, plus the gateway's own host key. Nothing here is for production.
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { freePort } from '../common/net.ts';
import { userInfo } from 'node:os';
import { join } from 'node:path';

const SSHD = '/usr/sbin/sshd';

export interface DevSshd {
  port: number;
  /** The sshd's host public key (pinned by the gateway). */
  hostKey: string;
  /** The gateway's own host key file, and the port it listens on. */
  gatewayKeyFile: string;
  /** The account the demo principal logs in as. */
  login: string;
  /** Makes sshd trust the broker's CA (it reads TrustedUserCAKeys at each login). */
  trustCa(caLine: string): void;
  stop(): void;
}


/** Starts the demo sshd in `<dataDir>-sshd`, or returns undefined (with a note) when OpenSSH is missing. */
export async function startDevSshd(dataDir: string, log: (m: string) => void): Promise<DevSshd | undefined> {
  if (!existsSync(SSHD)) {
    log(`no ${SSHD}: the SSH gateway demo is off (apt-get install openssh-server)`);
    return undefined;
  }
  const dir = `${dataDir}-sshd`;
  mkdirSync(join(dir, 'principals'), { recursive: true, mode: 0o700 });
  for (const k of ['host', 'gw_host']) {
    if (!existsSync(join(dir, k))) execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, k)]);
  }
  const login = userInfo().username;
  writeFileSync(join(dir, 'principals', login), 'deploy\n');
  const caFile = join(dir, 'ca.pub');
  if (!existsSync(caFile)) writeFileSync(caFile, '');
  if (getuidIs0()) mkdirSync('/run/sshd', { recursive: true });
  const port = await freePort();
  writeFileSync(join(dir, 'sshd_config'), [
    `Port ${port}`, 'ListenAddress 127.0.0.1', `HostKey ${join(dir, 'host')}`, `PidFile ${join(dir, 'sshd.pid')}`,
    `TrustedUserCAKeys ${caFile}`, `AuthorizedPrincipalsFile ${join(dir, 'principals')}/%u`, 'AuthorizedKeysFile none',
    'PasswordAuthentication no', 'KbdInteractiveAuthentication no', 'PubkeyAuthentication yes', 'PermitRootLogin prohibit-password',
    'StrictModes no', 'UsePAM no', 'Subsystem sftp internal-sftp', 'LogLevel ERROR', '',
  ].join('\n'));
  const sshd: ChildProcess = spawn(SSHD, ['-D', '-e', '-f', join(dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  sshd.stderr!.on('data', (d) => (err = (err + String(d)).slice(-2000)));
  const deadline = Date.now() + 30_000;
  for (;;) {
    const up = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => (s.destroy(), resolve(true)));
      s.on('error', () => resolve(false));
    });
    if (up) break;
    if (Date.now() > deadline || sshd.exitCode !== null) {
      sshd.kill();
      log(`the demo sshd did not start (${err.trim().split('\n').at(-1) ?? 'no output'}): the SSH gateway demo is off`);
      return undefined;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    port,
    hostKey: readFileSync(join(dir, 'host.pub'), 'utf8').trim(),
    gatewayKeyFile: join(dir, 'gw_host'),
    login,
    trustCa: (caLine) => writeFileSync(caFile, `${caLine.trim()}\n`),
    stop: () => void sshd.kill('SIGTERM'),
  };
}

function getuidIs0(): boolean {
  return process.getuid?.() === 0;
}

/** The `gateways:` entry of the demo: `ssh-gw` in front of `web-1` (the demo sshd). */
export function devSshGateway(s: DevSshd): Record<string, unknown> {
  return {
    name: 'ssh-gw', kind: 'ssh', listen: { host: '127.0.0.1', port: 0 }, target: 'web-1',
    host_key_file: s.gatewayKeyFile, upstream: `127.0.0.1:${s.port}`, host_keys: [s.hostKey],
  };
}
