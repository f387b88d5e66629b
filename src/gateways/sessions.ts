// The live gateway sessions of this replica, and what ends them: each session registers what it
// hangs on (identity, login session, API key, leases, grants); a revocation of any of them — told
// by an in-process event, by another replica's ChangeFeed notice, or found by the backstop that
// re-validates every live session at least every 500 ms against the store — calls the session's
// `terminate`. Also the recorder that numbers a session's records and awaits their durability.
import { randomBytes } from 'node:crypto';
import type { AuditEventInput, AuditRecord } from '../audit/types.ts';
import type { ChangeFeed, ChangeTopic } from '../store/ports.ts';

/** A new gateway session id: `gws_` and 20 url-safe random characters. */
export function newSessionId(): string {
  return `gws_${randomBytes(15).toString('base64url')}`;
}

/** A string that may be a gateway session id (checked before it is used as a key anywhere). */
export function isSessionId(s: unknown): s is string {
  return typeof s === 'string' && /^gws_[A-Za-z0-9_-]{20}$/.test(s);
}

/** What a live session hangs on: the revocation of any of these ends it. */
export interface SessionHangs {
  identityId: string;
  /** The login session (jti) and its issue time (s), when the proof was a session token or an API key login. */
  jti?: string;
  jtiIssuedAt?: number;
  apiKeyId?: string;
  /** Leases: the upstream credential the gateway holds, the proof's own lease (an SSH certificate). */
  leaseIds: string[];
  /** Grants (access requests, break-glass) the session's leases were issued under. */
  grantIds: string[];
  /** The agent assignment the session's token was issued under (docs/agents.md): its end ends the session. */
  assignmentId?: string;
}

/** What a gateway registers. */
export interface LiveSessionSpec {
  id: string;
  gateway: string;
  kind: string;
  target: string;
  sourceIp: string;
  hangs: SessionHangs;
  /**
   * Ends the session now: close the client with a clear error and the upstream. Called at most
   * once by the registry; must not throw (the registry logs and goes on if it does).
   */
  terminate(reason: string): void | Promise<void>;
}

export interface LiveSession {
  readonly id: string;
  readonly gateway: string;
  readonly kind: string;
  readonly target: string;
  readonly identityId: string;
  readonly sourceIp: string;
  readonly startedAt: number;
  readonly hangs: Readonly<SessionHangs>;
}

/** Checks one session's hangs against the store: the reason it must end, or undefined while it may go on. */
export type Revalidate = (hangs: Readonly<SessionHangs>) => Promise<string | undefined>;

export interface SessionRegistryOptions {
  revalidate: Revalidate;
  /** Other replicas' notices (identity, session, grant, lease) trigger an immediate re-validation. */
  changes?: ChangeFeed;
  /** Backstop period (default 250 ms, at most 500 ms). */
  intervalMs?: number;
  /** Before each backstop pass (e.g. re-read the session revocations from the store). */
  beforePass?: () => Promise<void>;
  now?: () => number;
  log?: (msg: string) => void;
}

const TOPICS: readonly ChangeTopic[] = ['identity', 'session', 'grant', 'lease'];

interface Entry {
  info: LiveSession & { hangs: SessionHangs };
  terminate: LiveSessionSpec['terminate'];
  ending: boolean;
}

/** One per replica (docs/gateways.md "Revocation"). */
export class SessionRegistry {
  readonly #o: SessionRegistryOptions;
  readonly #live = new Map<string, Entry>();
  readonly #unsubscribe: (() => void)[] = [];
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;

  constructor(o: SessionRegistryOptions) {
    if (o.intervalMs !== undefined && (o.intervalMs < 10 || o.intervalMs > 500)) throw new RangeError('the re-validation period must be between 10 and 500 ms');
    this.#o = o;
  }

  /** Starts listening to other replicas' notices and the backstop timer. */
  start(): void {
    if (this.#timer) return;
    for (const t of TOPICS) if (this.#o.changes) this.#unsubscribe.push(this.#o.changes.subscribe(t, () => this.check()));
    if (this.#o.changes) this.#unsubscribe.push(this.#o.changes.onResync(() => this.check()));
    this.#timer = setInterval(() => void this.check(true), this.#o.intervalMs ?? 250);
    this.#timer.unref();
  }

  /** Stops the timer and the subscriptions (live sessions are ended by their gateways' stop). */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    for (const u of this.#unsubscribe.splice(0)) u();
    await this.#running;
  }

  /** Registers a live session; returns the function that removes it (call it when the session ends, whatever ended it). */
  register(spec: LiveSessionSpec): () => void {
    if (this.#live.has(spec.id)) throw new RangeError(`session ${spec.id} is already registered`);
    const info = {
      id: spec.id,
      gateway: spec.gateway,
      kind: spec.kind,
      target: spec.target,
      identityId: spec.hangs.identityId,
      sourceIp: spec.sourceIp,
      startedAt: (this.#o.now ?? Date.now)(),
      hangs: { ...spec.hangs, leaseIds: [...spec.hangs.leaseIds], grantIds: [...spec.hangs.grantIds] },
    };
    this.#live.set(spec.id, { info, terminate: spec.terminate, ending: false });
    return () => {
      this.#live.delete(spec.id);
    };
  }

  /** Adds what a session hangs on once it is known (the upstream lease is issued after admission). */
  hangOn(id: string, more: { leaseId?: string; grantId?: string }): void {
    const e = this.#live.get(id);
    if (!e) return;
    if (more.leaseId !== undefined && !e.info.hangs.leaseIds.includes(more.leaseId)) e.info.hangs.leaseIds.push(more.leaseId);
    if (more.grantId !== undefined && !e.info.hangs.grantIds.includes(more.grantId)) e.info.hangs.grantIds.push(more.grantId);
  }

  get(id: string): LiveSession | undefined {
    return this.#live.get(id)?.info;
  }

  list(): LiveSession[] {
    return [...this.#live.values()].map((e) => e.info);
  }

  get size(): number {
    return this.#live.size;
  }

  /** Ends one live session of this replica; false when it does not live here. */
  async terminate(id: string, reason: string): Promise<boolean> {
    const e = this.#live.get(id);
    if (!e) return false;
    await this.#end(e, reason);
    return true;
  }

  /** Ends every live session (the server stops). */
  async terminateAll(reason: string): Promise<void> {
    await Promise.all([...this.#live.values()].map((e) => this.#end(e, reason)));
  }

  async #end(e: Entry, reason: string): Promise<void> {
    if (e.ending) return;
    e.ending = true;
    try {
      await e.terminate(reason);
    } catch (err) {
      this.#o.log?.(`gateway session ${e.info.id}: terminate failed: ${(err as Error).message}`);
    } finally {
      this.#live.delete(e.info.id);
    }
  }

  /**
   * Re-validates every live session now (coalesced: a call during a pass runs one more pass
   * after it). Called on in-process revocation events, on notices, and by the backstop timer.
   */
  check(backstop = false): Promise<void> {
    if (this.#live.size === 0) return Promise.resolve();
    if (this.#running) {
      if (!backstop) this.#again = true;
      return this.#running;
    }
    this.#running = (async () => {
      try {
        do {
          this.#again = false;
          await this.#pass();
        } while (this.#again);
      } finally {
        this.#running = undefined;
      }
    })();
    return this.#running;
  }

  async #pass(): Promise<void> {
    try {
      await this.#o.beforePass?.();
    } catch (err) {
      this.#o.log?.(`gateway sessions: re-reading revocations failed: ${(err as Error).message}`);
    }
    await Promise.all(
      [...this.#live.values()].map(async (e) => {
        if (e.ending) return;
        let reason: string | undefined;
        try {
          reason = await this.#o.revalidate(e.info.hangs);
        } catch (err) {
          // The store cannot answer now: the next pass tries again (statements are still decided,
          // and fail closed, one by one).
          this.#o.log?.(`gateway session ${e.info.id}: re-validation failed: ${(err as Error).message}`);
          return;
        }
        if (reason !== undefined) await this.#end(e, reason);
      }),
    );
  }
}

/** Numbers a session's records (`payload.n` = 1, 2, 3 … in call order) and appends them to the `session` stream. */
export class SessionRecorder {
  readonly #append: (e: Omit<AuditEventInput, 'stream'>) => Promise<AuditRecord>;
  readonly #base: { session: string; actor: string; boundary?: string; subject?: string };
  #n = 0;
  #last: Promise<unknown> = Promise.resolve();

  constructor(append: (e: Omit<AuditEventInput, 'stream'>) => Promise<AuditRecord>, base: { session: string; actor: string; boundary?: string; subject?: string }) {
    this.#append = append;
    this.#base = base;
  }

  /** Records written so far (the number `session.end` carries as `records`, itself included). */
  get count(): number {
    return this.#n;
  }

  /**
   * Appends one record; resolves once it is durable. The number is taken now, so records are
   * numbered in the order this is called, whatever order their appends settle in.
   */
  record(type: string, payload: Record<string, unknown>, decision?: 'allow' | 'deny'): Promise<AuditRecord> {
    const n = ++this.#n;
    const { session, actor, boundary, subject } = this.#base;
    const p = this.#append({
      type,
      actor,
      ...(boundary !== undefined && { boundary }),
      ...(subject !== undefined && { subject }),
      ...(decision !== undefined && { decision }),
      payload: { ...payload, session, n }, // ours last: a payload never renumbers or moves a record
    });
    this.#last = p.catch(() => undefined);
    return p;
  }

  /** The last record `session.end`: carries `records` (= its own n), so a verifier knows 1..N must all be there. */
  end(payload: Record<string, unknown>): Promise<AuditRecord> {
    return this.record('session.end', { ...payload, records: this.#n + 1 });
  }

  /** Resolves once every record appended so far has settled. */
  async settled(): Promise<void> {
    await this.#last;
  }
}
