// One client connection to the PostgreSQL gateway, from the first byte to the last: startup
// (TLS, cancel requests), authentication with a Portcullis proof, admission (`db.connect`), the
// upstream opened with a just-in-time lease, then every statement parsed, decided and recorded —
// its CommandComplete held until its record is durable — and the end: client gone, revocation,
// or shutdown, each with its `session.end` record and the lease revoked.
import type { Socket } from 'node:net';
import { TLSSocket, type SecureContext } from 'node:tls';
import { randomInt } from 'node:crypto';
import { AuthenticationFailed } from '../../common/errors.ts';
import type { Entity } from '../../policy/engine/types.ts';
import type { GatewayHost, GatewayPrincipal, GatewayProof } from '../host.ts';
import { SessionRecorder, newSessionId } from '../sessions.ts';
import { analyze, type Analysis, type Check, type StatementPlan } from './analyze.ts';
import type { PostgresGatewayConfig } from './config.ts';
import { connectUpstream, type Upstream } from './upstream.ts';
import {
  CANCEL_REQUEST, Framer, GSSENC_REQUEST, PROTOCOL_3_0, ProtocolViolation, Reader, SSL_REQUEST, authenticationCleartext, authenticationOk,
  backendKeyData, errorFields, errorResponse, parameterStatus, parseMessage, queryMessage, readyForQuery, type Frame,
} from './wire.ts';

/**
 * What a denied statement becomes upstream: a statement that fails during parse analysis with
 * no effect, so the server itself aborts the client's transaction (or implicit transaction) and
 * skips to the next Sync exactly as for any failed statement; its error is replaced by ours.
 */
const DENY_SQL = "SELECT 'portcullis: statement denied'::pg_catalog.int4";

/** What the gateway shares with each of its sessions. */
export interface GatewayContext {
  config: PostgresGatewayConfig;
  host: GatewayHost;
  log: (msg: string) => void;
  /** TLS toward clients, when the gateway has a certificate. */
  tls?: SecureContext;
  /** The gateway's cancel keys → the upstream's (per replica). */
  cancels: Map<string, { host: string; port: number; pid: number; key: number }>;
  forwardCancel(to: { host: string; port: number; pid: number; key: number }): void;
  /** Live sessions of this gateway (to end them at stop), and the ends still being recorded. */
  live: Set<PgSession>;
  ending: Set<Promise<void>>;
}

interface Decided {
  allowed: boolean;
  decisions: { action: string; resource: string; decision: 'allow' | 'deny'; decision_id: string }[];
  /** The first denying decision (the one the client is told about). */
  denied?: { action: string; resource: string; decision_id: string };
  /** Settles when every authz record is durable (once `record` was called, for deferred ones). */
  recorded: Promise<unknown>;
  /** Appends the authz records if they were deferred (once) and returns `recorded`. */
  record: () => Promise<unknown>;
  /** Why, when there was no decision to make (unparsable). */
  refusal?: string;
  /** The policy version that decided (a prepared statement is decided again under a newer one). */
  version?: number;
}

/** A statement on its way: what was decided, what happened. */
interface Run {
  plan: StatementPlan | undefined;
  decided: Decided;
  protocol: 'simple' | 'extended';
  text: string;
  started: number;
  rows: number;
  results?: string[][];
  /**
   * Opened at the statement's first result message: everything from there on waits for it, and it
   * settles with the statement's record (or, for a result too large to hold, with its decisions).
   */
  gate?: PromiseWithResolvers<unknown>;
  early?: boolean;
}

type Expect =
  | { k: 'parse'; denied?: Run }
  | { k: 'bind' }
  | { k: 'describe' }
  | { k: 'close' }
  | { k: 'sync' }
  | { k: 'execute'; run: Run | undefined }
  | { k: 'query'; runs: Run[]; i: number; deniedAt?: number; fastpath?: boolean };

const RESULTS_MAX_ROWS = 200;
const INBOX_HIGH = 256;
const HELD_HIGH = 4096;
/**
 * A result held beyond this many bytes before its statement completes is let go once the
 * statement's decisions are durable (its CommandComplete still waits for its record).
 */
const HOLD_BYTES = 256 * 1024;

export class PgSession {
  readonly #g: GatewayContext;
  #socket: Socket;
  readonly #peer: string;
  #framer: Framer;
  #phase: 'startup' | 'auth' | 'admitting' | 'ready' | 'closed' = 'startup';
  #tls = false;
  #params: Record<string, string> = {};
  #purpose: { reason?: string; ticket?: string } = {};
  #authTimer: NodeJS.Timeout | undefined;
  // After admission
  #id = '';
  #who: GatewayPrincipal | undefined;
  #leaseId: string | undefined;
  #grantId: string | undefined;
  #up: Upstream | undefined;
  #upFramer = new Framer({ startup: false, maxMessage: 1 << 30 });
  #rec: SessionRecorder | undefined;
  #unregister: (() => void) | undefined;
  #cancelKey: string | undefined;
  #startedAt = 0;
  #statements = 0;
  // Statement flow
  readonly #inbox: Frame[] = [];
  #pumping = false;
  readonly #expect: Expect[] = [];
  /** Protocol-level prepared statements and portals (name → what was decided at Parse). */
  readonly #prepared = new Map<string, Run>();
  readonly #portals = new Map<string, Run | undefined>();
  /** SQL-level PREPAREd statements (name → plan of what they run). */
  readonly #sqlPrepared = new Map<string, StatementPlan>();
  #copyIn = false;
  // Output held behind records not yet durable
  readonly #held: (Buffer | Promise<unknown>)[] = [];
  #heldBytes = 0;
  #blocked = false;
  /** Decisions whose authz records are deferred and not appended yet (appended at the end whatever happens). */
  readonly #deferred = new Set<Decided>();
  #ending: Promise<void> | undefined;
  #leaseRevoked = false;
  /** Set while a statement is upstream whose records will follow (`host.expectRecord`): other sessions' commits wait briefly for them. */
  #announced: (() => void) | undefined;

  constructor(socket: Socket, g: GatewayContext) {
    this.#g = g;
    this.#socket = socket;
    this.#peer = socket.remoteAddress ?? 'unknown';
    this.#framer = new Framer({ startup: true, maxMessage: g.config.max_message_bytes });
    g.live.add(this);
    socket.setNoDelay(true);
    this.#listen(socket);
    this.#armAuthTimer();
  }

  /**
   * The client has auth_timeout to send its startup and proof. Once the proof is in, the time is
   * ours (admission: decision, lease, upstream), bounded by the upstream's own timeouts, not the client's.
   */
  #armAuthTimer(): void {
    clearTimeout(this.#authTimer);
    this.#authTimer = setTimeout(() => this.#fatal('08006', 'authentication timed out'), this.#g.config.auth_timeout_ms);
    this.#authTimer.unref();
  }

  get id(): string {
    return this.#id;
  }

  #closed(): boolean {
    return this.#phase === 'closed';
  }

  #listen(s: Socket): void {
    s.on('data', (d: Buffer) => this.#onData(d));
    s.on('error', () => void this.end('client connection error'));
    s.on('close', () => void this.end('client closed the connection'));
  }

  #onData(d: Buffer): void {
    if (this.#closed()) return;
    try {
      this.#framer.push(d);
      for (let f = this.#framer.next(); f; f = this.#closed() ? undefined : this.#framer.next()) {
        if (this.#phase === 'startup') {
          if (this.#startup(f)) return; // the socket changed (TLS) or the connection ended
        } else if (this.#phase === 'auth') {
          this.#password(f);
        } else if (this.#phase === 'admitting') {
          // A client that talks before it was told it may: a protocol violation.
          throw new ProtocolViolation('message before authentication completed');
        } else {
          this.#inbox.push(f);
        }
      }
      if (this.#phase === 'ready') {
        if (this.#inbox.length > INBOX_HIGH) this.#socket.pause();
        void this.#pump();
      }
    } catch (err) {
      if (err instanceof ProtocolViolation) this.#fatal(err.sqlstate, err.message);
      else this.#fatal('XX000', 'internal error in the gateway');
    }
  }

  // ── Startup ─────────────────────────────────────────────────────────────────────────────────

  /** Handles one startup packet; true when the caller must stop reading from the old socket. */
  #startup(f: Frame): boolean {
    const r = new Reader(f.bytes, 4);
    const code = r.int32();
    if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
      if (f.bytes.length !== 8) throw new ProtocolViolation('malformed encryption request');
      // Bytes after the request but before the handshake would be read as if they came
      // through TLS (CVE-2021-23214): refused.
      if (this.#framer.pending > 0) throw new ProtocolViolation('received unencrypted data after SSL request');
      if (code === GSSENC_REQUEST || !this.#g.tls || this.#tls) {
        this.#socket.write('N');
        return false;
      }
      this.#socket.write('S');
      this.#upgrade();
      return true;
    }
    if (code === CANCEL_REQUEST) {
      if (f.bytes.length !== 16) throw new ProtocolViolation('malformed cancel request');
      const pid = r.int32();
      const key = r.int32();
      const to = this.#g.cancels.get(`${pid}:${key}`);
      if (to) this.#g.forwardCancel(to);
      this.#close();
      return true;
    }
    if (code !== PROTOCOL_3_0) throw new ProtocolViolation(`unsupported frontend protocol ${code >>> 16}.${code & 0xffff}: the gateway speaks 3.0`, '0A000');
    if (this.#g.tls && !this.#tls) {
      this.#fatal('28000', 'this gateway accepts TLS connections only (use sslmode=require or verify-full)');
      return true;
    }
    const params: Record<string, string> = {};
    let n = 0;
    for (;;) {
      const k = r.cstring();
      if (k === '') break;
      if (++n > 64) throw new ProtocolViolation('too many startup parameters');
      params[k] = r.cstring();
    }
    if (!r.done) throw new ProtocolViolation('trailing bytes after the startup parameters');
    if (!params.user) throw new ProtocolViolation('no PostgreSQL user name specified in startup packet', '28000');
    if (params.replication !== undefined && params.replication !== 'false' && params.replication !== '0') {
      this.#fatal('42501', 'replication connections are not allowed through the gateway');
      return true;
    }
    if (params.options !== undefined) {
      const purpose = parseOptions(params.options);
      if (purpose === undefined) {
        this.#fatal('42501', 'the gateway passes no server options; only -c portcullis.reason=… and -c portcullis.ticket=… are read');
        return true;
      }
      this.#purpose = purpose;
    }
    this.#params = params;
    this.#framer.startup = false;
    // A client certificate presented over TLS (an X.509-SVID) is the proof; else the password is.
    const chain = this.#tls ? peerChain(this.#socket as TLSSocket) : undefined;
    if (chain) {
      this.#phase = 'admitting';
      clearTimeout(this.#authTimer);
      void this.#admit({ type: 'x509', chain });
      return false;
    }
    this.#phase = 'auth';
    this.#socket.write(authenticationCleartext());
    return false;
  }

  #upgrade(): void {
    const plain = this.#socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    plain.removeAllListeners('error');
    plain.on('error', () => {});
    // A client certificate is asked for, not required; the spiffe trusts judge it (not OpenSSL).
    const secure = new TLSSocket(plain, { isServer: true, secureContext: this.#g.tls!, requestCert: true, rejectUnauthorized: false });
    this.#tls = true;
    this.#socket = secure;
    this.#framer = new Framer({ startup: true, maxMessage: this.#g.config.max_message_bytes });
    this.#listen(secure);
  }

  #password(f: Frame): void {
    if (f.type !== 0x70) throw new ProtocolViolation(`expected a password message, got '${String.fromCharCode(f.type)}'`, '28000');
    const r = new Reader(f.bytes, 5);
    const secret = r.cstring();
    this.#phase = 'admitting';
    clearTimeout(this.#authTimer);
    void this.#admit({ type: 'secret', secret });
  }

  // ── Admission ───────────────────────────────────────────────────────────────────────────────

  async #admit(proof: GatewayProof): Promise<void> {
    const { host, config } = this.#g;
    const user = this.#params.user ?? '';
    let who: GatewayPrincipal;
    try {
      who = await host.authenticate(proof, this.#peer);
    } catch (err) {
      if (err instanceof AuthenticationFailed && proof.type === 'x509' && !this.#closed()) {
        // A certificate that is no Portcullis-accepted SVID (refusal audited): the password may still prove.
        this.#phase = 'auth';
        this.#armAuthTimer();
        this.#socket.write(authenticationCleartext());
        return;
      }
      if (err instanceof AuthenticationFailed) return this.#fatal('28P01', `password authentication failed for user "${user}"`);
      return this.#fatal('08006', 'the gateway could not check the password now');
    }
    if (this.#closed()) return;
    this.#who = who;
    this.#id = newSessionId();
    const db = { type: 'Database', id: config.target };
    let leaseReady = false;
    try {
      const d = await host.decide(who, { action: 'db.connect', resource: db, context: { gateway: config.name, session: this.#id }, purpose: this.#purpose });
      await d.recorded;
      if (d.decision !== 'allow') return this.#fatal('42501', `permission denied by Portcullis: db.connect on Database::"${config.target}" (decision ${d.decision_id})`);
      if (this.#closed()) return;
      const lease = await host.issueLease(who, {
        target: config.target,
        ...(config.permission !== undefined && { permission: config.permission }),
        reason: this.#purpose.reason ?? `PostgreSQL gateway ${config.name}, session ${this.#id}`,
        ...(config.lease_ttl_ms !== undefined && { ttlMs: config.lease_ttl_ms }),
      });
      this.#leaseId = lease.id;
      this.#grantId = lease.grantId;
      leaseReady = true;
      if (this.#closed()) return this.#late();
      // Registered before the upstream opens: a revocation meanwhile ends it too.
      this.#unregister = host.sessions.register({
        id: this.#id,
        gateway: config.name,
        kind: 'postgres',
        target: config.target,
        sourceIp: this.#peer,
        hangs: { ...host.hangsOf(who), leaseIds: [...host.hangsOf(who).leaseIds, lease.id], grantIds: lease.grantId !== undefined ? [lease.grantId] : [] },
        terminate: (reason) => this.terminate(reason),
      });
      const c = lease.credential;
      this.#up = await connectUpstream(
        { host: String(c.host), port: Number(c.port), database: String(c.database), user: String(c.user), password: String(c.password) },
        { searchPath: config.search_path, applicationName: `portcullis/${config.name}`, timeoutMs: 10_000 },
      );
      if (this.#closed()) return this.#late();
      this.#rec = new SessionRecorder((e) => host.record(e), { session: this.#id, actor: who.identityId, boundary: who.boundary });
      this.#startedAt = Date.now();
      await this.#rec.record('session.start', {
        gateway: config.name,
        kind: 'postgres',
        target: config.target,
        lease: lease.id,
        ...(lease.grantId !== undefined && { grant: lease.grantId }),
        decision_id: d.decision_id,
        authn: { method: who.method, trust: who.trust },
        client: { address: this.#peer, tls: this.#tls, user, database: this.#params.database ?? null, application_name: this.#params.application_name ?? null, parameters: Object.keys(this.#params).sort() },
        purpose: this.#purpose,
        search_path: config.search_path,
      });
    } catch (err) {
      if (this.#closed()) return this.#late();
      const msg = (err as Error).message ?? 'error';
      if (!leaseReady) return this.#fatal('42501', `no upstream credential for this session: ${msg}`);
      return void this.end(`the upstream connection failed: ${msg}`, { code: '08006', message: `could not open the upstream connection: ${msg}` });
    }
    if (this.#closed()) return;
    clearTimeout(this.#authTimer);
    // Our own cancel key: the upstream's is never shown to the client.
    const pid = randomInt(1, 0x7fffffff);
    const key = randomInt(-0x80000000, 0x7fffffff);
    this.#cancelKey = `${pid}:${key}`;
    this.#g.cancels.set(this.#cancelKey, { host: String(this.#up.socket.remoteAddress), port: Number(this.#up.socket.remotePort), pid: this.#up.pid, key: this.#up.key });
    const out = [authenticationOk()];
    for (const [k, v] of this.#up.parameters) out.push(parameterStatus(k, v));
    out.push(backendKeyData(pid, key), readyForQuery('I'));
    this.#socket.write(Buffer.concat(out));
    const up = this.#up.socket;
    up.on('data', (d: Buffer) => this.#onUpstream(d));
    up.on('close', () => void this.end('the upstream server closed the connection', { code: '08006', message: 'the upstream server closed the connection' }));
    up.on('drain', () => this.#socket.resume());
    this.#socket.on('drain', () => up.resume());
    this.#phase = 'ready';
    void this.#pump();
  }

  /**
   * The session was ended (client gone, auth timeout, revocation) while admission was still
   * getting its lease or upstream: what `end` could not see yet is let go here.
   */
  async #late(): Promise<void> {
    this.#unregister?.();
    this.#up?.socket.destroy();
    await this.#ending;
    if (this.#leaseId !== undefined && !this.#leaseRevoked) {
      this.#leaseRevoked = true;
      await this.#g.host.revokeLease(this.#leaseId, `gateway session ${this.#id} ended during admission`).catch((err: unknown) => this.#g.log(`gateway ${this.#g.config.name}: revoking lease ${this.#leaseId}: ${(err as Error).message}`));
    }
  }

  // ── Client messages ─────────────────────────────────────────────────────────────────────────

  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    // What one run of the pump forwards leaves in one write (Bind, Describe, Execute, Sync: one
    // packet, so the server answers them in one too, and nobody is woken up for a part of it).
    const up = this.#up?.socket;
    up?.cork();
    try {
      while (this.#inbox.length > 0 && this.#phase === 'ready') {
        const f = this.#inbox.shift()!;
        await this.#message(f);
        if (this.#inbox.length < INBOX_HIGH / 2 && this.#socket.isPaused()) this.#socket.resume();
      }
    } catch (err) {
      if (err instanceof ProtocolViolation) this.#fatal(err.sqlstate, err.message);
      else void this.end(`gateway error: ${(err as Error).message}`, { code: 'XX000', message: 'internal error in the gateway; the session ends' });
    } finally {
      this.#pumping = false;
      up?.uncork();
    }
  }

  /** Within the pump, which corks the upstream socket while it runs. */
  #toUpstream(b: Buffer): void {
    if (!this.#up!.socket.write(b)) this.#socket.pause();
  }

  async #message(f: Frame): Promise<void> {
    const t = String.fromCharCode(f.type);
    if (this.#copyIn && t !== 'd' && t !== 'c' && t !== 'f' && t !== 'H' && t !== 'S') throw new ProtocolViolation(`unexpected message '${t}' during COPY from stdin`);
    switch (t) {
      case 'Q':
        return this.#query(f);
      case 'P':
        return this.#parse(f);
      case 'B': {
        const r = new Reader(f.bytes, 5);
        const portal = r.cstring();
        const stmt = r.cstring();
        this.#portals.set(portal, this.#prepared.get(stmt));
        this.#expect.push({ k: 'bind' });
        return this.#toUpstream(f.bytes);
      }
      case 'E':
        return this.#execute(f);
      case 'D':
        new Reader(f.bytes, 5).byte();
        this.#expect.push({ k: 'describe' });
        return this.#toUpstream(f.bytes);
      case 'C': {
        const r = new Reader(f.bytes, 5);
        const what = r.byte();
        const name = r.cstring();
        if (what === 0x53) this.#prepared.delete(name);
        else this.#portals.delete(name);
        this.#expect.push({ k: 'close' });
        return this.#toUpstream(f.bytes);
      }
      case 'S':
        this.#expect.push({ k: 'sync' });
        return this.#toUpstream(f.bytes);
      case 'H':
        return this.#toUpstream(f.bytes);
      case 'd':
      case 'c':
      case 'f':
        if (!this.#copyIn) return; // PostgreSQL ignores copy messages outside COPY too
        if (t !== 'd') this.#copyIn = false;
        return this.#toUpstream(f.bytes);
      case 'F':
        return this.#fastpath(f);
      case 'X':
        return void this.end('the client ended the session');
      default:
        throw new ProtocolViolation(`invalid frontend message type ${f.type}`);
    }
  }

  /** Decides every check of a plan; every decision is audited, the first deny is the one reported. */
  async #decide(plan: StatementPlan | undefined, refusal?: string, defer = false): Promise<Decided> {
    if (!plan) return { allowed: false, decisions: [], recorded: Promise.resolve(), record: () => Promise.resolve(), refusal: refusal ?? 'the statement could not be parsed' };
    let checks = plan.checks;
    if (plan.executes !== undefined) {
      const target = this.#sqlPrepared.get(plan.executes);
      checks = target ? [...target.checks, ...checks] : [{ action: 'db.admin', resource: { type: 'Database', id: '' } }, ...checks];
    }
    const { host, config } = this.#g;
    const statement = { kind: plan.kind, tables: plan.tables, functions: plan.functions, fingerprint: plan.fingerprint };
    const ds = await Promise.all(
      checks.map(async (c) => {
        const resource = { type: c.resource.type, id: c.resource.type === 'Database' ? config.target : c.resource.id };
        const d = await host.decide(this.#who!, { action: c.action, resource, context: { gateway: config.name, session: this.#id, statement }, purpose: this.#purpose, entities: this.#entities(c), deferRecord: defer });
        return { c, resource, d };
      }),
    );
    const decisions = ds.map(({ c, resource, d }) => ({ action: c.action, resource: `${resource.type}::${JSON.stringify(resource.id)}`, decision: d.decision, decision_id: d.decision_id }));
    const denied = decisions.find((d) => d.decision !== 'allow');
    const recorded = Promise.all(ds.map((x) => x.d.recorded));
    recorded.catch(() => {}); // awaited where it matters (fail closed), never an unhandled rejection
    const out: Decided = {
      allowed: ds.length > 0 && denied === undefined,
      decisions,
      ...(denied && { denied }),
      ...(ds.length === 0 && { refusal: 'nothing to decide' }),
      ...(ds.length > 0 && { version: ds[0]!.d.policy_version }),
      recorded,
      record: () => recorded,
    };
    if (defer && ds.length > 0) {
      this.#deferred.add(out);
      out.record = () => {
        if (this.#deferred.delete(out)) for (const x of ds) void x.d.record();
        return recorded;
      };
    }
    return out;
  }

  /**
   * Makes the decisions of statements that are about to run durable first (statements with an
   * effect never run upstream before their decisions are recorded). False: they could not be
   * recorded, the session ends and nothing runs.
   */
  async #durable(runs: readonly Run[]): Promise<boolean> {
    try {
      await Promise.all(runs.map((r) => r.decided.record()));
      return true;
    } catch {
      this.#unrecorded();
      return false;
    }
  }

  /** The Table or Function entity of a check: a child of the Database, in its boundary (declared facts win). */
  #entities(c: Check): Entity[] | undefined {
    if (c.resource.type === 'Database') return undefined;
    const { host, config } = this.#g;
    const declared = host.resource({ type: c.resource.type, id: c.resource.id });
    if (declared) return undefined; // the engine has it, with its declared parents
    const db = host.resource({ type: 'Database', id: config.target });
    const attrs: Record<string, string> = db ? { boundary: db.boundary, environment: db.environment } : {};
    return [{ uid: { type: c.resource.type, id: c.resource.id }, attrs, parents: [{ type: 'Database', id: config.target }] }];
  }

  async #query(f: Frame): Promise<void> {
    const r = new Reader(f.bytes, 5);
    const sql = r.cstring();
    if (!r.done) throw new ProtocolViolation('bytes after the query string');
    const a: Analysis = analyze(sql, this.#g.config.search_path);
    if ('error' in a) {
      const run = this.#run(undefined, await this.#decide(undefined, `the statement could not be parsed: ${a.error}`), 'simple', sql);
      this.#expect.push({ k: 'query', runs: [run], i: 0, deniedAt: 0 });
      this.#announce();
      return this.#toUpstream(queryMessage(DENY_SQL));
    }
    const runs: Run[] = [];
    let deniedAt: number | undefined;
    for (const plan of a.statements) {
      // The authz records go with the statement's own record (one group commit)…
      const d = await this.#decide(plan, undefined, true);
      runs.push(this.#run(plan, d, 'simple', sql));
      if (!d.allowed) {
        deniedAt = runs.length - 1;
        break; // nothing after a failing statement runs: not decided, as PostgreSQL would not run it
      }
      this.#sqlLevel(plan);
    }
    // …unless a statement that runs can leave an effect: then they are durable before it runs.
    if (runs.some((x, i) => i !== deniedAt && x.plan?.effects) && !(await this.#durable(runs))) return;
    this.#announce();
    if (deniedAt === undefined) {
      this.#expect.push({ k: 'query', runs, i: 0 });
      return this.#toUpstream(f.bytes);
    }
    // The allowed statements before the denied one run; the denied one fails upstream.
    const prefix = deniedAt === 0 ? '' : Buffer.from(sql, 'utf8').toString('utf8', 0, runs[deniedAt - 1]!.plan!.end) + ';\n';
    this.#expect.push({ k: 'query', runs, i: 0, deniedAt });
    this.#toUpstream(queryMessage(prefix + DENY_SQL));
  }

  /** SQL-level PREPARE / DEALLOCATE bookkeeping of an allowed statement. */
  #sqlLevel(plan: StatementPlan): void {
    if (plan.prepares) this.#sqlPrepared.set(plan.prepares.name, plan.prepares.plan);
    if (plan.deallocates === '*') this.#sqlPrepared.clear();
    else if (plan.deallocates !== undefined) this.#sqlPrepared.delete(plan.deallocates);
  }

  async #parse(f: Frame): Promise<void> {
    const r = new Reader(f.bytes, 5);
    const name = r.cstring();
    const sql = r.cstring();
    const a = analyze(sql, this.#g.config.search_path);
    let run: Run;
    if ('error' in a) run = this.#run(undefined, await this.#decide(undefined, `the statement could not be parsed: ${a.error}`), 'extended', sql);
    else if (a.statements.length === 0) run = this.#run(undefined, { allowed: true, decisions: [], recorded: Promise.resolve(), record: () => Promise.resolve() }, 'extended', sql);
    else {
      // One statement per Parse (the server refuses more); each is decided all the same.
      let d: Decided | undefined;
      for (const plan of a.statements) {
        d = await this.#decide(plan);
        if (!d.allowed) break;
      }
      run = this.#run(a.statements[0], d!, 'extended', sql);
    }
    if (run.decided.allowed) {
      if (run.plan) this.#sqlLevel(run.plan);
      this.#prepared.set(name, run);
      this.#expect.push({ k: 'parse' });
      return this.#toUpstream(f.bytes);
    }
    this.#prepared.delete(name);
    this.#expect.push({ k: 'parse', denied: run });
    this.#toUpstream(parseMessage(name, DENY_SQL, Buffer.from([0, 0])));
  }

  /**
   * Execute runs what was decided at Parse — decided again first if the policy changed since. A
   * statement now denied never runs: the upstream gets a failing Parse instead (the server skips
   * to Sync, aborting the transaction as for any error).
   */
  async #execute(f: Frame): Promise<void> {
    const portal = new Reader(f.bytes, 5).cstring();
    const base = this.#portals.get(portal);
    let run: Run | undefined;
    if (base?.plan) {
      // Decided again at every Execute (decisions are never cached), recorded with the statement.
      const decided = await this.#decide(base.plan, undefined, true);
      run = { plan: base.plan, decided, protocol: base.protocol, text: base.text, started: performance.now(), rows: 0 };
      if (!decided.allowed) {
        this.#expect.push({ k: 'parse', denied: run });
        this.#announce();
        return this.#toUpstream(parseMessage('', DENY_SQL, Buffer.from([0, 0])));
      }
      if (base.plan.effects && !(await this.#durable([run]))) return;
      this.#announce();
    } else if (base) run = { plan: base.plan, decided: base.decided, protocol: base.protocol, text: base.text, started: performance.now(), rows: 0 };
    this.#expect.push({ k: 'execute', run });
    this.#toUpstream(f.bytes);
  }

  /** A fast-path function call names its function by OID only: db.admin on the Database. */
  async #fastpath(f: Frame): Promise<void> {
    const plan: StatementPlan = { kind: 'admin', checks: [{ action: 'db.admin', resource: { type: 'Database', id: '' } }], tables: [], functions: ['(fast-path call)'], normalized: '(fast-path function call)', fingerprint: '', start: 0, end: 0, effects: true };
    const d = await this.#decide(plan);
    const run = this.#run(plan, d, 'extended', '');
    if (d.allowed) {
      if (!(await this.#durable([run]))) return;
      this.#expect.push({ k: 'query', runs: [run], i: 0, fastpath: true });
      return this.#toUpstream(f.bytes);
    }
    this.#expect.push({ k: 'query', runs: [run], i: 0, deniedAt: 0, fastpath: true });
    this.#toUpstream(queryMessage(DENY_SQL));
  }

  #run(plan: StatementPlan | undefined, decided: Decided, protocol: Run['protocol'], text: string): Run {
    return { plan, decided, protocol, text, started: performance.now(), rows: 0 };
  }

  // ── Upstream messages ───────────────────────────────────────────────────────────────────────

  #onUpstream(d: Buffer): void {
    if (this.#phase !== 'ready') return;
    try {
      this.#upFramer.push(d);
      this.#socket.cork();
      for (let f = this.#upFramer.next(); f; f = this.#upFramer.next()) this.#fromUpstream(f);
      this.#socket.uncork();
    } catch {
      void this.end('the upstream server sent a malformed message', { code: '08P01', message: 'protocol error from the upstream server' });
    }
  }

  #fromUpstream(f: Frame): void {
    const t = String.fromCharCode(f.type);
    const head = this.#expect[0];
    switch (t) {
      case 'D': {
        const run = currentRun(head);
        if (run) {
          run.rows++;
          if (this.#g.config.record_results && (run.results ??= []).length < RESULTS_MAX_ROWS) run.results.push(dataRowText(f.bytes));
          this.#open(run);
          if (this.#heldBytes > HOLD_BYTES) this.#early(run);
        }
        return this.#emit(f.bytes);
      }
      case '1':
      case '3':
        this.#expect.shift();
        return this.#emit(f.bytes);
      case '2':
        this.#expect.shift();
        this.#openAhead();
        return this.#emit(f.bytes);
      case 't':
        return this.#emit(f.bytes);
      case 'T':
      case 'n':
        if (head?.k === 'describe') {
          this.#expect.shift();
          this.#openAhead();
        } else this.#open(currentRun(head));
        return this.#emit(f.bytes);
      case 'C':
      case 's':
      case 'V': {
        const run = currentRun(head);
        if (run) this.#finish(run, t === 'C' ? commandTag(f.bytes) : t === 's' ? 'PORTAL SUSPENDED' : 'FUNCTION CALL');
        if (head?.k === 'execute') this.#expect.shift();
        else if (head?.k === 'query') head.i++;
        return this.#emit(f.bytes);
      }
      case 'I':
        if (head?.k === 'execute') this.#void(this.#expect.shift()!);
        return this.#emit(f.bytes);
      case 'G':
      case 'W':
        // The client must answer (COPY FROM STDIN): what it is told waits for the decisions only.
        if (t === 'G') this.#copyIn = true;
        this.#open(currentRun(head));
        this.#early(currentRun(head));
        return this.#emit(f.bytes);
      case 'H':
      case 'd': {
        const run = currentRun(head);
        this.#open(run);
        if (this.#heldBytes > HOLD_BYTES) this.#early(run);
        return this.#emit(f.bytes);
      }
      case 'E':
        return this.#error(f, head);
      case 'Z':
        this.#copyIn = false;
        this.#unannounce();
        // After an error the server skipped to this Sync: what was pending before it is void.
        while (this.#expect.length > 0) {
          const e = this.#expect.shift()!;
          this.#void(e);
          if (e.k === 'sync' || e.k === 'query') break;
        }
        return this.#emit(f.bytes);
      case 'K':
      case 'R':
      case 'v':
        return; // the upstream's cancel key and authentication never reach the client
      default:
        // c (COPY done), N (notice), A (notification), S (parameter status)
        return this.#emit(f.bytes);
    }
  }

  #error(f: Frame, head: Expect | undefined): void {
    const injected = (head?.k === 'parse' && head.denied) || (head?.k === 'query' && head.deniedAt === head.i ? head.runs[head.i] : undefined);
    if (injected) {
      this.#record(injected, { executed: false });
      const d = injected.decided;
      const why = d.denied ? `${d.denied.action} on ${d.denied.resource} (decision ${d.denied.decision_id})` : (d.refusal ?? 'denied');
      this.#emit(
        errorResponse({
          severity: 'ERROR',
          code: '42501',
          message: `permission denied by Portcullis: ${why}`,
          ...(d.denied && { detail: `decision ${d.denied.decision_id}` }),
          hint: 'the statement was not run; ask for access or use another statement',
        }),
      );
    } else {
      const run = currentRun(head);
      if (run) this.#finish(run, undefined, errorFields(f.bytes).C ?? 'XX000');
      this.#emit(f.bytes);
    }
    // Past an error the server skips to the next Sync (extended) or ends the query (simple).
    if (head?.k === 'query') {
      // Statements after the failing one never ran: recorded as such (a denied one with its deny).
      for (let j = head.i + 1; j < head.runs.length; j++) this.#record(head.runs[j]!, { executed: false });
      head.i = head.runs.length;
    } else {
      while (this.#expect.length > 0 && this.#expect[0]!.k !== 'sync') this.#void(this.#expect.shift()!);
    }
  }

  /** A statement finished upstream: its record, which its CommandComplete waits for. */
  #finish(run: Run, tag: string | undefined, sqlstate?: string): void {
    this.#record(run, { executed: true, tag, sqlstate });
  }

  #record(run: Run, o: { executed: boolean; tag?: string | undefined; sqlstate?: string | undefined }): void {
    const p = run.plan;
    const { config } = this.#g;
    this.#statements++;
    this.#unannounce();
    const rows = o.tag !== undefined ? rowsOf(o.tag) : undefined;
    const payload: Record<string, unknown> = {
      statement: p?.normalized ?? null,
      fingerprint: p?.fingerprint ?? null,
      kind: p?.kind ?? 'unparsable',
      tables: p?.tables ?? [],
      functions: p?.functions ?? [],
      protocol: run.protocol,
      decisions: run.decided.decisions,
      ...(run.decided.refusal !== undefined && !run.decided.allowed && { refusal: run.decided.refusal }),
      executed: o.executed,
      ...(o.executed && { duration_ms: Math.round((performance.now() - run.started) * 1000) / 1000, rows: rows ?? run.rows, ...(o.tag !== undefined && { command: o.tag.replace(/\s.*$/, '') }) }),
      ...(o.sqlstate !== undefined && { sqlstate: o.sqlstate }),
      lease: this.#leaseId,
      ...(this.#grantId !== undefined && { grant: this.#grantId }),
      ...(config.record_raw_statements && { text: run.text }),
      ...(config.record_results && run.results && { results: run.results }),
    };
    run.results = undefined;
    // The authz records (deferred) and the statement's record are appended in one turn: one group commit.
    const authz = run.decided.record();
    const recorded = this.#rec!.record('db.statement', payload, run.decided.allowed ? 'allow' : 'deny');
    const both = Promise.all([recorded, authz]);
    run.gate?.resolve(both);
    this.#hold(both);
  }

  /** A statement is going upstream: its records will follow its result (announced so that other sessions' records wait for them). */
  #announce(): void {
    this.#announced ??= this.#g.host.expectRecord();
  }

  #unannounce(): void {
    this.#announced?.();
    this.#announced = undefined;
  }

  /**
   * BindComplete, or the description of a portal, of an Execute the client already sent (before
   * the next Sync): held with that statement's result from here, so the client gets the whole
   * answer in one write once the statement is recorded rather than being woken up for a part.
   */
  #openAhead(): void {
    for (const e of this.#expect) {
      if (e.k === 'sync' || e.k === 'query') return;
      if (e.k === 'execute') {
        if (e.run?.plan) this.#open(e.run);
        return;
      }
    }
  }

  /** An expected reply that will not come (skipped after an error, empty query): output held for its Execute goes on. */
  #void(e: Expect): void {
    if (e.k === 'execute') e.run?.gate?.resolve(undefined);
  }

  /** A statement's first result message: the result waits from here until the statement is recorded. */
  #open(run: Run | undefined): void {
    if (!run || run.gate) return;
    run.gate = Promise.withResolvers();
    this.#hold(run.gate.promise);
  }

  /** The result is let go once the statement's decisions are durable (too large to hold, or the client must answer). */
  #early(run: Run | undefined): void {
    if (!run?.gate || run.early) return;
    run.early = true;
    run.gate.resolve(run.decided.record());
  }

  // ── Output to the client, held behind records ──────────────────────────────────────────────

  #emit(b: Buffer): void {
    if (!this.#blocked) {
      if (!this.#socket.write(b)) this.#up?.socket.pause();
      return;
    }
    this.#held.push(b);
    this.#heldBytes += b.length;
    // A large result behind a record not yet durable: stop reading the upstream meanwhile.
    if (this.#held.length === HELD_HIGH) this.#up?.socket.pause();
  }

  /** Everything emitted after this waits until `p` resolves; if it rejects the session ends (the client never sees it). */
  #hold(p: Promise<unknown>): void {
    if (this.#blocked) {
      this.#held.push(p);
      return;
    }
    this.#blocked = true;
    p.then(() => this.#release(), () => this.#unrecorded());
  }

  #release(): void {
    this.#blocked = false;
    if (this.#held.length >= HELD_HIGH) this.#up?.socket.resume();
    // What was held leaves in one write (CommandComplete and ReadyForQuery: one packet).
    this.#socket.cork();
    try {
      while (this.#held.length > 0) {
        const x = this.#held.shift()!;
        if (Buffer.isBuffer(x)) {
          this.#heldBytes -= x.length;
          if (!this.#socket.write(x)) this.#up?.socket.pause();
        } else {
          this.#blocked = true;
          x.then(() => this.#release(), () => this.#unrecorded());
          return;
        }
      }
    } finally {
      this.#socket.uncork();
    }
  }

  #unrecorded(): void {
    this.#held.length = 0;
    this.#heldBytes = 0;
    void this.end('a statement could not be recorded', { code: '58000', message: 'the statement could not be recorded by Portcullis; the session ends (its result was not delivered)' });
  }

  // ── The end ───────────────────────────────────────────────────────────────────────────────

  /** Called by the live-session registry on revocation: FATAL to the client, both connections closed at once. */
  terminate(reason: string): Promise<void> {
    return this.end(reason, { code: '57P01', message: `terminating connection: ${reason} (Portcullis)` });
  }

  #fatal(code: string, message: string): void {
    if (this.#closed()) return;
    if (this.#id !== '') {
      void this.end(message, { code, message });
      return;
    }
    try {
      this.#socket.write(errorResponse({ severity: 'FATAL', code, message }));
    } catch {}
    this.#close();
  }

  #close(): void {
    this.#phase = 'closed';
    clearTimeout(this.#authTimer);
    this.#unannounce(); // a statement still upstream when the session closes records nothing more
    this.#g.live.delete(this);
    this.#socket.end();
    setTimeout(() => this.#socket.destroy(), 200).unref();
  }

  /** Ends the session once: tells the client why (if `fatal`), closes both sides, records the end, revokes the lease. */
  end(reason: string, fatal?: { code: string; message: string }): Promise<void> {
    if (this.#ending) return this.#ending;
    this.#ending = (async () => {
      const wasReady = this.#phase === 'ready' || this.#phase === 'admitting';
      if (fatal && !this.#socket.destroyed) {
        try {
          this.#socket.write(errorResponse({ severity: 'FATAL', code: fatal.code, message: fatal.message }));
        } catch {}
      }
      this.#close();
      this.#up?.socket.destroy();
      this.#unannounce();
      if (this.#cancelKey) this.#g.cancels.delete(this.#cancelKey);
      this.#unregister?.();
      if (!wasReady && this.#leaseId === undefined) return;
      // Every decision is recorded, also those of statements cut short by the end.
      await Promise.allSettled([...this.#deferred].map((d) => d.record()));
      try {
        await this.#rec?.settled();
        await this.#rec?.end({ reason, statements: this.#statements, duration_ms: this.#startedAt ? Date.now() - this.#startedAt : 0 });
      } catch (err) {
        this.#g.log(`gateway ${this.#g.config.name}: session ${this.#id}: its end could not be recorded: ${(err as Error).message}`);
      }
      if (this.#leaseId !== undefined && !this.#leaseRevoked) {
        this.#leaseRevoked = true;
        await this.#g.host.revokeLease(this.#leaseId, `gateway session ${this.#id} ended: ${reason}`).catch((err: unknown) => this.#g.log(`gateway ${this.#g.config.name}: revoking lease ${this.#leaseId}: ${(err as Error).message}`));
      }
    })();
    const p = this.#ending;
    this.#g.ending.add(p);
    void p.finally(() => this.#g.ending.delete(p));
    return p;
  }
}

/** The certificate chain a TLS client presented (DER, leaf first), if any. */
function peerChain(s: TLSSocket): Uint8Array[] | undefined {
  const chain: Uint8Array[] = [];
  let cert = s.getPeerCertificate(true) as { raw?: Buffer; issuerCertificate?: unknown } | undefined;
  const seen = new Set<unknown>();
  while (cert && cert.raw && !seen.has(cert) && chain.length < 10) {
    seen.add(cert);
    chain.push(new Uint8Array(cert.raw));
    cert = cert.issuerCertificate as typeof cert;
  }
  return chain.length > 0 ? chain : undefined;
}

function currentRun(head: Expect | undefined): Run | undefined {
  if (head?.k === 'execute') return head.run;
  if (head?.k === 'query') return head.runs[head.i];
  return undefined;
}

function commandTag(bytes: Buffer): string {
  return new Reader(bytes, 5).cstring();
}

/** Rows of a command tag (`SELECT 5`, `INSERT 0 3`, `UPDATE 2`, `COPY 10`), when it says. */
function rowsOf(tag: string): number | undefined {
  const m = /\s(\d+)$/.exec(tag);
  return m ? Number(m[1]) : undefined;
}

/** A DataRow's columns as text (binary values as hex), for the opt-in result recording. */
function dataRowText(bytes: Buffer): string[] {
  const r = new Reader(bytes, 5);
  const n = r.int16();
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const len = r.int32();
    if (len < 0) out.push('NULL');
    else out.push(r.bytes(len).toString('utf8').slice(0, 1000));
  }
  return out;
}

/**
 * The startup `options` the gateway reads: `-c portcullis.reason=…` and `-c portcullis.ticket=…`
 * (spaces escaped as `\ `, like libpq's PGOPTIONS). Anything else: undefined (refused).
 */
export function parseOptions(s: string): { reason?: string; ticket?: string } | undefined {
  const words: string[] = [];
  let cur = '';
  let esc = false;
  for (const ch of s) {
    if (esc) {
      cur += ch;
      esc = false;
    } else if (ch === '\\') esc = true;
    else if (ch === ' ' || ch === '\t') {
      if (cur !== '') words.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (cur !== '') words.push(cur);
  const out: { reason?: string; ticket?: string } = {};
  for (let i = 0; i < words.length; i++) {
    let w = words[i]!;
    if (w === '-c') w = words[++i] ?? '';
    else if (w.startsWith('-c')) w = w.slice(2);
    else if (w.startsWith('--')) w = w.slice(2);
    else return undefined;
    const eq = w.indexOf('=');
    const k = eq < 0 ? w : w.slice(0, eq);
    const v = eq < 0 ? '' : w.slice(eq + 1);
    if (k === 'portcullis.reason') out.reason = v.slice(0, 1024);
    else if (k === 'portcullis.ticket') out.ticket = v.slice(0, 128);
    else return undefined;
  }
  return out;
}
