// The Shared Signals transmitter: CAEP session-revoked / credential-change SETs for identities
// Portcullis revokes, signed with the broker's token key (published at /.well-known/jwks.json),
// pushed (RFC 8935) to each configured receiver through the outbound-address guard, retried with
// backoff, each outcome one `admin` audit record (never the token: its fingerprint).
import { randomUUID } from 'node:crypto';
import type { AuditSink } from '../audit/types.ts';
import type { Clock } from '../common/clock.ts';
import type { OutboundFetch } from '../common/outbound.ts';
import { tokenFingerprint } from '../identity/jwt.ts';
import type { ReceiverConfig, TransmittedEvent } from './config.ts';
import { EVENT_URI } from './events.ts';

export interface TransmitterDeps {
  receivers: readonly ReceiverConfig[];
  /** `iss` of the SETs (Portcullis' public URL: its session tokens' issuer). */
  issuer: string;
  /** Signs claims as a compact JWS with this `typ` (the broker's token key). */
  sign(claims: Record<string, unknown>, typ: string): Promise<string>;
  fetch: OutboundFetch;
  clock: Clock;
  audit: AuditSink;
  maxAttempts: number;
  backoffBaseMs: number;
  timeoutMs: number;
  log?: (msg: string) => void;
}

/** What happened to the identity, for the event payload. */
export interface Emission {
  event: TransmittedEvent;
  identityId: string;
  reason: string;
  /** credential-change: what kind of credential and what changed (CAEP §3.3). */
  credentialType?: string;
  changeType?: 'create' | 'revoke' | 'update' | 'delete';
}

const BACKOFF_CAP_MS = 5 * 60_000;
/** Deliveries in flight per receiver (a revocation of a whole trust queues one per identity; a dead receiver holds only its own slots). */
const IN_FLIGHT_PER_RECEIVER = 8;

export class SignalTransmitter {
  readonly #d: TransmitterDeps;
  readonly #pending = new Set<Promise<void>>();
  readonly #timers = new Set<{ timer: NodeJS.Timeout; resolve: () => void }>();
  readonly #lanes = new Map<string, { active: number; queue: (() => Promise<void>)[] }>();
  #stopped = false;

  constructor(deps: TransmitterDeps) {
    this.#d = deps;
  }

  /** Queues one SET per subscribed receiver; delivery runs in the background (see `idle`). */
  emit(e: Emission): void {
    if (this.#stopped) return;
    for (const r of this.#d.receivers) {
      if (!r.events.includes(e.event)) continue;
      const p = new Promise<void>((resolve) => {
        this.#lane(r.name).queue.push(() =>
          this.#deliver(r, e)
            .catch((err: unknown) => this.#d.log?.(`signals: delivery to ${r.name} failed: ${(err as Error).message}`))
            .finally(resolve),
        );
      });
      this.#pending.add(p);
      void p.finally(() => this.#pending.delete(p));
      this.#pump(r.name);
    }
  }

  #lane(name: string): { active: number; queue: (() => Promise<void>)[] } {
    let lane = this.#lanes.get(name);
    if (!lane) this.#lanes.set(name, (lane = { active: 0, queue: [] }));
    return lane;
  }

  /** Starts queued deliveries of one receiver while it has free slots. */
  #pump(name: string): void {
    const lane = this.#lane(name);
    while (lane.active < IN_FLIGHT_PER_RECEIVER && lane.queue.length > 0) {
      const job = lane.queue.shift()!;
      lane.active++;
      void job().finally(() => {
        lane.active--;
        this.#pump(name);
      });
    }
  }

  /** Resolves once every queued delivery has finished (delivered, refused or out of attempts). */
  async idle(): Promise<void> {
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
  }

  /** Stops retrying (pending waits end at once); deliveries in flight finish. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const t of this.#timers) {
      clearTimeout(t.timer);
      t.resolve();
    }
    this.#timers.clear();
    await this.idle();
  }

  async #set(r: ReceiverConfig, e: Emission): Promise<{ token: string; jti: string }> {
    const now = Math.floor(this.#d.clock.now() / 1000);
    const jti = randomUUID();
    const payload: Record<string, unknown> = { event_timestamp: now, reason_admin: { en: e.reason.slice(0, 256) } };
    if (e.event === 'credential-change') Object.assign(payload, { credential_type: e.credentialType ?? 'api-key', change_type: e.changeType ?? 'revoke' });
    const claims = {
      iss: this.#d.issuer,
      aud: r.audience,
      iat: now,
      jti,
      // SSF 1.0: the subject names the identity as Portcullis' own tokens do (iss + sub).
      sub_id: { format: 'iss_sub', iss: this.#d.issuer, sub: e.identityId },
      events: { [EVENT_URI[e.event]]: payload },
    };
    return { token: await this.#d.sign(claims, 'secevent+jwt'), jti };
  }

  async #deliver(r: ReceiverConfig, e: Emission): Promise<void> {
    const { token, jti } = await this.#set(r, e);
    const base = { receiver: r.name, event: e.event, jti, token_fingerprint: tokenFingerprint(token) };
    let last = '';
    for (let attempt = 1; attempt <= this.#d.maxAttempts && !this.#stopped; attempt++) {
      const outcome = await this.#post(r, token);
      if (outcome.ok) {
        await this.#record('signal.sent', e.identityId, { ...base, attempts: attempt });
        return;
      }
      last = outcome.error;
      // 400 with an RFC 8935 err: the receiver refused this SET; sending it again changes nothing.
      if (outcome.final) break;
      if (attempt < this.#d.maxAttempts) await this.#wait(Math.min(BACKOFF_CAP_MS, this.#d.backoffBaseMs * 2 ** (attempt - 1)));
    }
    await this.#record('signal.send_failed', e.identityId, { ...base, error: last || 'not sent: the server stopped' });
  }

  async #post(r: ReceiverConfig, token: string): Promise<{ ok: true } | { ok: false; final: boolean; error: string }> {
    try {
      const res = await this.#d.fetch(r.endpoint, {
        method: 'POST',
        redirect: 'error',
        signal: AbortSignal.timeout(this.#d.timeoutMs),
        headers: { 'content-type': 'application/secevent+jwt', accept: 'application/json', ...(r.bearer !== undefined && { authorization: `Bearer ${r.bearer}` }) },
        body: token,
      });
      const text = (await res.text().catch(() => '')).slice(0, 2048);
      if (res.status === 202) return { ok: true };
      if (res.status === 400) {
        let err = 'unknown';
        try {
          const b = JSON.parse(text) as { err?: unknown };
          if (typeof b.err === 'string') err = b.err.slice(0, 64);
        } catch {
          /* not JSON */
        }
        return { ok: false, final: true, error: `HTTP 400 err=${err}` };
      }
      return { ok: false, final: false, error: `HTTP ${res.status}` };
    } catch (err) {
      return { ok: false, final: false, error: (err as Error).message.slice(0, 200) };
    }
  }

  #wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const entry = { timer: setTimeout(() => {
        this.#timers.delete(entry);
        resolve();
      }, ms), resolve };
      entry.timer.unref();
      this.#timers.add(entry);
    });
  }

  async #record(type: string, identityId: string, payload: Record<string, unknown>): Promise<void> {
    await this.#d.audit.append({ stream: 'admin', type, actor: 'system', subject: identityId, payload });
  }
}
