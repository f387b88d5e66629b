// The HTTP edge's settings: trusted proxies and timeouts under `listen`, login rate limits
// (`limits`) and where `/metrics` is served (`metrics`). Validated here so load.ts stays small.
import { isIP } from 'node:net';
import type { Node, ObjectNode } from './reader.ts';

export interface ListenTimeouts {
  /** A client must send its complete request headers within this (slow-loris bound). */
  headers_ms: number;
  /** A whole request (headers and body) must arrive within this. */
  request_ms: number;
  /** An idle keep-alive connection is closed after this. */
  idle_ms: number;
  /** On SIGTERM/SIGINT, in-flight requests get this long to finish before connections are cut. */
  shutdown_ms: number;
}

export interface RateLimit {
  requests: number;
  window_ms: number;
}

export interface LimitsConfig {
  /** Every authentication endpoint: per client address and per presented key id / identity. */
  login: { per_address: RateLimit; per_key: RateLimit; max_tracked: number };
}

export interface MetricsConfig {
  /** Serve `/metrics` on its own listener (and not on the API listener). */
  listen?: { host: string; port: number };
  /** Require `Authorization: Bearer <token>` for `/metrics` (the token comes from `token_env`). */
  token?: string;
  token_env?: string;
}

export const DEFAULT_TIMEOUTS: ListenTimeouts = { headers_ms: 10_000, request_ms: 30_000, idle_ms: 5_000, shutdown_ms: 10_000 };
export const DEFAULT_LIMITS: LimitsConfig = {
  login: { per_address: { requests: 120, window_ms: 60_000 }, per_key: { requests: 30, window_ms: 60_000 }, max_tracked: 100_000 },
};

/** `listen.trusted_proxies`: a CIDR (or single address) list, IPv4 or IPv6. */
export function trustedProxies(n: Node | undefined): string[] {
  if (!n) return [];
  return n.list().map((item) => {
    const s = item.string({ max: 64 });
    const [addr, prefix, more] = s.split('/');
    const family = isIP(addr ?? '');
    if (family === 0 || more !== undefined) item.fail(`"${s}" is not an IP address or CIDR like 10.0.0.0/8 or fd00::/8`);
    if (prefix !== undefined) {
      const max = family === 4 ? 32 : 128;
      if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > max) item.fail(`"${s}": the prefix length must be 0 to ${max}`);
    }
    return s;
  });
}

export function listenTimeouts(n: Node | undefined): ListenTimeouts {
  const o = n?.object(['headers', 'request', 'idle', 'shutdown']);
  const t = {
    headers_ms: o?.optional('headers')?.duration() ?? DEFAULT_TIMEOUTS.headers_ms,
    request_ms: o?.optional('request')?.duration() ?? DEFAULT_TIMEOUTS.request_ms,
    idle_ms: o?.optional('idle')?.duration() ?? DEFAULT_TIMEOUTS.idle_ms,
    shutdown_ms: o?.optional('shutdown')?.duration() ?? DEFAULT_TIMEOUTS.shutdown_ms,
  };
  for (const [k, v] of Object.entries(t)) {
    if (v > 600_000) o!.get(k.replace('_ms', '')).fail('must be at most 10m');
  }
  if (t.request_ms < t.headers_ms) o!.get('request').fail('must be at least listen.timeouts.headers');
  return t;
}

export function limitsConfig(n: Node | undefined): LimitsConfig {
  const o = n?.object(['login']);
  const login = o?.optional('login')?.object(['per_address', 'per_key', 'max_tracked']);
  const limit = (key: string, d: RateLimit): RateLimit => {
    const l = login?.optional(key)?.object(['requests', 'window']);
    return { requests: l?.optional('requests')?.integer(1, 1_000_000) ?? d.requests, window_ms: l?.optional('window')?.duration() ?? d.window_ms };
  };
  return {
    login: {
      per_address: limit('per_address', DEFAULT_LIMITS.login.per_address),
      per_key: limit('per_key', DEFAULT_LIMITS.login.per_key),
      max_tracked: login?.optional('max_tracked')?.integer(100, 10_000_000) ?? DEFAULT_LIMITS.login.max_tracked,
    },
  };
}

export function metricsConfig(n: Node | undefined, env: NodeJS.ProcessEnv): MetricsConfig {
  const o: ObjectNode | undefined = n?.object(['listen', 'token_env']);
  if (!o) return {};
  const l = o.optional('listen')?.object(['host', 'port']);
  const out: MetricsConfig = {};
  if (l) out.listen = { host: l.optional('host')?.string() ?? '127.0.0.1', port: l.required('port').integer(1, 65535) };
  const tokenEnv = o.optional('token_env');
  if (tokenEnv) {
    const name = tokenEnv.string({ pattern: /^[A-Za-z_][A-Za-z0-9_]{0,127}$/, hint: 'must be an environment variable name' });
    const token = env[name];
    if (token === undefined || token === '') return tokenEnv.fail(`environment variable ${name} is not set`);
    if (token.length < 16) tokenEnv.fail(`the token in ${name} must be at least 16 characters`);
    out.token = token;
    out.token_env = name;
  }
  return out;
}
