// Signed webhook notifications. `notify` only writes delivery rows (one per matching endpoint) and
// wakes a background pump, so the caller never waits on the network. Each attempt is signed:
//
//   Portcullis-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>
//
// Failed attempts are retried with exponential back-off (base·2^(n-1), capped, ±10 % jitter) up
// to max_attempts; every row keeps status, attempts, last HTTP status and last error.
import { outboundFetch } from '../common/outbound.ts';
import type { OutboundFetch } from '../common/outbound.ts';
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../common/clock.ts';
import { systemClock } from '../common/clock.ts';
import type { Db } from '../store/sqlite/db.ts';
import type { WebhookConfig, WebhookEndpoint } from './config.ts';
import type { Notifier } from './types.ts';

export const SIGNATURE_HEADER = 'Portcullis-Signature';

export function signWebhook(secret: string, timestamp: number, body: string): string {
  const mac = createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
  return `t=${timestamp},v1=${mac}`;
}

/**
 * For receivers: checks the header against the raw body, in constant time, and that `t` is within
 * `toleranceS` of now (replay window). Any `v1` entry may match (several during secret rotation).
 */
export function verifyWebhookSignature(secret: string, header: string | null | undefined, body: string, opts: { nowS?: number; toleranceS?: number } = {}): boolean {
  if (!header) return false;
  const parts = header.split(',').map((p) => p.trim().split('='));
  const t = Number(parts.find(([k]) => k === 't')?.[1]);
  if (!Number.isInteger(t)) return false;
  const now = opts.nowS ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - t) > (opts.toleranceS ?? 300)) return false;
  const expected = Buffer.from(createHmac('sha256', secret).update(`${t}.${body}`).digest('hex'));
  return parts
    .filter(([k, v]) => k === 'v1' && v !== undefined && v.length === expected.length)
    .some(([, v]) => timingSafeEqual(Buffer.from(v!), expected));
}

export type DeliveryStatus = 'pending' | 'delivered' | 'failed';

export interface Delivery {
  id: string;
  endpoint: string;
  event_type: string;
  status: DeliveryStatus;
  attempts: number;
  next_attempt_at: string;
  last_status: number | null;
  last_error: string | null;
  created_at: string;
  delivered_at: string | null;
}

export interface WebhookDispatcherOptions {
  db: Db;
  config: WebhookConfig;
  /** Wall clock for back-off (delivery is real-world time even when the domain clock is a test clock). */
  clock?: Clock;
  /** Default: outboundFetch() — no private destinations (common/outbound.ts). */
  fetch?: typeof fetch | OutboundFetch;
  /** Concurrent deliveries. */
  concurrency?: number;
  onError?: (err: unknown) => void;
}

export class WebhookDispatcher implements Notifier {
  readonly #o: WebhookDispatcherOptions;
  readonly #clock: Clock;
  readonly #fetch: typeof fetch | OutboundFetch;
  #timer: NodeJS.Timeout | undefined;
  readonly #pumps = new Map<string, Promise<void>>();
  readonly #again = new Set<string>();
  #stopped = false;

  constructor(opts: WebhookDispatcherOptions) {
    this.#o = opts;
    this.#clock = opts.clock ?? systemClock;
    this.#fetch = opts.fetch ?? outboundFetch();
  }

  /** Queues the event for every subscribed endpoint; never throws, never waits. */
  notify(type: string, data: Record<string, unknown>): void {
    try {
      const endpoints = this.#o.config.endpoints.filter((e) => e.events.includes('*') || e.events.includes(type));
      if (endpoints.length === 0) return;
      const now = this.#clock.now();
      const body = JSON.stringify({ id: `evt_${randomUUID()}`, type, created_at: new Date(now).toISOString(), data });
      const ins = this.#o.db.prepare(
        "INSERT INTO access_webhook_deliveries (id, endpoint, event_type, body, status, next_attempt_at, created_at) VALUES (?, ?, ?, ?, 'pending', ?, ?)",
      );
      for (const e of endpoints) ins.run(`dlv_${randomUUID()}`, e.name, type, body, now, now);
      this.#wake(0);
    } catch (err) {
      this.#o.onError?.(err);
    }
  }

  deliveries(f: { status?: DeliveryStatus; endpoint?: string; eventType?: string } = {}, limit = 200): Delivery[] {
    const where: string[] = [];
    const vals: string[] = [];
    if (f.status) (where.push('status = ?'), vals.push(f.status));
    if (f.endpoint) (where.push('endpoint = ?'), vals.push(f.endpoint));
    if (f.eventType) (where.push('event_type = ?'), vals.push(f.eventType));
    const rows = this.#o.db
      .prepare(`SELECT * FROM access_webhook_deliveries ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, id LIMIT ?`)
      .all(...vals, limit);
    return rows.map((r) => ({
      id: r.id as string,
      endpoint: r.endpoint as string,
      event_type: r.event_type as string,
      status: r.status as DeliveryStatus,
      attempts: Number(r.attempts),
      next_attempt_at: new Date(Number(r.next_attempt_at)).toISOString(),
      last_status: (r.last_status as number | null) ?? null,
      last_error: (r.last_error as string | null) ?? null,
      created_at: new Date(Number(r.created_at)).toISOString(),
      delivered_at: r.delivered_at === null ? null : new Date(Number(r.delivered_at)).toISOString(),
    }));
  }

  /** Starts delivering anything left pending by a previous process. */
  start(): void {
    this.#stopped = false;
    this.#wake(0);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    await Promise.all(this.#pumps.values());
  }

  /** Waits until nothing is pending (tests, graceful shutdown) or the timeout passes. */
  async idle(timeoutMs = 10_000): Promise<boolean> {
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      const n = (this.#o.db.prepare("SELECT COUNT(*) AS n FROM access_webhook_deliveries WHERE status = 'pending'").get() as { n: number }).n;
      if (n === 0 && this.#pumps.size === 0) return true;
      await new Promise((r) => setTimeout(r, 10));
    }
    return false;
  }

  #wake(delayMs: number): void {
    if (this.#stopped) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      for (const ep of this.#o.config.endpoints) this.#startPump(ep.name);
    }, delayMs);
    this.#timer.unref();
  }

  /** One pump per endpoint, so a slow or hanging receiver never delays the others. */
  #startPump(endpoint: string): void {
    if (this.#pumps.has(endpoint)) {
      this.#again.add(endpoint);
      return;
    }
    const p = this.#pump(endpoint).finally(() => {
      this.#pumps.delete(endpoint);
      if (this.#again.delete(endpoint)) this.#startPump(endpoint);
      else this.#scheduleNext();
    });
    this.#pumps.set(endpoint, p);
  }

  #scheduleNext(): void {
    if (this.#stopped || !this.#o.db.isOpen) return;
    // Endpoints whose pump is running reschedule themselves when it ends (no busy wake-ups).
    const running = [...this.#pumps.keys()];
    const row = this.#o.db
      .prepare(`SELECT MIN(next_attempt_at) AS t FROM access_webhook_deliveries WHERE status = 'pending'${running.length ? ` AND endpoint NOT IN (${running.map(() => '?').join(', ')})` : ''}`)
      .get(...running) as { t: number | null };
    if (row.t !== null) this.#wake(Math.max(0, row.t - this.#clock.now()));
  }

  async #pump(endpoint: string): Promise<void> {
    try {
      for (;;) {
        if (this.#stopped || !this.#o.db.isOpen) return;
        const due = this.#o.db
          .prepare("SELECT id, endpoint, body, attempts FROM access_webhook_deliveries WHERE status = 'pending' AND endpoint = ? AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?")
          .all(endpoint, this.#clock.now(), this.#o.concurrency ?? 4) as { id: string; endpoint: string; body: string; attempts: number }[];
        if (due.length === 0) return;
        await Promise.all(due.map((d) => this.#deliver(d)));
      }
    } catch (err) {
      this.#o.onError?.(err);
    }
  }

  async #deliver(d: { id: string; endpoint: string; body: string; attempts: number }): Promise<void> {
    const ep = this.#o.config.endpoints.find((e) => e.name === d.endpoint);
    const attempts = d.attempts + 1;
    let status: number | null = null;
    let error: string | null = null;
    if (!ep) error = 'endpoint no longer configured';
    else {
      try {
        status = await this.#post(ep, d);
        if (status < 200 || status >= 300) error = `HTTP ${status}`;
      } catch (err) {
        error = describeError(err);
      }
    }
    if (!this.#o.db.isOpen) return;
    const now = this.#clock.now();
    if (error === null) {
      this.#o.db
        .prepare("UPDATE access_webhook_deliveries SET status = 'delivered', attempts = ?, last_status = ?, last_error = NULL, delivered_at = ? WHERE id = ?")
        .run(attempts, status, now, d.id);
      return;
    }
    const cfg = this.#o.config;
    const failed = !ep || attempts >= cfg.max_attempts;
    const backoff = Math.min(cfg.backoff_max_ms, cfg.backoff_base_ms * 2 ** (attempts - 1));
    const jittered = Math.round(backoff * (0.9 + Math.random() * 0.2));
    this.#o.db
      .prepare('UPDATE access_webhook_deliveries SET status = ?, attempts = ?, last_status = ?, last_error = ?, next_attempt_at = ? WHERE id = ?')
      .run(failed ? 'failed' : 'pending', attempts, status, error, now + jittered, d.id);
  }

  async #post(ep: WebhookEndpoint, d: { id: string; body: string }): Promise<number> {
    const t = Math.floor(this.#clock.now() / 1000);
    const res = await this.#fetch(ep.url, {
      method: 'POST',
      redirect: 'manual', // a redirect is a failure, never followed (no surprise destinations)
      signal: AbortSignal.timeout(this.#o.config.timeout_ms),
      headers: {
        'content-type': 'application/json',
        'user-agent': 'Portcullis-Webhooks/1',
        'portcullis-delivery': d.id,
        [SIGNATURE_HEADER.toLowerCase()]: signWebhook(ep.secret, t, d.body),
      },
      body: d.body,
    });
    await res.arrayBuffer().catch(() => {});
    return res.status;
  }
}

function describeError(err: unknown): string {
  const e = err as { name?: string; message?: string; cause?: { code?: string } };
  if (e?.name === 'TimeoutError') return 'timeout';
  return (e?.cause?.code ?? e?.message ?? String(err)).slice(0, 200);
}

/** A notifier that drops everything (no endpoints configured). */
export const nullNotifier: Notifier = { notify() {} };
