// The SSH gateway: an ssh2 Server that admits Portcullis user certificates (cert.ts), decides
// `ssh.login` and then every channel with Cedar, reaches the target through OpenSSH with a fresh
// certificate leased for this session (upstream.ts), records everything (recorder.ts) and ends the
// session when what it hangs on is revoked.
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, createServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { isAbsolute, join } from 'node:path';
import ssh2 from 'ssh2';
import type { AuthContext, Connection, ServerChannel, Session } from 'ssh2';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { AuthenticationFailed } from '../../common/errors.ts';
import type { CedarValue } from '../../policy/engine/types.ts';
import type { GatewayHost, GatewayPrincipal } from '../host.ts';
import type { Gateway, GatewayDeps } from '../plugin.ts';
import { SessionRecorder, newSessionId } from '../sessions.ts';
import { CertificateRefused, ED25519_CERT, certificateLine, sourceAllowed, verifyPossession, verifyUserCertificate } from './cert.ts';
import type { SshGatewayConfig } from './config.ts';
import { CastRecorder } from './recorder.ts';
import { Upstream } from './upstream.ts';
import { SftpWatcher, scpTransfer } from './files.ts';

const MAX_AUTH_ATTEMPTS = 8;
const MAX_CHANNELS = 16;
const MAX_COMMAND = 16 * 1024;
/** ssh2's own channel window and packet size (lib/Channel.js), for the channels the gateway opens itself. */
const CHANNEL_WINDOW = 2 * 1024 * 1024;
const CHANNEL_PACKET = 32 * 1024;

/** What the OpenSSH client said when it failed (its own diagnostics: no secret is ever in them), short. */
function upstreamError(stderr: string): string {
  if (/host key|HOST IDENTIFICATION/i.test(stderr)) return 'host key verification failed';
  const line = stderr.split(/\r?\n/).map((l) => l.trim()).find((l) => l !== '' && !l.startsWith('@')) ?? '';
  return line.replace(/[^\x20-\x7e]/g, '?').slice(0, 200);
}

/** `address:port` of one end of a TCP connection (IPv4-mapped addresses as IPv4). */
function endpoint(address: string | undefined, port: number | undefined): string {
  return `${String(address).replace(/^::ffff:/, '')}:${String(port)}`;
}

/** The SSH user name is the account on the host. */
const LOGIN_RE = /^[A-Za-z0-9._-][A-Za-z0-9._@-]{0,63}$/;

interface Admitted {
  id: string;
  who: GatewayPrincipal;
  login: string;
  upstreamLease: string;
  upstream: Upstream;
  rec: SessionRecorder;
}

/** One live client connection. */
class GatewayConnection {
  readonly #gw: SshGateway;
  readonly #client: Connection;
  readonly #address: string;
  /** For a connection that came through a jump channel (`ssh -J`): the session it came through. */
  readonly #via: string | undefined;
  #attempts = 0;
  #admitted: Admitted | undefined;
  #admitting: Promise<void> | undefined;
  #unregister: (() => void) | undefined;
  #channels = 0;
  #open = new Set<{ end(reason?: string): void }>();
  /** One per upstream command: settles once its exit is recorded (so session.end comes after it). */
  #exits = new Set<Promise<void>>();
  #ended = false;
  #terminated = false;
  #endReason = 'client closed';
  #deadline: NodeJS.Timeout;

  constructor(gw: SshGateway, client: Connection, address: string, via?: string) {
    this.#gw = gw;
    this.#client = client;
    this.#address = address;
    this.#via = via;
    this.#deadline = setTimeout(() => this.#drop('authentication timeout'), gw.cfg.auth_timeout_ms);
    client.on('error', () => this.#drop('protocol error'));
    client.on('close', () => {
      this.finished = this.#finish().catch((e: Error) => gw.log(`ssh gateway ${gw.name}: ending a session failed: ${e.message}`));
    });
    client.on('authentication', (ctx) => void this.#authenticate(ctx).catch((e: Error) => {
      gw.log(`ssh gateway ${gw.name}: authentication error: ${e.name}`);
      this.#reject(ctx);
    }));
    client.on('ready', () => this.#ready());
  }

  #drop(reason: string): void {
    if (!this.#terminated) this.#endReason = reason;
    try {
      this.#client.end();
    } catch {
      /* already gone */
    }
  }

  #reject(ctx: AuthContext): void {
    try {
      ctx.reject(['publickey', 'password']);
    } catch {
      /* connection gone */
    }
  }

  async #authenticate(ctx: AuthContext): Promise<void> {
    if (++this.#attempts > MAX_AUTH_ATTEMPTS) return this.#drop('too many authentication attempts');
    if (this.#admitted || this.#admitting || this.#ended) return this.#reject(ctx);
    if (!LOGIN_RE.test(ctx.username)) return this.#reject(ctx);
    const host = this.#gw.host;
    if (ctx.method === 'password') {
      // A Portcullis session token or API key typed as the password (`portcullis ssh` passes it through SSH_ASKPASS).
      return this.#admitWith(ctx, () => host.authenticate({ type: 'secret', secret: ctx.password }, this.#address));
    }
    if (ctx.method !== 'publickey' || ctx.key.algo !== ED25519_CERT) return this.#reject(ctx);
    let line: string;
    try {
      // Our own strict checks first (structure, type, validity, critical options); the broker checks CA and lease.
      const cert = verifyUserCertificate(ctx.key.data, undefined, Math.floor(Date.now() / 1000));
      const src = cert.criticalOptions['source-address'];
      if (src !== undefined && !sourceAllowed(src, this.#address)) throw new CertificateRefused('source_address', 'source address not allowed by the certificate');
      // Query phase: the certificate is acceptable in form; the client signs next.
      if (!ctx.signature || !ctx.blob) return ctx.accept();
      if (!verifyPossession(cert, ctx.blob, ctx.signature)) throw new CertificateRefused('no_proof_of_possession', 'the client did not prove it holds the certificate key');
      line = certificateLine(ctx.key.data);
    } catch (e) {
      if (!(e instanceof CertificateRefused)) throw e;
      // A signed attempt is audited before it is answered (a query for a key that will not do is
      // not audited: clients try many).
      if (ctx.signature) await host.refused('ssh-certificate', e.reason, e.message, this.#address).catch(() => {});
      return this.#reject(ctx);
    }
    return this.#admitWith(ctx, () => host.authenticate({ type: 'ssh-certificate', certificate: line }, this.#address));
  }

  async #admitWith(ctx: AuthContext, prove: () => Promise<GatewayPrincipal>): Promise<void> {
    let who: GatewayPrincipal;
    try {
      who = await prove();
    } catch (e) {
      if (e instanceof AuthenticationFailed) return this.#reject(ctx);
      throw e;
    }
    const done = this.#admit(ctx, who, ctx.username);
    this.#admitting = done;
    try {
      await done;
    } finally {
      this.#admitting = undefined;
    }
  }

  /** Login: `ssh.login` decided, the upstream certificate leased for this session, `session.start` recorded, registered. */
  async #admit(ctx: AuthContext, who: GatewayPrincipal, login: string): Promise<void> {
    const gw = this.#gw;
    const host = gw.host;
    const cfg = gw.cfg;
    const id = newSessionId();
    const d = await host.decide(who, { action: 'ssh.login', resource: { type: 'Host', id: cfg.target }, context: { gateway: cfg.name, session: id, ssh: { login, channel: 'login' } } });
    await d.recorded;
    if (d.decision !== 'allow') return this.#reject(ctx);
    const upstream = new Upstream({ name: cfg.target, host: cfg.upstream.host, port: cfg.upstream.port, hostKeys: cfg.host_keys }, login);
    let leaseId: string | undefined;
    try {
      const key = await upstream.workspace();
      const lease = await host.issueLease(who, {
        target: cfg.target, reason: `ssh gateway ${cfg.name} session ${id}`, fields: { public_key: key.publicKey },
        ...(cfg.lease_ttl_ms !== undefined && { ttlMs: cfg.lease_ttl_ms }),
      });
      leaseId = lease.id;
      if (typeof lease.credential.certificate !== 'string') throw new Error('the ssh target issued no certificate');
      await upstream.certify(lease.credential.certificate);
      const rec = new SessionRecorder((e) => host.record(e), { session: id, actor: who.identityId, boundary: who.boundary });
      this.#admitted = { id, who, login, upstreamLease: lease.id, upstream, rec };
      await rec.record('session.start', {
        gateway: cfg.name, kind: 'ssh', target: cfg.target, lease: lease.id, identity: who.identityId, login, source_ip: this.#address,
        authn: { method: who.method, trust: who.trust }, decision_id: d.decision_id, ...(who.proofLeaseId !== undefined && { proof_lease: who.proofLeaseId }),
        ...(lease.grantId !== undefined && { grant: lease.grantId }), lease_expires_at: new Date(lease.expiresAt).toISOString(),
        ...(this.#via !== undefined && { via: this.#via }),
      }, 'allow');
      this.#unregister = host.sessions.register({
        id, gateway: cfg.name, kind: 'ssh', target: cfg.target, sourceIp: this.#address, hangs: host.hangsOf(who),
        terminate: (reason) => this.terminate(reason),
      });
      host.sessions.hangOn(id, { leaseId: lease.id, ...(lease.grantId !== undefined && { grantId: lease.grantId }) });
      // The lease's TTL bounds the session.
      const ttl = lease.expiresAt - Date.now();
      this.#leaseTimer = setTimeout(() => this.terminate('the upstream lease expired'), Math.max(0, Math.min(ttl, 2 ** 31 - 1)));
    } catch (e) {
      gw.log(`ssh gateway ${gw.name}: session ${id} did not start: ${(e as Error).name}: ${(e as Error).message.split('\n')[0]}`);
      const rec = this.#admitted?.rec;
      this.#admitted = undefined;
      this.#unregister?.();
      this.#unregister = undefined;
      await upstream.close();
      if (leaseId) await host.revokeLease(leaseId, 'the gateway session did not start').catch(() => {});
      if (rec) await rec.end({ reason: 'did not start' }).catch(() => {});
      return this.#reject(ctx);
    }
    clearTimeout(this.#deadline);
    if (this.#ended) return;
    ctx.accept();
  }

  #leaseTimer: NodeJS.Timeout | undefined;
  /** Settles once the connection closed and its session was wound up (lease revoked, session.end written). */
  finished: Promise<void> | undefined;

  /** Ends the session (revocation, terminate, shutdown): a message on every channel, then the connection. */
  terminate(reason: string): void {
    if (this.#ended || this.#terminated) return;
    this.#terminated = true;
    this.#endReason = reason;
    for (const ch of this.#open) {
      try {
        ch.end(reason);
      } catch {
        /* gone */
      }
    }
    // The client leaves once its channels are closed; a client that does not is cut off shortly after.
    setTimeout(() => this.#drop(reason), this.#open.size > 0 ? 200 : 0).unref();
  }

  async #finish(): Promise<void> {
    if (this.#ended) return;
    this.#ended = true;
    clearTimeout(this.#deadline);
    clearTimeout(this.#leaseTimer);
    this.#gw.connections.delete(this);
    // A login still being admitted finishes first, so its lease and registration are undone below.
    await this.#admitting?.catch(() => {});
    this.#unregister?.();
    const a = this.#admitted;
    if (!a) return;
    for (const h of this.#open) h.end(); // upstream processes, relay sockets, jump channels
    // The commands just stopped record their exits first (bounded: a process that will not die
    // does not keep the session open), so session.end is the session's last record.
    await Promise.race([Promise.all(this.#exits), sleep(2000, undefined, { ref: false })]);
    await a.upstream.close();
    await this.#gw.host.revokeLease(a.upstreamLease, `gateway session ${a.id} ended`).catch(() => {});
    await a.rec.settled();
    await a.rec.end({ reason: this.#endReason, channels: this.#channels });
  }

  /** Records; a record that cannot be written ends the session (fail closed). */
  #record(type: string, payload: Record<string, unknown>, decision?: 'allow' | 'deny'): Promise<void> {
    return this.#admitted!.rec.record(type, payload, decision).then(
      () => undefined,
      (e: Error) => {
        this.terminate('the recording could not be written');
        throw e;
      },
    );
  }

  #ready(): void {
    const a = this.#admitted;
    if (!a) return this.#drop('not admitted');
    let sessions = 0;
    this.#client.on('session', (accept, reject) => {
      // Session channels that never ask for anything cost no process, but are still bounded.
      if (++sessions > MAX_CHANNELS) return reject();
      this.#session(accept());
    });
    this.#client.on('tcpip', (accept, reject, info) => void this.#directTcpip(accept, reject, info).catch(() => reject()));
    this.#client.on('request', (accept, reject, name, info) => void this.#globalRequest(accept, reject, name, info).catch(() => reject?.()));
    this.#client.on('openssh.streamlocal', (_accept, reject) => reject());
  }

  /** One channel decided (`context.ssh` = what it asks) and recorded; false unless allowed and recorded. */
  async #decide(channel: number, kind: string, action: string, asks: Record<string, CedarValue>, recordAlso: Record<string, unknown> = {}): Promise<boolean> {
    const a = this.#admitted!;
    if (this.#ended || this.#terminated) return false;
    let allowed = false;
    let decisionId = '';
    try {
      const d = await this.#gw.host.decide(a.who, {
        action, resource: { type: 'Host', id: this.#gw.cfg.target },
        context: { gateway: this.#gw.cfg.name, session: a.id, ssh: { login: a.login, channel: kind, ...asks } },
      });
      await d.recorded;
      allowed = d.decision === 'allow';
      decisionId = d.decision_id;
    } catch (e) {
      this.#gw.log(`ssh gateway ${this.#gw.name}: ${action} could not be decided: ${(e as Error).name}`); // fail closed
    }
    await this.#record('ssh.channel', { channel, kind, action, ...asks, ...recordAlso, allowed, decision_id: decisionId }, allowed ? 'allow' : 'deny');
    return allowed && !this.#ended && !this.#terminated;
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
    // ssh2 expects a session request to be answered at once: data the client sends after its
    // request and before the (asynchronous) decision is dropped, and a client EOF in between makes
    // ssh2 refuse the late answer. While a request is being decided, a stand-in channel holds that
    // data (and the window accounting, shared with the real channel), and the EOF is remembered.
    const raw = session as unknown as { _channel?: unknown; _ending: boolean; _chanInfo: { incoming: unknown; outgoing: unknown } };
    const early: Buffer[] = [];
    let clientEof = false;
    let clientClosed = false;
    // The connection closing meanwhile closes the stand-in as a channel (ssh2's ChannelManager
    // cleanup: stderr, emit('close')) — without them that threw out of ssh2's socket handler.
    const standIn = {
      incoming: raw._chanInfo.incoming, outgoing: raw._chanInfo.outgoing, readable: false, server: true, _waitWindow: false, _callbacks: [],
      stderr: { writable: false },
      push: (d: Buffer | null) => {
        if (d) early.push(Buffer.from(d));
        return true;
      },
      emit: (event: string) => {
        if (event === 'close') clientClosed = true;
        return true;
      },
    };
    const hold = () => {
      if (raw._channel === undefined) raw._channel = standIn;
    };
    const release = () => {
      if (raw._channel === standIn) raw._channel = undefined;
      if (clientEof && !clientClosed) raw._ending = false;
    };
    session.on('eof', () => (clientEof = true));
    // Runs before ssh2 looks at the session's channel on CHANNEL_CLOSE: the stand-in is never closed.
    session.on('close', () => {
      clientClosed = true;
      if (raw._channel === standIn) raw._channel = undefined;
    });
    const acceptLate = (accept: () => ServerChannel): { ch: ServerChannel; eof: boolean } | undefined => {
      release();
      if (clientClosed || this.#ended || this.#terminated) return undefined;
      const ch = accept() as ServerChannel | undefined;
      if (!ch) return undefined;
      for (const d of early.splice(0)) ch.push(d);
      // The EOF that came early ends the input after that data (ssh2 did not deliver it: no channel yet).
      if (clientEof) ch.push(null);
      return { ch, eof: clientEof };
    };
    const rejectLate = (reject: () => void): void => {
      release();
      if (!clientClosed) reject();
    };
    session.on('pty', (accept, _reject, info) => {
      pty = { term: String(info.term ?? 'xterm').slice(0, 64), cols: termSize(info.cols, 80), rows: termSize(info.rows, 24) };
      accept?.();
    });
    session.on('window-change', (accept, _reject, info) => {
      const cols = termSize(info.cols, pty?.cols ?? 80);
      const rows = termSize(info.rows, pty?.rows ?? 24);
      if (pty) pty = { ...pty, cols, rows };
      cast?.resize(cols, rows);
      resize?.(cols, rows);
      accept?.();
    });
    session.on('env', (_accept, reject) => reject?.());
    session.on('x11', (_accept, reject) => reject?.());
    session.on('signal', (accept) => accept?.());
    // Agent forwarding is off unless a policy allows it (`ssh.agent_forward`, decided per session
    // channel). Allowed: the upstream ssh forwards agent connections to a socket in the workspace,
    // and each one is relayed to the client's agent as an auth-agent channel. The shell or command
    // of this channel waits for the decision (OpenSSH asks without waiting for a reply).
    let agent: Promise<string | undefined> = Promise.resolve(undefined);
    let agentAsked = false;
    session.on('auth-agent', (accept, reject) => {
      const n = agentAsked ? undefined : this.#nextChannel();
      agentAsked = true;
      if (n === undefined) return reject?.();
      agent = this.#decide(n, 'agent', 'ssh.agent_forward', {}).then(async (ok) => {
        if (!ok) return void reject?.();
        const path = await this.#agentRelay(n);
        accept?.();
        return path;
      }).catch(() => void reject?.());
    });
    const once = <T extends unknown[]>(fn: (...a: T) => Promise<void>) => (...args: T) => {
      if (started) return void (args[1] as (() => void) | undefined)?.();
      started = true;
      hold();
      void fn(...args).catch((e: Error) => {
        this.#gw.log(`ssh gateway ${this.#gw.name}: channel failed: ${e.name}: ${e.message.split('\n')[0]}`);
        this.terminate('internal error');
      });
    };
    session.on('shell', once(async (accept: () => ServerChannel, reject: () => void) => {
      const n = this.#nextChannel();
      if (n === undefined) return rejectLate(reject);
      const p = pty ?? { term: 'dumb', cols: 80, rows: 24 };
      const header = pty ? CastRecorder.header(p.cols, p.rows, p.term, Date.now()) : undefined;
      if (!(await this.#decide(n, 'shell', 'ssh.shell', { pty: pty !== undefined }, header ? { cast: header } : {}))) return rejectLate(reject);
      const up = { agent: await agent };
      const got = acceptLate(accept);
      if (!got) return;
      const a = this.#admitted!;
      if (pty) {
        const sh = a.upstream.shell(p, undefined, up);
        resize = sh.resize;
        cast = new CastRecorder(this.#admitted!.rec, n, { recordInput: this.#gw.cfg.record_input, start: performance.now() });
        this.#bridge(n, got, sh.child, { cast, ready: sh.ready, interactive: true });
      } else {
        // A shell without a pty is a command stream: the login shell reading the client's input.
        this.#bridge(n, got, a.upstream.exec('', up), { interactive: false });
      }
    }));
    session.on('exec', once(async (accept: () => ServerChannel, reject: () => void, info: { command: string }) => {
      const n = this.#nextChannel();
      if (n === undefined) return rejectLate(reject);
      const command = String(info.command);
      if (command.length > MAX_COMMAND || command.includes('\0')) return rejectLate(reject);
      const header = pty ? CastRecorder.header(pty.cols, pty.rows, pty.term, Date.now()) : undefined;
      if (!(await this.#decide(n, 'exec', 'ssh.exec', { command, pty: pty !== undefined }, header ? { cast: header } : {}))) return rejectLate(reject);
      await this.#record('ssh.exec', { channel: n, command });
      const scp = scpTransfer(command);
      if (scp) await this.#record('ssh.file', { channel: n, protocol: 'scp', ...scp });
      const up = { agent: await agent };
      const got = acceptLate(accept);
      if (!got) return;
      const a = this.#admitted!;
      if (pty) {
        const sh = a.upstream.shell(pty, command, up);
        resize = sh.resize;
        cast = new CastRecorder(this.#admitted!.rec, n, { recordInput: this.#gw.cfg.record_input, start: performance.now() });
        this.#bridge(n, got, sh.child, { cast, ready: sh.ready, interactive: true });
      } else {
        this.#bridge(n, got, a.upstream.exec(command, up), { interactive: false });
      }
    }));
    session.on('subsystem', once(async (accept: () => ServerChannel, reject: () => void, info: { name: string }) => {
      const n = this.#nextChannel();
      if (n === undefined) return rejectLate(reject);
      const name = String(info.name).slice(0, 64);
      if (!(await this.#decide(n, 'subsystem', 'ssh.subsystem', { subsystem: name }))) return rejectLate(reject);
      const got = acceptLate(accept);
      if (!got) return;
      const child = this.#admitted!.upstream.subsystem(name);
      const watch = name === 'sftp' ? new SftpWatcher((e) => void this.#record('ssh.file', { channel: n, protocol: 'sftp', ...e }).catch(() => {})) : undefined;
      this.#bridge(n, got, child, { interactive: false, ...(watch ? { onInput: (d: Buffer) => watch.push(d) } : {}) });
    }));
  }

  /** Pipes a channel to an OpenSSH subprocess; records output (interactive) and the exit code. */
  #bridge(n: number, { ch }: { ch: ServerChannel; eof: boolean }, child: ChildProcessWithoutNullStreams, o: { interactive: boolean; cast?: CastRecorder; ready?: Promise<void>; onInput?: (d: Buffer) => void }): void {
    const handle = {
      /** Tells the client why (resolves once the message is handed to the connection), stops the upstream. */
      end: (reason?: string) => {
        child.kill('SIGTERM');
        if (reason === undefined) return;
        // Closed the way a finished command closes (message, exit status, EOF, close): the client
        // prints what it got before it exits. A disconnect right away could cut its output short.
        try {
          ch.stderr.write(`\r\nportcullis: session ended: ${reason}\r\n`);
          ch.exit(255);
          ch.end();
        } catch {
          /* the channel is gone already */
        }
      },
    };
    this.#open.add(handle);
    let exited: () => void = () => {};
    const exit = new Promise<void>((r) => (exited = r));
    this.#exits.add(exit);
    let inBytes = 0;
    let outBytes = 0;
    // Interactive input waits until the remote has answered (ssh has put its local pty in raw mode).
    // (The first output counts only once `ready`: before it, the local pty's own line is read.)
    let gate: Promise<void> = o.ready ?? Promise.resolve();
    let opened: () => void = () => {};
    if (o.interactive) {
      const first = new Promise<void>((r) => (opened = r));
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
        opened();
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
        await this.#record('ssh.exit', {
          channel: n, exit_code: code, ...(signal ? { signal } : {}), bytes_in: inBytes, bytes_out: outBytes,
          ...(code === 255 && errTail.trim() !== '' ? { upstream_error: upstreamError(errTail) } : {}),
        }).catch(() => {});
        try {
          if (code !== null) ch.exit(code);
          else ch.exit(signal ?? 'TERM', false, '');
          ch.end();
        } catch {
          /* channel already gone */
        }
      })().finally(() => {
        this.#exits.delete(exit);
        exited();
      });
    });
  }

  async #directTcpip(accept: () => ServerChannel, reject: () => void, info: { destIP: string; destPort: number; srcIP: string; srcPort: number }): Promise<void> {
    const n = this.#nextChannel();
    if (n === undefined) return reject();
    const host = String(info.destIP).slice(0, 255);
    const port = Number(info.destPort);
    if (!/^[A-Za-z0-9.:_-]+$/.test(host) || !(port > 0 && port < 65536)) return reject();
    const cfg = this.#gw.cfg;
    if ((host === cfg.target && (port === 22 || port === cfg.upstream.port)) || (host === cfg.upstream.host && port === cfg.upstream.port)) {
      // `ssh -J gateway target`: the channel to the target lands on this gateway again, as a session
      // of its own (authenticated, decided, recorded like `ssh -p`); never an unrecorded pipe to
      // the host's sshd. One hop: a jumped session cannot jump again.
      if (this.#via !== undefined) return reject();
      await this.#record('ssh.jump', { channel: n, host, port });
      const ch = accept();
      if (!ch) return;
      const handle = { end: () => ch.close() };
      this.#open.add(handle);
      ch.on('close', () => this.#open.delete(handle));
      this.#gw.jump(ch, this.#address, this.#admitted!.id);
      return;
    }
    if (!(await this.#decide(n, 'direct-tcpip', 'ssh.forward_local', { host, port }))) return reject();
    const ch = accept();
    if (!ch) return;
    this.#bridge(n, { ch, eof: false }, this.#admitted!.upstream.forward(host, port), { interactive: false });
  }

  /**
   * A Unix socket in the session's 0700 workspace whose every connection is piped to a channel
   * `open` opens to the client; `lazy`: only once the connection sends something (then `onUse`).
   */
  async #relay(path: string, open: (cb: (err: Error | undefined, ch: Duplex) => void) => void, o: { lazy?: boolean; onUse?: () => void } = {}): Promise<{ close(): void }> {
    const relay = createServer((conn: Socket) => {
      conn.on('error', () => {});
      const start = () => {
        o.onUse?.();
        open((err, ch) => {
          if (err) return conn.destroy();
          ch.on('error', () => conn.destroy());
          conn.pipe(ch).pipe(conn);
          conn.resume();
        });
      };
      if (!o.lazy) return start();
      conn.once('readable', () => {
        if (conn.readableLength === 0) return void conn.destroy(); // closed without asking anything
        conn.pause();
        start();
      });
    });
    relay.on('error', () => {});
    await new Promise<void>((resolve, reject) => relay.listen(path, () => resolve()).once('error', reject));
    return relay;
  }

  /**
   * The socket the upstream ssh forwards agent connections to (`ForwardAgent=PATH`); each one
   * becomes an `auth-agent@openssh.com` channel to the client (ssh2 has no server-side call for it:
   * the channel is opened as its own `openChannel` does) and an `ssh.agent` record.
   */
  async #agentRelay(n: number): Promise<string> {
    const path = this.#admitted!.upstream.path(`agent-${n}.sock`);
    const c = this.#client as unknown as { _chanMgr: { add(w: unknown): number }; _protocol: { openssh_authAgent(chan: number, window: number, packet: number): void } };
    let uses = 0;
    const relay = await this.#relay(path, (cb) => {
      const wrapper = Object.assign((err: Error | undefined, ch: Duplex) => cb(err, ch), { type: 'auth-agent@openssh.com' });
      const local = c._chanMgr.add(wrapper);
      if (local === -1) return cb(new Error('no free channel'), undefined as unknown as Duplex);
      c._protocol.openssh_authAgent(local, CHANNEL_WINDOW, CHANNEL_PACKET);
    }, { lazy: true, onUse: () => void this.#record('ssh.agent', { channel: n, use: ++uses }).catch(() => {}) });
    this.#open.add({ end: () => relay.close() });
    return path;
  }

  /** Remote forwards relayed, by `host:port` asked for: the upstream `ssh -R` and the gateway's local socket. */
  #remote = new Map<string, { stop(): void }>();

  async #globalRequest(accept: ((port?: number) => void) | undefined, reject: (() => void) | undefined, name: string, info: unknown): Promise<void> {
    const i = info as { bindAddr?: string; bindPort?: number };
    const host = String(i.bindAddr ?? '').slice(0, 255);
    const port = Number(i.bindPort ?? -1);
    if (name === 'cancel-tcpip-forward') {
      const f = this.#remote.get(`${host}:${port}`);
      if (!f) return reject?.();
      f.stop();
      this.#remote.delete(`${host}:${port}`);
      return accept?.();
    }
    if (name !== 'tcpip-forward') return reject?.();
    const n = this.#nextChannel();
    if (n === undefined) return reject?.();
    // A port the upstream must choose (0) cannot be reported back without reading ssh's output: refused.
    const sane = /^[A-Za-z0-9.:_*-]*$/.test(host) && port > 0 && port < 65536 && !this.#remote.has(`${host}:${port}`);
    if (!(await this.#decide(n, 'tcpip-forward', 'ssh.forward_remote', { host, port })) || !sane) return reject?.();
    const a = this.#admitted!;
    // The upstream listens on host:port and sends each connection to a Unix socket in the session's
    // 0700 workspace; the gateway opens a forwarded-tcpip channel to the client for each.
    const socketPath = a.upstream.path(`fwd-${n}.sock`);
    const relay = await this.#relay(socketPath, (cb) => this.#client.forwardOut(host, port, '127.0.0.1', 0, cb));
    const child = a.upstream.remoteForward(host, port, socketPath);
    child.stdout.resume();
    child.stderr.resume();
    const stop = () => {
      child.kill('SIGTERM');
      relay.close();
    };
    this.#remote.set(`${host}:${port}`, { stop });
    this.#open.add({ end: stop });
    child.on('close', (code) => {
      relay.close();
      this.#remote.delete(`${host}:${port}`);
      void this.#record('ssh.exit', { channel: n, exit_code: code }).catch(() => {});
    });
    accept?.(port);
  }
}


/**
 * A terminal dimension from the client, bounded (1..1000; the client's own 0 or junk gets `dflt`):
 * it goes into the recording's header and resize events and to the upstream pty, and a
 * 65535-column recording is one no player can replay.
 */
function termSize(v: unknown, dflt: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) return dflt;
  return Math.min(n, 1000);
}
export class SshGateway implements Gateway {
  readonly name: string;
  readonly kind = 'ssh';
  /** The gateway's public host key line: `GET /v1/gateways` hands it out so `portcullis ssh` pins it. */
  readonly hostKey: string;
  readonly cfg: SshGatewayConfig;
  readonly host: GatewayHost;
  readonly log: (msg: string) => void;
  readonly connections = new Set<GatewayConnection>();
  readonly #server: ssh2.Server;

  constructor(cfg: SshGatewayConfig, deps: GatewayDeps) {
    this.name = cfg.name;
    this.cfg = cfg;
    this.host = deps.host;
    this.log = deps.log;
    const hostKey = readFileSync(isAbsolute(cfg.host_key_file) ? cfg.host_key_file : join(deps.baseDir, cfg.host_key_file));
    const parsed = ssh2.utils.parseKey(hostKey);
    if (parsed instanceof Error || Array.isArray(parsed)) throw new Error(`gateway ${cfg.name}: host_key_file is not a readable unencrypted OpenSSH private key`);
    this.hostKey = `${parsed.type} ${parsed.getPublicSSH().toString('base64')}`;
    this.#server = new ssh2.Server({ hostKeys: [hostKey], ident: 'Portcullis', keepaliveInterval: 15_000, keepaliveCountMax: 3 }, (client, info) => {
      client.on('error', () => {});
      if (this.connections.size >= cfg.max_connections) return client.end();
      // A connection jump() made to this listener (known by its source address and port).
      const jumped = this.#jumps.get(endpoint(info.ip, info.port));
      this.connections.add(new GatewayConnection(this, client, jumped?.address ?? info.ip, jumped?.via));
    });
    this.#server.on('error', (e: Error) => this.log(`ssh gateway ${cfg.name}: ${e.message}`));
  }

  readonly #jumps = new Map<string, { address: string; via: string }>();

  /** Serves an SSH connection arriving through a jump channel of session `via` (`ssh -J`), from the client's address. */
  jump(channel: Duplex, address: string, via: string): void {
    // Over loopback to this gateway's own listener, so the jumped connection is an ordinary socket;
    // the listener knows it by its source port.
    const a = this.#server.address() as AddressInfo;
    const sock = connect(a.port, a.address === '0.0.0.0' ? '127.0.0.1' : a.address === '::' ? '::1' : a.address);
    let key = '';
    sock.once('connect', () => this.#jumps.set((key = endpoint(sock.localAddress, sock.localPort)), { address, via }));
    sock.on('error', () => channel.destroy());
    channel.on('error', () => sock.destroy());
    sock.on('close', () => this.#jumps.delete(key));
    channel.pipe(sock).pipe(channel);
  }

  async start(): Promise<{ host: string; port: number }> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.cfg.listen.port, this.cfg.listen.host, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    const a = this.#server.address() as AddressInfo;
    return { host: a.address, port: a.port };
  }

  /** Stops listening, ends every live session, and waits until each is wound up (the store is still open). */
  async stop(): Promise<void> {
    const live = [...this.connections];
    const closed = new Promise<void>((r) => this.#server.close(() => r()));
    for (const c of live) c.terminate('the gateway is stopping');
    await closed;
    await Promise.all(live.map((c) => c.finished));
  }
}
