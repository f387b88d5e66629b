// The gateway sessions' admin API (GET /v1/sessions …): sessions are read back from the `session`
// audit stream (`session.start` … `session.end`), live ones from this replica's registry. Listing
// one's own needs nothing and anyone's `session.read`; reading a recording is always a `session.read`
// decision on the session (audited); ending another's session is `session.terminate`. Ending one
// revokes its upstream lease too, which every replica's registry watches: it ends wherever it lives.
import type { AuditLog } from '../audit/log.ts';
import type { AuditRecord, StreamVerification } from '../audit/types.ts';
import type { CredentialService } from '../credentials/index.ts';
import type { Keyring } from '../crypto/keyring.ts';
import { InvalidInput, NotFound } from '../common/errors.ts';
import { isSessionId, type SessionRegistry } from '../gateways/index.ts';
import type { Authorization } from './authorization.ts';
import type { Caller } from './types.ts';
import { recordAdminEvent } from './admin-event.ts';
import { opaqueId } from './opaque.ts';

export interface GatewaySessionAdminDeps {
  authz: Pick<Authorization, 'requireAllowed' | 'allows'>;
  audit: AuditLog;
  credentials: CredentialService;
  keyring: Keyring;
  registry: SessionRegistry;
  log: (msg: string) => void;
}

export interface GatewaySessionQuery {
  /** Only the caller's own sessions (no permission needed); `identity` is then ignored. */
  mine?: boolean;
  identity?: string;
  target?: string;
  gateway?: string;
  /** Live (no `session.end` yet) or ended only. */
  live?: boolean;
  limit?: number;
}

/** One gateway session as its records tell it. */
export interface GatewaySessionView {
  id: string;
  gateway: string;
  kind: string;
  target: string;
  identity: string;
  started_at: string;
  ended_at?: string;
  end_reason?: string;
  /** No `session.end` yet (it may live on another replica). */
  live: boolean;
  /** Live on the replica that answers. */
  here: boolean;
  lease?: string;
  grant?: string;
  records?: number;
  start: Record<string, unknown>;
}

export interface SessionVerification {
  ok: boolean;
  /** The session stream's own verification (chain, checkpoints, witness). */
  stream: StreamVerification;
  /** Records found, numbered 1..n; the numbers missing; whether `session.end` closes it. */
  records: number;
  missing: number[];
  complete: boolean;
  reason?: string;
}

const CONTROL_PLANE = { type: 'ControlPlane', id: 'portcullis' };
const PAGE = 1000;

export class GatewaySessionAdmin {
  readonly #d: GatewaySessionAdminDeps;

  /** The session stream's verification under way (see #sessionStream). */
  #verifying: { head: number; result: Promise<StreamVerification> } | undefined;

  /**
   * The session stream's verification: a whole-log read and hash, so callers asking at once (a
   * session page asks on every view) share the one under way while the stream has not grown; one
   * asked after it settled verifies again (an edit since must show).
   */
  async #sessionStream(): Promise<StreamVerification> {
    const head = (await this.#d.audit.head('session')).seq;
    const v = this.#verifying;
    if (v && v.head === head) return v.result;
    const result = this.#d.audit.verifyAsync(this.#d.keyring.publicKeyResolver).then((all) => all.streams.find((x) => x.stream === 'session')!);
    const mine = { head, result };
    this.#verifying = mine;
    const done = () => {
      if (this.#verifying === mine) this.#verifying = undefined;
    };
    result.then(done, done);
    return result;
  }

  constructor(deps: GatewaySessionAdminDeps) {
    this.#d = deps;
  }

  /** Sessions, newest first: the caller's own (`mine`), or anyone's (`session.read`). */
  async list(c: Caller, q: GatewaySessionQuery = {}): Promise<GatewaySessionView[]> {
    if (q.mine !== true) await this.#d.authz.requireAllowed(c, 'session.read', CONTROL_PLANE);
    const identity = q.mine === true ? c.identity.id : q.identity;
    await this.#d.audit.flush();
    const limit = Math.min(Math.max(q.limit ?? 100, 1), PAGE);
    const starts = await this.#d.audit.query({ stream: 'session', type: 'session.start', order: 'desc', limit: PAGE, ...(identity !== undefined && { actor: identity }) });
    const ends = await this.#d.audit.query({ stream: 'session', type: 'session.end', order: 'desc', limit: PAGE, ...(identity !== undefined && { actor: identity }) });
    const endOf = new Map(ends.map((e) => [String(e.payload.session), e]));
    const out: GatewaySessionView[] = [];
    for (const s of starts) {
      const v = this.#view(s, endOf.get(String(s.payload.session)));
      if (q.target !== undefined && v.target !== q.target) continue;
      if (q.gateway !== undefined && v.gateway !== q.gateway) continue;
      if (q.live !== undefined && v.live !== q.live) continue;
      out.push(v);
      if (out.length >= limit) break;
    }
    return out;
  }

  /** One session: what started it, its records, how it ended. A `session.read` decision. */
  async get(c: Caller, id: string): Promise<{ session: GatewaySessionView; records: AuditRecord[] }> {
    const { start, records } = await this.#read(c, id);
    const end = records.find((r) => r.type === 'session.end');
    return { session: this.#view(start, end), records };
  }

  /** The session's records (JSON lines at the route). A `session.read` decision. */
  async recording(c: Caller, id: string): Promise<AuditRecord[]> {
    return (await this.#read(c, id)).records;
  }

  /** The session stream verifies, and the session's records are exactly 1..N with `session.end` saying N. */
  async verify(c: Caller, id: string): Promise<SessionVerification> {
    const { records } = await this.#read(c, id);
    const stream = await this.#sessionStream();
    const end = records.find((r) => r.type === 'session.end');
    // (a reduce, not Math.max(...records): a live session of 100k+ records would overflow the stack)
    const n = typeof end?.payload.records === 'number' ? end.payload.records : records.reduce((m, r) => Math.max(m, Number(r.payload.n)), 0);
    const seen = new Set(records.map((r) => Number(r.payload.n)));
    const missing: number[] = [];
    for (let i = 1; i <= n && missing.length < 100; i++) if (!seen.has(i)) missing.push(i);
    const dupes = records.length !== seen.size;
    const complete = end !== undefined;
    const ok = stream.ok && missing.length === 0 && !dupes && seen.size === n;
    const reason = !stream.ok ? `the session stream fails verification: ${stream.reason ?? 'at seq ' + String(stream.firstBadSeq)}`
      : missing.length > 0 ? `records missing: ${missing.join(', ')}`
      : dupes ? 'a record number appears twice'
      : seen.size !== n ? `${seen.size} records, session.end says ${n}`
      : undefined;
    return { ok, stream, records: records.length, missing, complete, ...(reason !== undefined && { reason }) };
  }

  /**
   * Ends a live session wherever it lives: at once if it lives here, and by revoking its upstream
   * lease, which every replica's registry sees. One's own needs nothing; another's `session.terminate`.
   */
  async terminate(c: Caller, id: string, reason?: string): Promise<{ session: string; here: boolean; lease?: string }> {
    if (!isSessionId(id)) throw new InvalidInput('not a gateway session id (gws_…)', 'id');
    const start = await this.#start(id).catch((err: unknown) => {
      if (err instanceof NotFound) return undefined;
      throw err;
    });
    const own = start !== undefined && start.actor === c.identity.id;
    return opaqueId('session', id, () => own || this.#d.authz.allows(c, 'session.read', { type: 'Session', id }), async () => {
      // Decided before the answer says whether the session exists: no probing by id.
      if (!own) await this.#d.authz.requireAllowed(c, 'session.terminate', { type: 'Session', id });
      if (!start) throw new NotFound(`session ${id}`);
      const why = `terminated by ${c.identity.id}${reason ? `: ${reason}` : ''}`;
      const here = await this.#d.registry.terminate(id, why);
      const lease = typeof start.payload.lease === 'string' ? start.payload.lease : undefined;
      await recordAdminEvent(this.#d.audit, c, 'gateway_session.terminated', { gateway_session: id, reason: reason ?? '', here, ...(lease !== undefined && { lease }) }, start.actor);
      if (lease !== undefined) {
        const out = await this.#d.credentials.revokeLease(lease, { by: c.identity.id, reason: `gateway session ${id} ${why}` });
        if (out.error !== undefined) this.#d.log(`terminating gateway session ${id}: revoking lease ${lease}: ${out.error}`);
      }
      return { session: id, here, ...(lease !== undefined && { lease }) };
    });
  }

  async #read(c: Caller, id: string): Promise<{ start: AuditRecord; records: AuditRecord[] }> {
    if (!isSessionId(id)) throw new InvalidInput('not a gateway session id (gws_…)', 'id');
    return opaqueId('session', id, () => false, async () => {
      // Decided before looking: an unknown session and one the caller may not read answer alike.
      await this.#d.authz.requireAllowed(c, 'session.read', { type: 'Session', id });
      const start = await this.#start(id);
      return { start, records: await this.#records(start) };
    });
  }

  /** The `session.start` record of a session id (404 when there is none). */
  async #start(id: string): Promise<AuditRecord> {
    await this.#d.audit.flush();
    // By the session index (audit migration 3 on both stores), not a scan of the stream.
    const [hit] = await this.#d.audit.sessionRecords(id, { type: 'session.start', limit: 1 });
    if (!hit) throw new NotFound(`session ${id}`);
    return hit;
  }

  /** Every record of the session, in number order, read by the session index page by page. */
  async #records(start: AuditRecord): Promise<AuditRecord[]> {
    const id = String(start.payload.session);
    const out: AuditRecord[] = [];
    let after = start.seq - 1;
    for (;;) {
      const page = await this.#d.audit.sessionRecords(id, { afterSeq: after, limit: PAGE });
      out.push(...page);
      if (page.length < PAGE) break;
      after = page[page.length - 1]!.seq;
    }
    return out.sort((a, b) => Number(a.payload.n) - Number(b.payload.n));
  }

  #view(s: AuditRecord, end: AuditRecord | undefined): GatewaySessionView {
    const p = s.payload;
    const id = String(p.session);
    return {
      id,
      gateway: String(p.gateway ?? ''),
      kind: String(p.kind ?? ''),
      target: String(p.target ?? ''),
      identity: s.actor,
      started_at: s.time,
      ...(end && { ended_at: end.time, end_reason: String(end.payload.reason ?? ''), records: Number(end.payload.records) }),
      live: end === undefined,
      here: this.#d.registry.get(id) !== undefined,
      ...(typeof p.lease === 'string' && { lease: p.lease }),
      ...(typeof p.grant === 'string' && { grant: p.grant }),
      start: p,
    };
  }
}
