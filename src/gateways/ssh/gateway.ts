// The SSH gateway: an ssh2 Server that admits Portcullis user certificates (cert.ts), decides
// `ssh.login` and then every channel with Cedar, reaches the target through OpenSSH with a fresh
// certificate leased for this session (upstream.ts), records everything (recorder.ts) and ends the
// session when what it hangs on is revoked.
import type { AddressInfo } from 'node:net';
import ssh2 from 'ssh2';
import type { AuthContext, Connection, ServerChannel, Session } from 'ssh2';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { CertificateRefused, ED25519_CERT, sourceAllowed, sshPublicKeyBlob, verifyPossession, verifyUserCertificate } from './cert.ts';
import type { UserCertificate } from './cert.ts';
import type { SshGatewayConfig, SshGatewayTarget } from './config.ts';
import type { SshGatewayHost } from './host.ts';
import { CastRecorder, SessionRecorder } from './recorder.ts';
import { Upstream } from './upstream.ts';
import { SftpWatcher, scpTransfer } from './files.ts';

const MAX_AUTH_ATTEMPTS = 8;
const MAX_CHANNELS = 16;
const MAX_COMMAND = 16 * 1024;

/** `login@target` (the SSH user name): which account on which gateway target. */
export function parseUser(user: string): { login: string; target: string } | undefined {
  const at = user.lastIndexOf('@');
  if (at <= 0 || at === user.length - 1 || user.length > 200) return undefined;
  const login = user.slice(0, at);
  const target = user.slice(at + 1);
  if (!/^[A-Za-z0-9._@-]{1,64}$/.test(login) || !/^[a-z0-9][a-z0-9._-]{0,62}$/.test(target)) return undefined;
  return { login, target };
}

interface Admitted {
  id: string;
  identityId: string;
  login: string;
  target: SshGatewayTarget;
  cert: UserCertificate;
  clientLease: string;
  upstreamLease: string;
  upstream: Upstream;
  loginSession: string | null;
  grantId: string | null;
}

/** One live client connection. */
class GatewayConnection {
  readonly #gw: SshGateway;
  readonly #client: Connection;
  readonly #address: string;
  #attempts = 0;
  #admitted: Admitted | undefined;
  #admitting: Promise<void> | undefined;
  #rec: SessionRecorder | undefined;
  #unregister: (() => void) | undefined;
  #channels = 0;
  #open = new Set<{ end(): void }>();
  #ended = false;
  #endReason = 'client closed';
  #deadline: NodeJS.Timeout;

  constructor(gw: SshGateway, client: Connection, address: string) {
    this.#gw = gw;
    this.#client = client;
    this.#address = address;
    this.#deadline = setTimeout(() => this.#drop('login timeout'), gw.cfg.login_timeout_ms);
    client.on('error', () => this.#drop('protocol error'));
    client.on('close', () => void this.#finish());
    client.on('authentication', (ctx) => void this.#authenticate(ctx).catch(() => this.#reject(ctx)));
    client.on('ready', () => this.#ready());
  }

  #drop(reason: string): void {
    this.#endReason = reason;
    try {
      this.#client.end();
    } catch {
      /* already gone */
    }
  }

  #reject(ctx: AuthContext): void {
    try {
      ctx.reject(['publickey']);
    } catch {
      /* connection gone */
    }
  }

  async #refuse(ctx: AuthContext, reason: string, detail: Record<string, unknown>): Promise<void> {
    this.#reject(ctx);
    await this.#gw.host.authnFailure(reason, { gateway: this.#gw.cfg.name, source_ip: this.#address, user: ctx.username.slice(0, 200), ...detail }).catch(() => {});
  }

  async #authenticate(ctx: AuthContext): Promise<void> {
    if (++this.#attempts > MAX_AUTH_ATTEMPTS) return this.#drop('too many authentication attempts');
    if (this.#admitted || this.#admitting) return this.#reject(ctx);
    if (ctx.method !== 'publickey') return this.#reject(ctx);
    if (ctx.key.algo !== ED25519_CERT) return this.#refuse(ctx, 'not_a_certificate', { algo: ctx.key.algo.slice(0, 64) });
    const who = parseUser(ctx.username);
    const target = who && this.#gw.cfg.targets.find((t) => t.name === who.target);
    if (!who || !target) return this.#refuse(ctx, 'unknown_target', {});
    let cert: UserCertificate;
    try {
      cert = verifyUserCertificate(ctx.key.data, this.#gw.caBlob, Math.floor(this.#gw.host.now() / 1000));
      const src = cert.criticalOptions['source-address'];
      if (src !== undefined && !sourceAllowed(src, this.#address)) throw new CertificateRefused('source_address', 'source address not allowed by the certificate');
    } catch (e) {
      if (e instanceof CertificateRefused) return this.#refuse(ctx, e.reason, { detail: e.message });
      throw e;
    }
    // Query phase: the certificate is acceptable; the client signs next.
    if (!ctx.signature || !ctx.blob) return ctx.accept();
    if (!verifyPossession(cert, ctx.blob, ctx.signature)) return this.#refuse(ctx, 'bad_signature', { serial: cert.serial });
    const done = this.#admit(ctx, cert, who.login, target);
    this.#admitting = done;
    try {
      await done;
    } finally {
      this.#admitting = undefined;
    }
  }

  async #admit(ctx: AuthContext, cert: UserCertificate, login: string, target: SshGatewayTarget): Promise<void> {
    const host = this.#gw.host;
    const cfg = this.#gw.cfg;
    const lease = await host.certificateLease(cert.serial);
    if (!lease || !lease.active) return this.#refuse(ctx, 'revoked', { serial: cert.serial });
    if (lease.identityId !== cert.keyId || lease.target !== cfg.client_target) return this.#refuse(ctx, 'wrong_lease', { serial: cert.serial });
    const identityId = lease.identityId;
    const ctxBase = { login, gateway: cfg.name, channel: 'login' };
    const d = await host.decide({ identityId, action: 'ssh.login', resource: { type: 'Host', id: target.name }, context: { ssh: ctxBase, sourceIp: this.#address }, sessionId: lease.sessionId });
    if (!d.allowed) return this.#refuse(ctx, 'denied', { decision_id: d.decisionId, identity: identityId, target: target.name });
    const id = host.newSessionId();
    const upstream = new Upstream({ name: target.name, host: target.host, port: target.port, hostKeys: target.host_keys }, login, { ssh: cfg.ssh_binary });
    let upstreamLease: string | undefined;
    try {
      const key = await upstream.workspace();
      const issued = await host.issueCertificate({
        identityId, target: target.credential_target, publicKey: key.publicKey, ttlMs: cfg.upstream_ttl_ms,
        purpose: `gateway session ${id}`, gatewaySession: id, loginSession: lease.sessionId,
      });
      upstreamLease = issued.leaseId;
      await upstream.certify(issued.certificate);
      this.#admitted = { id, identityId, login, target, cert, clientLease: lease.id, upstreamLease, upstream, loginSession: lease.sessionId, grantId: lease.grantId };
      this.#rec = new SessionRecorder(id, (type, payload) => host.record(type, identityId, payload), () => this.#terminate('recording failed'));
      await this.#rec.record('session.start', {
        gateway: cfg.name, kind: 'ssh', identity: identityId, target: target.name, login, source_ip: this.#address,
        decision_id: d.decisionId, client_lease: lease.id, client_serial: cert.serial, upstream_lease: upstreamLease,
        ...(lease.sessionId ? { login_session: lease.sessionId } : {}), ...(lease.grantId ? { grant: lease.grantId } : {}),
      });
      this.#unregister = host.register({
        id, gateway: cfg.name, target: target.name,
        bindings: { identityId, loginSession: lease.sessionId, leaseIds: [lease.id, upstreamLease], grantId: lease.grantId },
        terminate: (reason) => this.#terminate(reason),
      });
    } catch (e) {
      this.#admitted = undefined;
      await upstream.close();
      if (upstreamLease) await host.revokeLease(upstreamLease, 'gateway session did not start').catch(() => {});
      return this.#refuse(ctx, 'upstream_issuance', { error: (e as Error).name, identity: identityId, target: target.name });
    }
    clearTimeout(this.#deadline);
    if (this.#ended) return;
    ctx.accept();
  }

  terminate(reason: string): void {
    this.#terminate(reason);
  }

  /** Ends the session from outside (revocation, terminate): every channel and the connection. */
  #terminate(reason: string): void {
    if (this.#ended) return;
    this.#endReason = reason;
    for (const ch of this.#open) {
      try {
        ch.end();
      } catch {
        /* gone */
      }
    }
    this.#drop(reason);
  }

  async #finish(): Promise<void> {
    if (this.#ended) return;
    this.#ended = true;
    clearTimeout(this.#deadline);
    // A login still being admitted finishes first, so its lease and registration are undone below.
    await this.#admitting?.catch(() => {});
    this.#gw.connections.delete(this);
    this.#unregister?.();
    const a = this.#admitted;
    if (!a) return;
    await a.upstream.close();
    await this.#gw.host.revokeLease(a.upstreamLease, `gateway session ${a.id} ended`).catch(() => {});
    const rec = this.#rec!;
    await rec.flushed();
    await rec.record('session.end', { reason: this.#endReason, records: rec.count + 1, channels: this.#channels }).catch(() => {});
  }

  #ready(): void {
    const a = this.#admitted;
    if (!a) return this.#drop('not admitted');
    this.#client.on('session', (accept) => this.#session(accept()));
    this.#client.on('tcpip', (accept, reject, info) => void this.#directTcpip(accept, reject, info).catch(() => reject()));
    this.#client.on('request', (accept, reject, name, info) => void this.#globalRequest(reject, name, info).catch(() => reject?.()));
    this.#client.on('openssh.streamlocal', (_accept, reject) => reject());
  }

  async #decide(channel: number, kind: string, action: string, extra: Record<string, unknown>): Promise<boolean> {
    const a = this.#admitted!;
    if (this.#ended) return false;
    let allowed: boolean;
    let decisionId = '';
    try {
      const d = await this.#gw.host.decide({
        identityId: a.identityId, action, resource: { type: 'Host', id: a.target.name },
        context: { ssh: { login: a.login, gateway: this.#gw.cfg.name, channel: kind, ...extra }, sourceIp: this.#address }, sessionId: a.loginSession,
      });
      allowed = d.allowed;
      decisionId = d.decisionId;
    } catch {
      allowed = false; // fail closed
    }
    await this.#rec!.record('ssh.channel', { channel, kind, action, ...extra, allowed, decision_id: decisionId });
    return allowed && !this.#ended;
  }

  #nextChannel(): number | undefined {
    if (this.#channels >= MAX_CHANNELS) return undefined;
    return ++this.#channels;
  }

  #session(session: Session): void {
    let pty: { term: string; cols: number; rows: number } | undefined;
    let resize: ((cols: number, rows: number) => void) | undefined;
    let cast: CastRecorder | undefined;
    let started = false;
    session.on('pty', (accept, _reject, info) => {
      pty = { term: String(info.term ?? 'xterm').slice(0, 64), cols: info.cols, rows: info.rows };
      accept?.();
    });
    session.on('window-change', (accept, _reject, info) => {
      if (pty) pty = { ...pty, cols: info.cols, rows: info.rows };
      cast?.resize(info.cols, info.rows);
      resize?.(info.cols, info.rows);
      accept?.();
    });
    session.on('env', (_accept, reject) => reject?.());
    session.on('x11', (_accept, reject) => reject?.());
    session.on('signal', (accept) => accept?.());
    session.on('auth-agent', (_accept, reject) => {
      // Agent forwarding is off unless a policy allows it; even then the gateway does not relay an agent (not implemented).
      const n = this.#nextChannel();
      if (n === undefined) return reject?.();
      void this.#decide(n, 'agent', 'ssh.agent_forward', {}).finally(() => reject?.());
    });
    const once = <T extends unknown[]>(fn: (...a: T) => Promise<void>) => (...args: T) => {
      if (started) return void (args[1] as (() => void) | undefined)?.();
      started = true;
      void fn(...args).catch(() => {});
    };
    session.on('shell', once(async (accept: () => ServerChannel, reject: () => void) => {
      const n = this.#nextChannel();
      if (n === undefined) return reject();
      const p = pty ?? { term: 'dumb', cols: 80, rows: 24 };
      const header = pty ? CastRecorder.header(p.cols, p.rows, p.term, Date.now()) : undefined;
      if (!(await this.#decide(n, 'shell', 'ssh.shell', { pty: pty !== undefined, ...(header ? { cast: header } : {}) }))) return reject();
      const ch = accept();
      const a = this.#admitted!;
      if (pty) {
        const sh = a.upstream.shell(p);
        resize = sh.resize;
        cast = new CastRecorder(this.#rec!, n, { recordInput: this.#gw.cfg.record_input, start: performance.now() });
        this.#bridge(n, ch, sh.child, { cast, ready: sh.ready, interactive: true });
      } else {
        // A shell without a pty is a command stream: record it as the exec of the login shell.
        this.#bridge(n, ch, a.upstream.exec(''), { interactive: false });
      }
    }));
    session.on('exec', once(async (accept: () => ServerChannel, reject: () => void, info: { command: string }) => {
      const n = this.#nextChannel();
      if (n === undefined) return reject();
      const command = String(info.command);
      if (command.length > MAX_COMMAND || command.includes('\0')) return reject();
      const header = pty ? CastRecorder.header(pty.cols, pty.rows, pty.term, Date.now()) : undefined;
      if (!(await this.#decide(n, 'exec', 'ssh.exec', { command, pty: pty !== undefined, ...(header ? { cast: header } : {}) }))) return reject();
      await this.#rec!.record('ssh.exec', { channel: n, command });
      const scp = scpTransfer(command);
      if (scp) await this.#rec!.record('ssh.file', { channel: n, protocol: 'scp', ...scp });
      const ch = accept();
      const a = this.#admitted!;
      if (pty) {
        const sh = a.upstream.shell(pty, command);
        resize = sh.resize;
        cast = new CastRecorder(this.#rec!, n, { recordInput: this.#gw.cfg.record_input, start: performance.now() });
        this.#bridge(n, ch, sh.child, { cast, ready: sh.ready, interactive: true });
      } else {
        this.#bridge(n, ch, a.upstream.exec(command), { interactive: false });
      }
    }));
    session.on('subsystem', once(async (accept: () => ServerChannel, reject: () => void, info: { name: string }) => {
      const n = this.#nextChannel();
      if (n === undefined) return reject();
      const name = String(info.name).slice(0, 64);
      if (!(await this.#decide(n, 'subsystem', 'ssh.subsystem', { subsystem: name }))) return reject();
      const ch = accept();
      const child = this.#admitted!.upstream.subsystem(name);
      const watch = name === 'sftp' ? new SftpWatcher((e) => void this.#rec!.record('ssh.file', { channel: n, protocol: 'sftp', ...e }).catch(() => {})) : undefined;
      this.#bridge(n, ch, child, { interactive: false, ...(watch ? { onInput: (d: Buffer) => watch.push(d) } : {}) });
    }));
  }

  /** Pipes a channel to an OpenSSH subprocess; records output (interactive) and the exit code. */
  #bridge(n: number, ch: ServerChannel, child: ChildProcessWithoutNullStreams, o: { interactive: boolean; cast?: CastRecorder; ready?: Promise<void>; onInput?: (d: Buffer) => void }): void {
    const handle = { end: () => child.kill('SIGTERM') };
    this.#open.add(handle);
    let inBytes = 0;
    let outBytes = 0;
    // Interactive input waits until the remote has answered (ssh has put its local pty in raw mode).
    let gate: Promise<void> = o.ready ?? Promise.resolve();
    if (o.interactive) {
      let opened!: () => void;
      const first = new Promise<void>((r) => (opened = r));
      child.stdout.once('data', () => opened());
      child.once('close', () => opened());
      gate = Promise.race([first, new Promise<void>((r) => setTimeout(r, 5000).unref())]);
    }
    ch.on('data', (d: Buffer) => {
      inBytes += d.length;
      o.cast?.input(d);
      o.onInput?.(d);
      void gate.then(() => child.stdin.writable && child.stdin.write(d));
    });
    ch.on('end', () => void gate.then(() => child.stdin.end()));
    ch.on('close', () => child.kill('SIGTERM'));
    ch.on('error', () => child.kill('SIGTERM'));
    const start = () => {
      child.stdout.on('data', (d: Buffer) => {
        outBytes += d.length;
        o.cast?.output(d);
        ch.write(d);
      });
      child.stdout.resume();
    };
    if (o.ready) void o.ready.then(start);
    else start();
    let errTail = '';
    child.stderr.on('data', (d: Buffer) => {
      // ssh's own diagnostics (host key mismatch, refused) go to the client's stderr; not recorded verbatim.
      errTail = (errTail + d.toString('utf8')).slice(-2000);
      ch.stderr.write(d);
    });
    child.on('error', () => ch.close());
    child.on('close', (code, signal) => {
      this.#open.delete(handle);
      void (async () => {
        await o.cast?.end().catch(() => {});
        await this.#rec!.record('ssh.exit', {
          channel: n, exit_code: code, ...(signal ? { signal } : {}), bytes_in: inBytes, bytes_out: outBytes,
          ...(code === 255 && /host key|HOST IDENTIFICATION/i.test(errTail) ? { upstream_error: 'host key verification failed' } : {}),
        }).catch(() => {});
        try {
          if (code !== null) ch.exit(code);
          else ch.exit(signal ?? 'TERM', false, '');
          ch.end();
        } catch {
          /* channel already gone */
        }
      })();
    });
  }

  async #directTcpip(accept: () => ServerChannel, reject: () => void, info: { destIP: string; destPort: number; srcIP: string; srcPort: number }): Promise<void> {
    const n = this.#nextChannel();
    if (n === undefined) return reject();
    const host = String(info.destIP).slice(0, 255);
    const port = Number(info.destPort);
    if (!/^[A-Za-z0-9.:_-]+$/.test(host) || !(port > 0 && port < 65536)) return reject();
    if (!(await this.#decide(n, 'direct-tcpip', 'ssh.forward_local', { host, port }))) return reject();
    const ch = accept();
    this.#bridge(n, ch, this.#admitted!.upstream.forward(host, port), { interactive: false });
  }

  async #globalRequest(reject: (() => void) | undefined, name: string, info: unknown): Promise<void> {
    if (name !== 'tcpip-forward') return reject?.();
    const n = this.#nextChannel();
    if (n === undefined) return reject?.();
    const i = info as { bindAddr?: string; bindPort?: number };
    // Decided and recorded; remote forwarding through the gateway is not relayed (see docs/gateways-ssh.md).
    await this.#decide(n, 'tcpip-forward', 'ssh.forward_remote', { host: String(i.bindAddr ?? '').slice(0, 255), port: Number(i.bindPort ?? 0) });
    reject?.();
  }
}

export class SshGateway {
  readonly cfg: SshGatewayConfig;
  readonly host: SshGatewayHost;
  readonly caBlob: Buffer;
  readonly connections = new Set<GatewayConnection>();
  readonly #server: ssh2.Server;

  constructor(cfg: SshGatewayConfig, host: SshGatewayHost, hostKey: string | Buffer) {
    this.cfg = cfg;
    this.host = host;
    this.caBlob = sshPublicKeyBlob(host.userCaPublicKey());
    this.#server = new ssh2.Server({ hostKeys: [hostKey], ident: 'Portcullis', keepaliveInterval: 15_000, keepaliveCountMax: 3 }, (client, info) => {
      if (this.connections.size >= cfg.max_connections) {
        client.on('error', () => {});
        return client.end();
      }
      this.connections.add(new GatewayConnection(this, client, info.ip));
    });
    this.#server.on('error', () => {});
  }

  async listen(): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.cfg.listen.port, this.cfg.listen.host, () => resolve());
    });
    return this.#server.address() as AddressInfo;
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((r) => this.#server.close(() => r()));
    for (const c of this.connections) c.terminate('gateway stopped');
    await closed;
  }
}
