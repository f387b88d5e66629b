// Fixed-window rate limiting, shared by the HTTP edge (login endpoints, server/edge.ts) and the
// broker (`pdp.query` per application, broker/pdp.ts).
/** So many requests per window (config `limits`, `authzen.rate_limit`). */
export interface RateLimit {
  requests: number;
  window_ms: number;
}

export interface Verdict {
  allowed: boolean;
  /** Seconds until the window ends (for Retry-After). */
  retryAfterS: number;
  /** The first refusal of this key in this window: audit it (once per window, not per attempt). */
  firstRefusal: boolean;
}

/**
 * Fixed-window counters, one window for every key (the map is dropped when the window rolls).
 * At most `maxTracked` keys are counted apart; beyond that new keys share one overflow bucket,
 * so a flood of distinct keys costs bounded memory and is limited as one.
 */
export class FixedWindowLimiter {
  readonly limit: RateLimit;
  readonly #maxTracked: number;
  readonly #now: () => number;
  #windowStart = -1;
  #counts = new Map<string, number>();

  constructor(limit: RateLimit, maxTracked: number, now: () => number = Date.now) {
    this.limit = limit;
    this.#maxTracked = maxTracked;
    this.#now = now;
  }

  /** Counts `weight` requests (a batch of n evaluations counts n) and says whether they fit the window. */
  hit(key: string, weight = 1): Verdict {
    const now = this.#now();
    const start = Math.floor(now / this.limit.window_ms) * this.limit.window_ms;
    if (start !== this.#windowStart) {
      this.#windowStart = start;
      this.#counts = new Map();
    }
    const k = this.#counts.has(key) || this.#counts.size < this.#maxTracked ? key : '\u0000overflow';
    const before = this.#counts.get(k) ?? 0;
    const n = before + weight;
    this.#counts.set(k, n);
    return { allowed: n <= this.limit.requests, retryAfterS: Math.max(1, Math.ceil((start + this.limit.window_ms - now) / 1000)), firstRefusal: n > this.limit.requests && before <= this.limit.requests };
  }
}
