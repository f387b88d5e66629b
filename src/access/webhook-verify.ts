// For webhook receivers: verify a Portcullis delivery and refuse replays. The signature covers
// `<t>.<raw body>` and `t` may be up to `toleranceS` old, so a captured request can be replayed
// for that long; the receiver must de-duplicate. The key is the event id inside the signed body
// (`id`, the same on every retry of a delivery) — not the unsigned Portcullis-Delivery header.
//
//   const receiver = new WebhookReceiver({ secret: process.env.HOOK_SECRET! });
//   const r = receiver.verify(req.headers['portcullis-signature'], rawBody);
//   if (!r.ok) return res.writeHead(r.reason === 'replay' ? 200 : 401).end(); // a replay is already handled
//   handle(r.event);
//
// The replay cache is in memory: one process. Receivers behind several processes share it
// (a database unique key on the event id) or route by event id.
import { verifyWebhookSignature } from './webhooks.ts';

export interface WebhookEvent {
  id: string;
  type: string;
  created_at: string;
  data: unknown;
}

export type WebhookVerdict =
  | { ok: true; event: WebhookEvent }
  | { ok: false; reason: 'bad_signature' | 'malformed' | 'replay' | 'busy' };

export interface WebhookReceiverOptions {
  /** The endpoint's secret; several during rotation. */
  secret: string | readonly string[];
  /** Accepted age of `t` (default 300 s, as the signer's tolerance). */
  toleranceS?: number;
  /** How long an event id is remembered (default and minimum 2 × tolerance + 1 s). */
  retainS?: number;
  /** Most ids remembered (default 100 000); when full, new events are refused ('busy'), never forgotten early. */
  maxEntries?: number;
  /** Unix seconds now (tests). */
  nowS?: () => number;
}

export class WebhookReceiver {
  readonly #secrets: readonly string[];
  readonly #tolerance: number;
  readonly #retain: number;
  readonly #max: number;
  readonly #now: () => number;
  /** event id → unix seconds until which it is remembered (insertion order = expiry order). */
  readonly #seen = new Map<string, number>();

  constructor(o: WebhookReceiverOptions) {
    this.#secrets = typeof o.secret === 'string' ? [o.secret] : [...o.secret];
    if (this.#secrets.length === 0 || this.#secrets.some((s) => s.length === 0)) throw new TypeError('WebhookReceiver: secret must be non-empty');
    this.#tolerance = o.toleranceS ?? 300;
    // A signature verifies while |now - t| <= tolerance, and t may be up to `tolerance` ahead of
    // the first receipt: it stays valid until receipt + 2 × tolerance INCLUSIVE, so the id is
    // remembered one second longer than that.
    this.#retain = Math.max(o.retainS ?? 2 * this.#tolerance + 1, 2 * this.#tolerance + 1);
    this.#max = o.maxEntries ?? 100_000;
    this.#now = o.nowS ?? (() => Math.floor(Date.now() / 1000));
  }

  verify(header: string | string[] | null | undefined, rawBody: string | Buffer): WebhookVerdict {
    const now = this.#now();
    const h = Array.isArray(header) ? header[0] : header;
    const body = typeof rawBody === 'string' ? rawBody : rawBody.toString('utf8');
    if (!this.#secrets.some((s) => verifyWebhookSignature(s, h, body, { nowS: now, toleranceS: this.#tolerance }))) {
      return { ok: false, reason: 'bad_signature' };
    }
    let event: WebhookEvent;
    try {
      event = JSON.parse(body) as WebhookEvent;
    } catch {
      return { ok: false, reason: 'malformed' };
    }
    if (typeof event !== 'object' || event === null || typeof event.id !== 'string' || event.id === '' || typeof event.type !== 'string') {
      return { ok: false, reason: 'malformed' };
    }
    this.#purge(now);
    if (this.#seen.has(event.id)) return { ok: false, reason: 'replay' };
    if (this.#seen.size >= this.#max) return { ok: false, reason: 'busy' };
    this.#seen.set(event.id, now + this.#retain);
    return { ok: true, event };
  }

  #purge(now: number): void {
    for (const [id, until] of this.#seen) {
      if (until > now) break; // entries expire in insertion order (constant retention)
      this.#seen.delete(id);
    }
  }
}
