// The HTTP edge in front of the routes: who the client is (X-Forwarded-For only from trusted
// proxies, via Fastify's trustProxy), rate limits on every authentication endpoint, JSON-only
// login bodies, and the bearer token in front of /metrics. See docs/http-edge.md.
import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import { decodeJwt } from 'jose';
import type { Broker } from '../broker/index.ts';
import type { LimitsConfig } from '../config/server.ts';
import { DEFAULT_LIMITS } from '../config/server.ts';
import { problem, sendProblem } from './problem.ts';
import { FixedWindowLimiter } from '../common/rate-limit.ts';
import type { Verdict } from '../common/rate-limit.ts';

export { FixedWindowLimiter } from '../common/rate-limit.ts';
export type { Verdict } from '../common/rate-limit.ts';

/** The rate-limit bucket of a client address: IPv4 (v4-mapped IPv6 folded to IPv4) or an IPv6 /64. */
export function addressBucket(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return mapped[1]!;
  if (isIP(ip) !== 6) return ip;
  // Expand and keep the first four groups: one host with a /64 must not get 2^64 buckets.
  const [head = '', tail = ''] = ip.toLowerCase().split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === '' ? [] : tail.split(':');
  const groups = ip.includes('::') ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

type KeyOf = (req: FastifyRequest) => string | undefined;

const sha = (s: string) => createHash('sha256').update(s).digest('hex').slice(0, 16);

/** The identity a JWT claims (unverified: only a bucket name, never trusted for anything else). */
function jwtKey(token: unknown): string {
  if (typeof token !== 'string') return 'jwt:malformed';
  try {
    const c = decodeJwt(token);
    return `jwt:${sha(`${String(c.iss)}\u0000${String(c.sub)}`)}`;
  } catch {
    return 'jwt:malformed';
  }
}

function apiKeyKey(key: unknown): string {
  const m = typeof key === 'string' ? /^pcx_([0-9A-Za-z]{10})/.exec(key) : null;
  return m ? `apikey:${m[1]}` : 'apikey:malformed';
}

const body = (req: FastifyRequest): Record<string, unknown> => (typeof req.body === 'object' && req.body !== null ? (req.body as Record<string, unknown>) : {});
const query = (req: FastifyRequest): Record<string, unknown> => (typeof req.query === 'object' && req.query !== null ? (req.query as Record<string, unknown>) : {});

/**
 * Every authentication endpoint and what names the key it presents. A route added under
 * /v1/auth/ or /oauth2/ that is not listed here fails the server at start (see loginEdge).
 */
const AUTH_ENDPOINTS: Record<string, { keyOf: KeyOf; jsonOnly: boolean }> = {
  'POST /v1/auth/token': {
    jsonOnly: true,
    keyOf: (req) => {
      const b = body(req);
      if (b.bootstrap !== undefined) return 'bootstrap';
      if (b.api_key !== undefined) return apiKeyKey(b.api_key);
      if (b.token !== undefined) return jwtKey(b.token);
      return undefined; // a client certificate: the per-address limit applies
    },
  },
  'POST /oauth2/token': { jsonOnly: false, keyOf: (req) => jwtKey(body(req).subject_token) },
  'GET /v1/auth/login': { jsonOnly: false, keyOf: (req) => `trust:${String(query(req).trust ?? '')}` },
  'POST /v1/auth/callback': { jsonOnly: true, keyOf: (req) => `state:${sha(String(body(req).state))}` },
  'POST /v1/auth/device': { jsonOnly: true, keyOf: (req) => `trust:${String(body(req).trust ?? '')}` },
  'POST /v1/auth/device/poll': { jsonOnly: true, keyOf: (req) => `handle:${sha(String(body(req).handle))}` },
  // The console's browser sign-in (src/server/console.ts): limited like the API's.
  'GET /console/login': { jsonOnly: false, keyOf: () => 'trust:' },
  'GET /console/callback': { jsonOnly: false, keyOf: (req) => `state:${sha(String(query(req).state))}` },
};

/** Routes under these prefixes that answer without a session are authentication endpoints. */
const AUTH_PREFIXES = ['/v1/auth/', '/oauth2/', '/console/login', '/console/callback'];

function mediaType(req: FastifyRequest): string {
  return (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
}

function hasBody(req: FastifyRequest): boolean {
  const len = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (len !== undefined && len !== '0');
}

/** Installs the limits on the authentication routes; call before the routes are registered. */
export function loginEdge(app: FastifyInstance, broker: Broker, limits: LimitsConfig = DEFAULT_LIMITS): void {
  const perAddress = new FixedWindowLimiter(limits.login.per_address, limits.login.max_tracked);
  const perKey = new FixedWindowLimiter(limits.login.per_key, limits.login.max_tracked);

  const refuse = (req: FastifyRequest, reply: FastifyReply, endpoint: string, scope: 'address' | 'key', key: string, v: Verdict) => {
    broker.metrics.rateLimited.inc({ endpoint, scope });
    if (v.firstRefusal) {
      // One event per key and window: a flood must not become an audit flood.
      const limiter = scope === 'address' ? perAddress : perKey;
      broker
        .recordRateLimited({ endpoint, scope, bucket: key, sourceIp: req.ip, limit: limiter.limit.requests, windowSeconds: Math.round(limiter.limit.window_ms / 1000) })
        .catch((err: unknown) => req.log.error({ err }, 'cannot audit a rate limit'));
    }
    reply.header('retry-after', String(v.retryAfterS));
    return sendProblem(reply, problem(429, 'rate_limited', `too many authentication attempts; retry after ${v.retryAfterS} s`));
  };

  app.addHook('onRoute', (route: RouteOptions) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    if (!AUTH_PREFIXES.some((p) => route.url.startsWith(p)) || route.preHandler !== undefined) return;
    for (const method of methods) {
      // Fastify answers HEAD with the GET handler: it is limited like the GET.
      const endpoint = `${method === 'HEAD' ? 'GET' : method} ${route.url}`;
      const spec = AUTH_ENDPOINTS[endpoint];
      if (!spec) throw new Error(`authentication endpoint ${endpoint} has no rate-limit key (src/server/edge.ts AUTH_ENDPOINTS)`);
      const onRequest = async (req: FastifyRequest, reply: FastifyReply) => {
        if (spec.jsonOnly && hasBody(req) && mediaType(req) !== 'application/json') {
          // A form or text body is what a cross-site page can send without a preflight.
          return sendProblem(reply, problem(415, 'unsupported_media_type', `${route.url} accepts only application/json`));
        }
        const address = addressBucket(req.ip);
        const v = perAddress.hit(`ip:${address}`);
        if (!v.allowed) return refuse(req, reply, route.url, 'address', address, v);
        return undefined;
      };
      const preValidation = async (req: FastifyRequest, reply: FastifyReply) => {
        const key = spec.keyOf(req);
        if (key === undefined) return undefined;
        const v = perKey.hit(key);
        if (!v.allowed) return refuse(req, reply, route.url, 'key', key, v);
        return undefined;
      };
      route.onRequest = [...toArray(route.onRequest), onRequest];
      route.preValidation = [...toArray(route.preValidation), preValidation];
    }
  });
}

function toArray<T>(v: T | T[] | undefined): T[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

/** `Authorization: Bearer <token>` for /metrics; compared in constant time. */
export function metricsTokenCheck(token: string) {
  const want = createHash('sha256').update(token).digest();
  return async (req: FastifyRequest, reply: FastifyReply) => {
    const m = /^bearer +(\S+)$/i.exec(req.headers.authorization ?? '');
    const got = createHash('sha256').update(m?.[1] ?? '').digest();
    if (!m || !timingSafeEqual(got, want)) {
      reply.header('www-authenticate', 'Bearer realm="metrics"');
      return sendProblem(reply, problem(401, 'unauthenticated', 'metrics need the metrics bearer token'));
    }
    return undefined;
  };
}
