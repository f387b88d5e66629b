// The HTTP edge's settings: trusted proxies and timeouts under `listen`, login rate limits
// (`limits`), where `/metrics` is served (`metrics`) and the operational log (`log`). Validated
// here so load.ts stays small.
import { isIP } from 'node:net';
import { ConfigError, duration, integer, oneOf, section, text, z } from '../common/validation.ts';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface LogConfig {
  /** Least severe level written (default info); `PORTCULLIS_LOG_LEVEL` overrides it. */
  level: LogLevel;
  /** `json` (one object per line, default) or `pretty` (for a person at a terminal; the dev server). */
  format: 'json' | 'pretty';
}

export const LOG = section({
  level: oneOf(LOG_LEVELS).optional(),
  format: oneOf(['json', 'pretty']).optional(),
}).optional();

/** The log settings, `PORTCULLIS_LOG_LEVEL` winning over the file. */
export function logConfig(l: z.output<typeof LOG>, env: NodeJS.ProcessEnv): LogConfig {
  const fromEnv = env.PORTCULLIS_LOG_LEVEL;
  if (fromEnv !== undefined && fromEnv !== '' && !(LOG_LEVELS as readonly string[]).includes(fromEnv)) {
    throw new ConfigError('log.level', `PORTCULLIS_LOG_LEVEL is "${fromEnv}"; expected one of ${LOG_LEVELS.join(', ')}`);
  }
  return { level: (fromEnv || l?.level || 'info') as LogLevel, format: l?.format ?? 'json' };
}

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
export const TRUSTED_PROXIES = z.array(
  text({ max: 64 }).superRefine((s, ctx) => {
    const [addr, prefix, more] = s.split('/');
    const family = isIP(addr ?? '');
    if (family === 0 || more !== undefined) return void ctx.addIssue({ code: 'custom', message: `"${s}" is not an IP address or CIDR like 10.0.0.0/8 or fd00::/8` });
    const max = family === 4 ? 32 : 128;
    if (prefix !== undefined && (!/^\d{1,3}$/.test(prefix) || Number(prefix) > max)) ctx.addIssue({ code: 'custom', message: `"${s}": the prefix length must be 0 to ${max}` });
  }),
);

const upTo10m = () => duration({ numbers: 'seconds', max: 600_000, range: 'must be at most 10m' });

/** `listen.timeouts` → ListenTimeouts (defaults DEFAULT_TIMEOUTS). */
export const LISTEN_TIMEOUTS = section({
  headers: upTo10m().default(DEFAULT_TIMEOUTS.headers_ms),
  request: upTo10m().default(DEFAULT_TIMEOUTS.request_ms),
  idle: upTo10m().default(DEFAULT_TIMEOUTS.idle_ms),
  shutdown: upTo10m().default(DEFAULT_TIMEOUTS.shutdown_ms),
})
  .refine((t) => t.request >= t.headers, { path: ['request'], message: 'must be at least listen.timeouts.headers' })
  .transform((t): ListenTimeouts => ({ headers_ms: t.headers, request_ms: t.request, idle_ms: t.idle, shutdown_ms: t.shutdown }))
  .default({ ...DEFAULT_TIMEOUTS });

const rateLimit = (d: RateLimit) =>
  section({ requests: integer(1, 1_000_000).default(d.requests), window: duration({ numbers: 'seconds' }).default(d.window_ms) })
    .transform((l): RateLimit => ({ requests: l.requests, window_ms: l.window }))
    .default({ ...d });

/** `limits` → LimitsConfig (defaults DEFAULT_LIMITS). */
export const LIMITS = section({
  login: section({
    per_address: rateLimit(DEFAULT_LIMITS.login.per_address),
    per_key: rateLimit(DEFAULT_LIMITS.login.per_key),
    max_tracked: integer(100, 10_000_000).default(DEFAULT_LIMITS.login.max_tracked),
  }).default({ per_address: { ...DEFAULT_LIMITS.login.per_address }, per_key: { ...DEFAULT_LIMITS.login.per_key }, max_tracked: DEFAULT_LIMITS.login.max_tracked }),
}).default({ login: { per_address: { ...DEFAULT_LIMITS.login.per_address }, per_key: { ...DEFAULT_LIMITS.login.per_key }, max_tracked: DEFAULT_LIMITS.login.max_tracked } });

/** `metrics` as written; metricsConfig reads the token from `token_env`. */
export const METRICS = section({
  listen: section({ host: text().default('127.0.0.1'), port: integer(1, 65535) }).optional(),
  token_env: text({ max: 128, pattern: /^[A-Za-z_][A-Za-z0-9_]{0,127}$/, hint: 'must be an environment variable name' }).optional(),
}).optional();

export function metricsConfig(m: z.output<typeof METRICS>, env: NodeJS.ProcessEnv, path = 'metrics'): MetricsConfig {
  if (!m) return {};
  const out: MetricsConfig = {};
  if (m.listen) out.listen = { host: m.listen.host, port: m.listen.port };
  if (m.token_env !== undefined) {
    const name = m.token_env;
    const token = env[name];
    if (token === undefined || token === '') throw new ConfigError(`${path}.token_env`, `environment variable ${name} is not set`);
    if (token.length < 16) throw new ConfigError(`${path}.token_env`, `the token in ${name} must be at least 16 characters`);
    out.token = token;
    out.token_env = name;
  }
  return out;
}
