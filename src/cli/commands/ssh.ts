// `portcullis ssh GATEWAY|TARGET`: OpenSSH through an SSH gateway, logged in as you (the session
// token is the password, handed to ssh through SSH_ASKPASS, never on a command line or typed), and
// `sessions play ID`: an SSH session's recording replayed in the terminal (asciicast v2).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { registerSetupHost } from '../ssh-setup.ts';
import { CliError, EXIT, address, api, sessionToken } from '../client.ts';

interface GatewayView {
  name: string;
  kind: string;
  target: string;
  host: string;
  port: number;
  /** The gateway's host key: pinned, so the first connection is not trust-on-first-use. */
  host_key?: string;
}

/** The ssh gateway named `name`, or the one in front of the ssh target `name`. */
export function pickGateway(gateways: GatewayView[], name: string): GatewayView {
  const ssh = gateways.filter((g) => g.kind === 'ssh');
  const g = ssh.find((x) => x.name === name) ?? ssh.find((x) => x.target === name);
  if (!g) throw new CliError(`no SSH gateway named ${name} or in front of a target ${name} (known: ${ssh.map((x) => `${x.name} → ${x.target}`).join(', ') || 'none'})`, EXIT.usage);
  return g;
}

export function register(program: Command): void {
  const ssh = program
    .command('ssh')
    .description('ssh through an SSH gateway, logged in as you: each channel decided and recorded (ssh arguments after --)')
    .argument('<gateway>', 'the gateway, or the ssh target it fronts')
    .argument('[ssh...]', 'arguments for ssh, e.g. -- uptime, or -- -L 8080:localhost:80')
    .option('-l, --login <user>', 'the account on the host (default: $USER)')
    .option('--ssh <path>', 'the ssh to run', 'ssh')
    .action(async (name: string, sshArgs: string[], o: { login?: string; ssh: string }) => {
      const token = sessionToken();
      const { gateways } = (await api((c) => c.GET('/v1/gateways'))) as { gateways: GatewayView[] };
      const g = pickGateway(gateways, name);
      const host = g.host === '0.0.0.0' || g.host === '::' ? new URL(address()).hostname : g.host;
      const login = o.login ?? process.env.USER ?? 'root';
      // The token reaches ssh only through its askpass helper's environment.
      const dir = mkdtempSync(join(tmpdir(), 'portcullis-ssh-'));
      const askpass = join(dir, 'askpass');
      writeFileSync(askpass, '#!/bin/sh\nprintf "%s\\n" "$PORTCULLIS_SSH_SECRET"\n', { mode: 0o700 });
      const pin: string[] = [];
      if (g.host_key !== undefined) {
        const knownHosts = join(dir, 'known_hosts');
        writeFileSync(knownHosts, `${g.port === 22 ? host : `[${host}]:${g.port}`} ${g.host_key}\n`, { mode: 0o600 });
        pin.push('-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'GlobalKnownHostsFile=/dev/null', '-o', 'StrictHostKeyChecking=yes');
      }
      const args = [...pin, '-o', 'PreferredAuthentications=password', '-o', 'PubkeyAuthentication=no', '-o', 'NumberOfPasswordPrompts=1', '-p', String(g.port), '-l', login, host, ...sshArgs];
      const child = spawn(o.ssh, args, {
        stdio: 'inherit',
        env: { ...process.env, SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force', DISPLAY: process.env.DISPLAY ?? 'portcullis', PORTCULLIS_SSH_SECRET: token },
      });
      try {
        process.exitCode = await new Promise<number>((resolve, reject) => {
          child.once('error', (err) => reject(new CliError(`cannot run ${o.ssh}: ${err.message}`, EXIT.unavailable)));
          child.once('exit', (c) => resolve(c ?? 1));
        });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  // `portcullis ssh setup-host`: matched before the <gateway> argument (a subcommand name wins).
  registerSetupHost(ssh);
}

type CastEvent = [number, string, string];

/** The asciicast v2 file of one pty channel of a session's records (NDJSON as the API sends them). */
export function castOf(ndjson: string, channel?: number): { header: Record<string, unknown>; events: CastEvent[] } {
  const records = ndjson.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as { type: string; payload: Record<string, unknown> });
  const start = records.find((r) => r.type === 'ssh.channel' && r.payload.cast !== undefined && (channel === undefined || r.payload.channel === channel));
  if (!start) throw new CliError(`no interactive SSH channel${channel !== undefined ? ` ${channel}` : ''} in this session's recording`, EXIT.usage);
  const events: CastEvent[] = [];
  for (const r of records) {
    if (r.type === 'ssh.output' && r.payload.channel === start.payload.channel && Array.isArray(r.payload.events)) events.push(...(r.payload.events as CastEvent[]));
  }
  return { header: start.payload.cast as Record<string, unknown>, events };
}

/** `sessions play ID`: wire it into the `sessions` command group. */
export function registerPlay(sessions: Command): void {
  sessions
    .command('play <id>')
    .description('replay an SSH session recording in the terminal (asciicast v2; session.read)')
    .option('--channel <n>', 'which interactive channel (default: the first)')
    .option('--speed <factor>', 'playback speed', '1')
    .option('--idle-limit <seconds>', 'longest pause kept', '2')
    .option('--cast', 'print the asciicast v2 file instead of playing it')
    .action(async (id: string, o: { channel?: string; speed: string; idleLimit: string; cast?: boolean }) => {
      const ndjson = (await api((c) => c.GET('/v1/sessions/{id}/recording', { params: { path: { id } }, parseAs: 'text' }))) as string;
      const { header, events } = castOf(ndjson, o.channel !== undefined ? Number(o.channel) : undefined);
      if (o.cast) {
        process.stdout.write(`${[header, ...events].map((e) => JSON.stringify(e)).join('\n')}\n`);
        return;
      }
      const speed = Number(o.speed) > 0 ? Number(o.speed) : 1;
      const idle = Number(o.idleLimit) >= 0 ? Number(o.idleLimit) : 2;
      let last = 0;
      for (const [t, kind, data] of events) {
        const wait = Math.min(Math.max(0, t - last), idle) / speed;
        last = t;
        if (wait > 0) await new Promise((r) => setTimeout(r, wait * 1000));
        if (kind === 'o') process.stdout.write(data);
      }
    });
}
