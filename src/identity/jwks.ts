// Where a trust's verification keys come from: an inline JWKS, or a JWKS URI fetched and cached.
// An unknown kid triggers at most one refetch per cooldown (default 30 s), so a flood of tokens
// with random kids cannot turn the broker into a traffic amplifier against the issuer.
import { outboundFetch } from '../common/outbound.ts';
import type { OutboundFetch } from '../common/outbound.ts';
import { createLocalJWKSet, errors as joseErrors } from 'jose';
import type { JSONWebKeySet, JWK, JWSHeaderParameters, CryptoKey, KeyObject } from 'jose';
import type { Clock } from '../common/clock.ts';
import { systemClock } from '../common/clock.ts';
import { fail } from './reasons.ts';

export type KeyResult = CryptoKey | KeyObject | Uint8Array;

export interface KeySource {
  getKey(header: JWSHeaderParameters): Promise<KeyResult>;
}

/**
 * Keeps only public asymmetric signing keys: `oct` keys would enable HMAC confusion, and a
 * key marked for encryption must not verify signatures.
 */
function sanitizeJwks(value: unknown, allowedUse: readonly string[] = ['sig']): JSONWebKeySet {
  if (value === null || typeof value !== 'object' || !Array.isArray((value as { keys?: unknown }).keys)) {
    throw new TypeError('JWKS is not an object with a "keys" array');
  }
  const keys: JWK[] = [];
  for (const k of (value as { keys: unknown[] }).keys) {
    if (k === null || typeof k !== 'object' || Array.isArray(k)) continue;
    const jwk = k as JWK;
    if (typeof jwk.kty !== 'string' || jwk.kty === 'oct') continue;
    if (jwk.use !== undefined && !allowedUse.includes(jwk.use)) continue;
    // Never keep private members even if an issuer leaked them.
    // `use` was checked above; dropped so jose (which only selects `sig`) accepts `jwt-svid` keys.
    const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, oth: _oth, k: _k, use: _use, ...pub } = jwk as JWK & { oth?: unknown };
    keys.push(pub);
  }
  return { keys };
}

function lookup(jwks: JSONWebKeySet): (h: JWSHeaderParameters) => Promise<KeyResult> {
  const local = createLocalJWKSet(jwks);
  return (h) => local(h) as Promise<KeyResult>;
}

export class InlineJwks implements KeySource {
  readonly #get: (h: JWSHeaderParameters) => Promise<KeyResult>;
  constructor(jwks: unknown, allowedUse: readonly string[] = ['sig']) {
    this.#get = lookup(sanitizeJwks(jwks, allowedUse));
  }
  getKey(header: JWSHeaderParameters): Promise<KeyResult> {
    return this.#get(header);
  }
}

export interface RemoteJwksOptions {
  clock?: Clock;
  /** Default: outboundFetch() — no private destinations (common/outbound.ts). */
  fetch?: typeof fetch | OutboundFetch;
  /** Minimum time between refetches caused by an unknown kid (default 30 s). */
  refetchCooldownMs?: number;
  /** Keys are refreshed when older than this (default 10 min); stale keys are kept if the refresh fails. */
  cacheMaxAgeMs?: number;
  /** Minimum time between attempts after a failed fetch (default 5 s). */
  failureBackoffMs?: number;
  timeoutMs?: number;
  maxBytes?: number;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

export class RemoteJwks implements KeySource {
  readonly #url: URL;
  readonly #clock: Clock;
  readonly #fetch: typeof fetch | OutboundFetch;
  readonly #cooldown: number;
  readonly #maxAge: number;
  readonly #backoff: number;
  readonly #timeout: number;
  readonly #maxBytes: number;
  #get: ((h: JWSHeaderParameters) => Promise<KeyResult>) | undefined;
  #fetchedAt = -Infinity;
  #attemptAt = -Infinity;
  #pending: Promise<void> | undefined;
  /** Number of HTTP fetches made (for tests and metrics). */
  fetches = 0;

  constructor(uri: string, options: RemoteJwksOptions = {}) {
    this.#url = new URL(uri);
    if (this.#url.protocol !== 'https:' && !(this.#url.protocol === 'http:' && isLoopback(this.#url.hostname))) {
      throw new TypeError(`jwks_uri ${this.#url.origin} must use https (plain http only on loopback)`);
    }
    this.#clock = options.clock ?? systemClock;
    this.#fetch = options.fetch ?? outboundFetch();
    this.#cooldown = options.refetchCooldownMs ?? 30_000;
    this.#maxAge = options.cacheMaxAgeMs ?? 600_000;
    this.#backoff = options.failureBackoffMs ?? 5_000;
    this.#timeout = options.timeoutMs ?? 5_000;
    this.#maxBytes = options.maxBytes ?? 512 * 1024;
  }

  async #load(): Promise<void> {
    this.#pending ??= (async () => {
      this.#attemptAt = this.#clock.now();
      this.fetches++;
      try {
        const res = await this.#fetch(this.#url, { redirect: 'error', signal: AbortSignal.timeout(this.#timeout), headers: { accept: 'application/json' } });
        if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
        const body = await readCapped(res, this.#maxBytes);
        this.#get = lookup(sanitizeJwks(JSON.parse(body)));
        this.#fetchedAt = this.#clock.now();
      } finally {
        this.#pending = undefined;
      }
    })();
    return this.#pending;
  }

  async #ensure(): Promise<void> {
    if (this.#pending !== undefined) await this.#pending.catch(() => undefined);
    const now = this.#clock.now();
    if (this.#get !== undefined && now - this.#fetchedAt < this.#maxAge) return;
    if (now - this.#attemptAt < this.#backoff) {
      if (this.#get !== undefined) return; // stale keys beat none while the issuer is down
      throw fail('jwks_unavailable', `JWKS ${this.#url.origin} unavailable (backing off after a failed fetch)`);
    }
    try {
      await this.#load();
    } catch (e) {
      if (this.#get !== undefined) return;
      throw fail('jwks_unavailable', `JWKS ${this.#url.origin} could not be fetched: ${(e as Error).message.slice(0, 100)}`);
    }
  }

  async getKey(header: JWSHeaderParameters): Promise<KeyResult> {
    await this.#ensure();
    try {
      return await this.#get!(header);
    } catch (e) {
      if (!(e instanceof joseErrors.JWKSNoMatchingKey)) throw e;
      // The issuer may have rotated: refetch once, unless we did so recently.
      if (this.#clock.now() - this.#attemptAt < this.#cooldown) throw e;
      try {
        await this.#load();
      } catch {
        throw e;
      }
      return this.#get!(header);
    }
  }
}

async function readCapped(res: Response, max: number): Promise<string> {
  const declared = Number(res.headers.get('content-length') ?? '0');
  if (declared > max) throw new Error('JWKS too large');
  if (res.body === null) return '';
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
    total += chunk.length;
    if (total > max) throw new Error('JWKS too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
