// Signed webhook notifications. `notify` only queues delivery rows in the outbox (one per matching
// endpoint) and wakes a background pump, so the caller never waits on the network or the store.
// Each attempt is signed:
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
import type { WebhookConfig, WebhookEndpoint } from './config.ts';
import type { Delivery, DeliveryFilter, DeliveryStatus, DueDelivery, WebhookOutbox } from './ports.ts';
import type { Notifier } from './types.ts';

export type { Delivery, DeliveryStatus };

const SIGNATURE_HEADER = 'Portcullis-Signature';

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

export interface WebhookDispatcherOptions {
  outbox: WebhookOutbox;
  config: WebhookConfig;
  /** Wall clock for back-off (delivery is real-world time even when the domain clock is a test clock). */
  clock?: Clock;
  /** Default: outboundFetch() — no private destinations (common/outbound.ts). */
  fetch?: typeof fetch | OutboundFetch;
  /** Concurrent deliveries. */
  concurrency?: number;
  /** Each delivery attempt's result (metrics). */
  onDelivery?: (result: 'delivered' | 'retry' | 'failed') => void;
  onError?: (err: unknown) => void;
}

export class WebhookDispatcher implements Notifier {
  readonly #o: WebhookDispatcherOptions;
  readonly #clock: Clock;
  readonly #fetch: typeof fetch | OutboundFetch;
  #timer: NodeJS.Timeout | undefined;
  readonly #pumps = new Map<string, Promise<void>>();
  readonly #again = new Set<string>();
  /** Deliveries being written by `notify` (it returns before they are). */
  readonly #queueing = new Set<Promise<void>>();
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
      const rows = endpoints.map((e) => ({ id: `dlv_${randomUUID()}`, endpoint: e.name, eventType: type, body }));
      const queued: Promise<void> = this.#o.outbox
        .enqueue(rows, now)
        .then(
          () => this.#wake(0),
          (err: unknown) => this.#o.onError?.(err),
        )
        .finally(() => this.#queueing.delete(queued));
      this.#queueing.add(queued);
    } catch (err) {
      this.#o.onError?.(err);
    }
  }

  /** Waits until what `notify` queued so far is written. */
  async #queued(): Promise<void> {
    while (this.#queueing.size > 0) await Promise.all(this.#queueing);
  }

  async deliveries(f: DeliveryFilter = {}, limit = 200): Promise<Delivery[]> {
    await this.#queued();
    return this.#o.outbox.list(f, limit);
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
    await this.#queued();
    await Promise.all(this.#pumps.values());
  }

  /** Waits until nothing is pending (tests, graceful shutdown) or the timeout passes. */
  async idle(timeoutMs = 10_000): Promise<boolean> {
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      await this.#queued();
      const n = await this.#o.outbox.pendingCount();
      if (n === 0 && this.#pumps.size === 0 && this.#queueing.size === 0) return true;
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
      else this.#scheduleNext().catch((err: unknown) => this.#o.onError?.(err));
    });
    this.#pumps.set(endpoint, p);
  }

  async #scheduleNext(): Promise<void> {
    if (this.#stopped) return;
    // Endpoints whose pump is running reschedule themselves when it ends (no busy wake-ups).
    const t = await this.#o.outbox.nextAttemptAt([...this.#pumps.keys()]);
    if (t !== undefined) this.#wake(Math.max(0, t - this.#clock.now()));
  }

  async #pump(endpoint: string): Promise<void> {
    try {
      for (;;) {
        if (this.#stopped) return;
        const due = await this.#o.outbox.due(endpoint, this.#clock.now(), this.#o.concurrency ?? 4);
        if (due.length === 0) return;
        await Promise.all(due.map((d) => this.#deliver(d)));
      }
    } catch (err) {
      this.#o.onError?.(err);
    }
  }

  async #deliver(d: DueDelivery): Promise<void> {
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
    const now = this.#clock.now();
    if (error === null) {
      await this.#o.outbox.delivered(d.id, { attempts, status, at: now });
      this.#o.onDelivery?.('delivered');
      return;
    }
    const cfg = this.#o.config;
    const failed = !ep || attempts >= cfg.max_attempts;
    const backoff = Math.min(cfg.backoff_max_ms, cfg.backoff_base_ms * 2 ** (attempts - 1));
    const jittered = Math.round(backoff * (0.9 + Math.random() * 0.2));
    await this.#o.outbox.attemptFailed(d.id, { status: failed ? 'failed' : 'pending', attempts, lastStatus: status, error, nextAttemptAt: now + jittered });
    this.#o.onDelivery?.(failed ? 'failed' : 'retry');
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
