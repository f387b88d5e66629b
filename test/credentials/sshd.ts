// A real sshd on a loopback port trusting an SSH user CA (TrustedUserCAKeys, RevokedKeys), and the
// real ssh client; shared by the unit and the integration SSH tests.
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './helpers.ts';
import { missingDependency } from '../ci.ts';

export const run = promisify(execFile);
const SSHD = '/usr/sbin/sshd';
const SSH = '/usr/bin/ssh';
export const haveOpenSsh = existsSync(SSHD) && existsSync(SSH);
/** The local account sshd lets certificates log in as. */
export const sshUser = process.env.USER ?? 'root';

/** The `skip` value for describe(): false when OpenSSH is here; when not, a notice (a failing test in CI). */
export function skipWithoutOpenSsh(): false | string {
  if (haveOpenSsh) return false;
  return missingDependency(`OpenSSH (${SSHD}, ${SSH})`, 'apt-get install openssh-server openssh-client');
}

export interface Sshd {
  port: number;
  stop(): void;
}

/**
 * Starts sshd in `dir`: trusts `caPublicKeyLine`, refuses serials in `krlPath` (created empty when
 * missing: an unreadable RevokedKeys refuses every key), lets `principals` log in as sshUser;
 * `extraConfig` lines are appended (e.g. `Subsystem sftp internal-sftp`).
 */
export async function startSshd(dir: string, o: { caPublicKeyLine: string; krlPath: string; principals: string[]; hostKey?: string; hostCertificate?: string; extraConfig?: string[] }): Promise<Sshd> {
  const port = await freePort();
  mkdirSync('/run/sshd', { recursive: true }); // sshd's privilege-separation directory
  const hostKey = o.hostKey ?? join(dir, 'host');
  if (!o.hostKey) await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey]);
  writeFileSync(join(dir, 'ca.pub'), `${o.caPublicKeyLine}\n`);
  if (!existsSync(o.krlPath)) writeFileSync(o.krlPath, '');
  mkdirSync(join(dir, 'principals'), { recursive: true });
  writeFileSync(join(dir, 'principals', sshUser), `${o.principals.join('\n')}\n`);
  writeFileSync(join(dir, 'sshd_config'), [
    `Port ${port}`, 'ListenAddress 127.0.0.1', `HostKey ${hostKey}`, ...(o.hostCertificate ? [`HostCertificate ${o.hostCertificate}`] : []), `PidFile ${join(dir, 'sshd.pid')}`,
    `TrustedUserCAKeys ${join(dir, 'ca.pub')}`, `AuthorizedPrincipalsFile ${join(dir, 'principals')}/%u`, 'AuthorizedKeysFile none',
    `RevokedKeys ${o.krlPath}`, 'PasswordAuthentication no', 'KbdInteractiveAuthentication no', 'PubkeyAuthentication yes',
    'PermitRootLogin prohibit-password', 'StrictModes no', 'UsePAM no', 'LogLevel VERBOSE', ...(o.extraConfig ?? []), '',
  ].join('\n'));
  const sshd: ChildProcess = spawn(SSHD, ['-D', '-e', '-f', join(dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  sshd.stderr!.on('data', (d) => (log += d));
  // Ready when the port accepts connections.
  const deadline = Date.now() + 60_000; // sshd starts slowly on a loaded machine
  for (;;) {
    const up = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => (s.destroy(), resolve(true)));
      s.on('error', () => resolve(false));
    });
    if (up) break;
    if (Date.now() > deadline || sshd.exitCode !== null) throw new Error(`sshd did not start: ${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { port, stop: () => void sshd.kill('SIGTERM') };
}

/** A fresh Ed25519 key pair in `dir`: the private key path and the public key line. */
export async function userKey(dir: string, name: string): Promise<{ key: string; pub: string }> {
  const key = join(dir, name);
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
  return { key, pub: readFileSync(`${key}.pub`, 'utf8').trim() };
}

/** Runs `echo ok` over ssh with `key`; ssh picks up `<key>-cert.pub` next to it. */
export async function sshLogin(port: number, key: string): Promise<{ ok: boolean; out: string }> {
  try {
    const r = await run(SSH, [
      '-F', '/dev/null', '-p', String(port), '-i', key, '-o', `CertificateFile=${key}-cert.pub`, '-o', 'IdentitiesOnly=yes',
      '-o', 'IdentityAgent=none', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
      '-o', 'ConnectTimeout=5', '-o', 'LogLevel=ERROR', `${sshUser}@127.0.0.1`, 'echo ok',
    ], { timeout: 15_000 });
    return { ok: r.stdout.trim() === 'ok', out: r.stdout + r.stderr };
  } catch (e) {
    return { ok: false, out: String((e as { stderr?: string }).stderr ?? e) };
  }
}
