// The upstream side of an SSH gateway session: a 0700 workspace holding a fresh Ed25519 key, the
// Portcullis certificate issued for it and the target's pinned known_hosts; each channel is one
// OpenSSH client subprocess (see docs/gateways.md, "SSH gateway", for why not ssh2's Client).
import { spawn, execFile } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface UpstreamTarget {
  /** Target name: the HostKeyAlias the pinned keys are filed under. */
  name: string;
  host: string;
  port: number;
  /** Pinned host public keys (`ssh-ed25519 AAAA…`); never learned on first use. */
  hostKeys: string[];
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}
function str(s: string | Buffer): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s) : s;
  return Buffer.concat([u32(b.length), b]);
}

/** A fresh Ed25519 key: OpenSSH private key file text (unencrypted) and the public key line. */
export function freshKey(): { privateKey: string; publicKey: string } {
  const { privateKey } = generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' });
  const pub = Buffer.from(jwk.x!, 'base64url');
  const seed = Buffer.from(jwk.d!, 'base64url');
  const pubBlob = Buffer.concat([str('ssh-ed25519'), str(pub)]);
  const check = randomBytes(4);
  let priv = Buffer.concat([check, check, str('ssh-ed25519'), str(pub), str(Buffer.concat([seed, pub])), str('portcullis-gateway')]);
  const pad: number[] = [];
  for (let i = 1; (priv.length + pad.length) % 8 !== 0; i++) pad.push(i);
  priv = Buffer.concat([priv, Buffer.from(pad)]);
  const body = Buffer.concat([Buffer.from('openssh-key-v1\0'), str('none'), str('none'), str(''), u32(1), str(pubBlob), str(priv)]);
  const b64 = body.toString('base64').replace(/(.{70})/g, '$1\n').replace(/\n$/, '');
  seed.fill(0);
  return {
    privateKey: `-----BEGIN OPENSSH PRIVATE KEY-----\n${b64}\n-----END OPENSSH PRIVATE KEY-----\n`,
    publicKey: `ssh-ed25519 ${pubBlob.toString('base64')}`,
  };
}

/** Per-channel choices for the upstream ssh. */
export interface UpstreamOptions {
  /** Agent forwarding allowed: the socket (in the workspace) the upstream ssh forwards agent connections to. */
  agent?: string | undefined;
}

export interface ShellSpec {
  term: string;
  cols: number;
  rows: number;
}

/** The OpenSSH side of one gateway session. `workspace()` writes the files; `close()` removes them. */
export class Upstream {
  readonly target: UpstreamTarget;
  readonly login: string;
  readonly #ssh: string;
  #dir = '';
  #children = new Set<ChildProcessWithoutNullStreams>();

  constructor(target: UpstreamTarget, login: string, opts: { ssh?: string } = {}) {
    this.target = target;
    this.login = login;
    this.#ssh = opts.ssh ?? 'ssh';
  }

  /** Creates the workspace (0700) and a fresh key; returns the public key line to certify. */
  async workspace(): Promise<{ publicKey: string; privateKey: string }> {
    this.#dir = await mkdtemp(join(tmpdir(), 'pcx-gw-ssh-'));
    const k = freshKey();
    await writeFile(join(this.#dir, 'id'), k.privateKey, { mode: 0o600 });
    const known = this.target.hostKeys.map((k) => `${this.target.name} ${k.trim().split(/\s+/).slice(0, 2).join(' ')}\n`).join('');
    await writeFile(join(this.#dir, 'known_hosts'), known, { mode: 0o600 });
    return k;
  }

  /** Installs the certificate the broker issued for the key. */
  async certify(certificateLine: string): Promise<void> {
    await writeFile(join(this.#dir, 'id-cert.pub'), `${certificateLine.trim()}\n`, { mode: 0o600 });
  }

  #args(extra: string[], o: { forwards?: boolean } & UpstreamOptions = {}): string[] {
    const d = this.#dir;
    return [
      '-F', '/dev/null', '-i', join(d, 'id'), '-o', `CertificateFile=${join(d, 'id-cert.pub')}`,
      '-o', 'IdentitiesOnly=yes', '-o', `IdentityAgent=${o.agent ?? 'none'}`, '-o', 'BatchMode=yes', '-o', 'PasswordAuthentication=no',
      '-o', 'KbdInteractiveAuthentication=no', '-o', 'StrictHostKeyChecking=yes', '-o', `UserKnownHostsFile=${join(d, 'known_hosts')}`,
      '-o', 'GlobalKnownHostsFile=/dev/null', '-o', 'UpdateHostKeys=no', '-o', `HostKeyAlias=${this.target.name}`,
      '-o', `ForwardAgent=${o.agent ?? 'no'}`, '-o', 'ForwardX11=no', '-o', `ClearAllForwardings=${o.forwards ? 'no' : 'yes'}`, '-o', 'ControlMaster=no', '-o', 'ControlPath=none',
      '-o', 'ConnectTimeout=10', '-o', 'ServerAliveInterval=15', '-o', 'LogLevel=ERROR', '-o', 'EscapeChar=none',
      '-p', String(this.target.port), '-l', this.login, ...extra, this.target.host,
    ];
  }

  #spawn(cmd: string, args: string[], term = 'dumb', o: UpstreamOptions = {}): ChildProcessWithoutNullStreams {
    // A minimal environment: nothing of the gateway's own (tokens, keys) reaches the subprocess.
    // With agent forwarding, IdentityAgent and SSH_AUTH_SOCK name the relay too: OpenSSH forwards
    // only an agent it reaches (IdentityAgent=none would unset it). IdentitiesOnly keeps the
    // client's keys out of the upstream authentication (the agent is only asked for its list).
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C.UTF-8', TERM: term, ...(o.agent !== undefined && { SSH_AUTH_SOCK: o.agent }) };
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env });
    this.#children.add(child);
    child.on('close', () => this.#children.delete(child));
    child.on('error', () => this.#children.delete(child));
    // A client that stops reading must not crash the gateway with EPIPE.
    child.stdin.on('error', () => {});
    return child;
  }

  /** `exec`: the command runs as given (one argument, so ssh sends it unchanged). */
  exec(command: string, o: UpstreamOptions = {}): ChildProcessWithoutNullStreams {
    return this.#spawn(this.#ssh, [...this.#args(['-T'], o), '--', command], 'dumb', o);
  }

  /** `subsystem` (sftp). */
  subsystem(name: string): ChildProcessWithoutNullStreams {
    return this.#spawn(this.#ssh, [...this.#args(['-T', '-s']), '--', name]);
  }

  /** Local port forwarding: a stdio bridge to host:port as the upstream sees it (`ssh -W`). */
  forward(host: string, port: number): ChildProcessWithoutNullStreams {
    return this.#spawn(this.#ssh, this.#args(['-N', '-W', `${host}:${port}`]));
  }

  /** A path inside the session's 0700 workspace (for relay sockets). */
  path(name: string): string {
    return join(this.#dir, name);
  }

  /** Remote forwarding: the upstream listens on host:port and sends connections to a local Unix socket. */
  remoteForward(host: string, port: number, socketPath: string): ChildProcessWithoutNullStreams {
    const bind = host === '' || host === '*' ? '' : `${host.includes(':') ? `[${host}]` : host}:`;
    return this.#spawn(this.#ssh, this.#args(['-N', '-o', 'ExitOnForwardFailure=yes', '-R', `${bind}${port}:${socketPath}`], { forwards: true }));
  }

  /**
   * Interactive shell (or `exec` with a pty) under script(1): the OpenSSH client gets a local pty
   * whose size the gateway controls; the first output line is that pty's name (for resize).
   */
  shell(spec: ShellSpec, command?: string, o: UpstreamOptions = {}): { child: ChildProcessWithoutNullStreams; resize(cols: number, rows: number): void; ready: Promise<void> } {
    // ssh sends its own TERM in the pty request.
    const sshArgs = this.#args(['-tt'], o);
    const quoted = [this.#ssh, ...sshArgs, ...(command !== undefined ? ['--', command] : [])].map(shq).join(' ');
    const inner = `tty; stty sane rows ${dim(spec.rows)} cols ${dim(spec.cols)}; exec ${quoted}`;
    const child = this.#spawn('script', ['-q', '-e', '-f', '-c', inner, '/dev/null'], safeTerm(spec.term), o);
    let pts = '';
    let resolveReady!: () => void;
    const ready = new Promise<void>((r) => (resolveReady = r));
    // Strip the tty line from the output; everything after it belongs to the session.
    const out = child.stdout;
    let head = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      head = Buffer.concat([head, d]);
      const nl = head.indexOf(10);
      if (nl < 0) {
        if (head.length > 256) finish(head);
        return;
      }
      pts = head.subarray(0, nl).toString().replace(/\r$/, '');
      if (!/^\/dev\/pts\/\d+$/.test(pts)) pts = '';
      finish(head.subarray(nl + 1));
    };
    const finish = (rest: Buffer) => {
      out.off('data', onData);
      out.pause();
      resolveReady();
      if (rest.length) out.unshift(rest);
    };
    out.on('data', onData);
    out.on('end', () => resolveReady());
    const resize = (cols: number, rows: number) => {
      if (!pts) return;
      execFile('stty', ['-F', pts, 'rows', String(dim(rows)), 'cols', String(dim(cols))], () => {});
    };
    return { child, resize, ready };
  }

  /** Ends every channel's subprocess and removes the key, certificate and known_hosts. */
  async close(): Promise<void> {
    for (const c of this.#children) c.kill('SIGTERM');
    if (this.#dir) await rm(this.#dir, { recursive: true, force: true });
    this.#dir = '';
  }
}

function dim(n: number): number {
  return Number.isInteger(n) && n > 0 && n < 10_000 ? n : n === 0 ? 0 : 80;
}

/** TERM values are names (xterm-256color …); anything else becomes a safe default. */
function safeTerm(t: string): string {
  return /^[A-Za-z0-9._+-]{1,64}$/.test(t) ? t : 'xterm';
}

/** POSIX shell single-quoting (script(1) runs its command through the shell). */
function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
