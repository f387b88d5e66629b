// A small AuthZEN 1.0 client for policy enforcement points: asks Portcullis' access evaluation
// endpoint, fails closed, coalesces identical questions in flight, and caches answers by the
// policy version that decided them (the server's `Portcullis-Policy-Version` header).

/** One AuthZEN access evaluation request (subject, action, resource, optional context). */
export interface Evaluation {
  subject: { type: string; id: string; properties?: Record<string, unknown> };
  action: { name: string; properties?: Record<string, unknown> };
  resource: { type: string; id: string; properties?: Record<string, unknown> };
  context?: Record<string, unknown>;
}

export interface Answer {
  decision: boolean;
  /** `subject_not_found` / `resource_not_found`, when the PDP said so. */
  reason?: string;
  /** The policy version the answer was made under (undefined if the server did not say). */
  policyVersion?: number;
  /** Served from this client's cache. */
  cached: boolean;
}

export interface PdpOptions {
  /** The Portcullis server (`https://portcullis.example.com`). */
  url: string;
  /** The PEP's credential, sent as `Authorization: Bearer` (an API key or a session token); a function is asked on every call. */
  token: string | (() => string | Promise<string>);
  /**
   * How long an answer may be reused (ms; default 2000, 0 = no cache). A cached answer is never
   * used once any answer shows a newer policy version, and never past this age — which bounds how
   * late a change that is not a policy version (an identity suspended, a grant ended) is seen.
   */
  cacheTtlMs?: number;
  /** At most this many answers are kept (default 10,000; the oldest go first). */
  cacheSize?: number;
  /** Per-call timeout (ms; default 2000). A timeout is an error: the request is refused, not let through. */
  timeoutMs?: number;
  fetch?: typeof fetch;
}

/** The PDP could not answer (network, 5xx, 429, bad credential): the middleware refuses the request. */
export class PdpUnavailable extends Error {
  readonly status: number | undefined;
  constructor(message: string, status?: number) {
    super(message);
    this.name = 'PdpUnavailable';
    this.status = status;
  }
}

interface Entry {
  answer: Omit<Answer, 'cached'>;
  at: number;
}

/** JSON with sorted object keys: equal questions give equal cache keys. */
function canonical(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
    .join(',')}}`;
}

export class Pdp {
  readonly #o: Required<Omit<PdpOptions, 'fetch' | 'token'>> & Pick<PdpOptions, 'token'>;
  readonly #fetch: typeof fetch;
  readonly #endpoint: string;
  readonly #cache = new Map<string, Entry>();
  readonly #inFlight = new Map<string, Promise<Omit<Answer, 'cached'>>>();
  /** The newest policy version any answer carried. */
  #latest = -1;

  constructor(o: PdpOptions) {
    const url = new URL(o.url);
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new TypeError(`url: expected an http(s) URL, got ${url.protocol}`);
    this.#endpoint = new URL('/access/v1/evaluation', url).toString();
    this.#o = { url: o.url, token: o.token, cacheTtlMs: o.cacheTtlMs ?? 2000, cacheSize: o.cacheSize ?? 10_000, timeoutMs: o.timeoutMs ?? 2000 };
    this.#fetch = o.fetch ?? fetch;
  }

  /** The newest policy version seen in an answer (undefined before the first). */
  get policyVersion(): number | undefined {
    return this.#latest < 0 ? undefined : this.#latest;
  }

  /** May the subject do the action on the resource? Throws PdpUnavailable when Portcullis cannot answer. */
  async evaluate(e: Evaluation): Promise<Answer> {
    const key = canonical(e);
    const hit = this.#cache.get(key);
    if (hit && Date.now() - hit.at < this.#o.cacheTtlMs && (hit.answer.policyVersion ?? -1) >= this.#latest) return { ...hit.answer, cached: true };
    if (hit) this.#cache.delete(key);
    let pending = this.#inFlight.get(key);
    if (!pending) {
      pending = this.#ask(e).finally(() => this.#inFlight.delete(key));
      this.#inFlight.set(key, pending);
    }
    const answer = await pending;
    return { ...answer, cached: false };
  }

  /** Forgets every cached answer. */
  clear(): void {
    this.#cache.clear();
  }

  async #ask(e: Evaluation): Promise<Omit<Answer, 'cached'>> {
    const token = typeof this.#o.token === 'function' ? await this.#o.token() : this.#o.token;
    let res: Response;
    try {
      res = await this.#fetch(this.#endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify(e),
        redirect: 'error',
        signal: AbortSignal.timeout(this.#o.timeoutMs),
      });
    } catch (err) {
      throw new PdpUnavailable(`Portcullis did not answer: ${(err as Error).message}`);
    }
    const text = await res.text();
    if (!res.ok) {
      let detail = '';
      try {
        const p = JSON.parse(text) as { code?: string; detail?: string };
        detail = `: ${p.code ?? ''}${p.detail ? ` (${p.detail})` : ''}`;
      } catch {
        // not a problem document
      }
      throw new PdpUnavailable(`Portcullis answered ${res.status}${detail}`, res.status);
    }
    let body: { decision?: unknown; context?: { reason?: unknown } };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      throw new PdpUnavailable('Portcullis answered something that is not JSON', res.status);
    }
    if (typeof body.decision !== 'boolean') throw new PdpUnavailable('Portcullis answered without a boolean decision', res.status);
    const header = res.headers.get('portcullis-policy-version');
    const version = header !== null && /^\d{1,15}$/.test(header) ? Number(header) : undefined;
    const answer = { decision: body.decision, ...(typeof body.context?.reason === 'string' && { reason: body.context.reason }), ...(version !== undefined && { policyVersion: version }) };
    if (version !== undefined && version > this.#latest) {
      this.#latest = version;
      this.#cache.clear(); // every answer kept was made under an older version
    }
    if (this.#o.cacheTtlMs > 0 && (version ?? -1) >= this.#latest) {
      const key = canonical(e);
      this.#cache.delete(key);
      this.#cache.set(key, { answer, at: Date.now() });
      if (this.#cache.size > this.#o.cacheSize) this.#cache.delete(this.#cache.keys().next().value!);
    }
    return answer;
  }
}
