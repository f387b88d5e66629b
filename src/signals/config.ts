// The `signals:` section of portcullis.yaml (OpenID Shared Signals / CAEP, docs/signals.md): the
// transmitters this receiver trusts (each bound to one trust) and the receivers it transmits to.
// Secrets come from the environment (`*_env`, never inline). Errors are ConfigErrors naming the field.
import type { JsonWebKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError, describe, duration, forbidden, integer, mapping, oneOf, text, validateConfig, z } from '../common/validation.ts';

/** Asymmetric JWS algorithms only (= identity/jwt.ts ASYMMETRIC_ALGORITHMS; not imported: keeps jose out of config loading). */
const ASYMMETRIC_ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];
const NAME = { pattern: /^[a-z][a-z0-9-]{0,62}$/, hint: 'must be a lowercase name like "idp"' };
const ENV_NAME = { max: 512, pattern: /^[A-Z_][A-Z0-9_]*$/, hint: 'must be an environment variable name' };

/** The CAEP events Portcullis transmits. */
export const TRANSMITTED_EVENTS = ['session-revoked', 'credential-change'] as const;
export type TransmittedEvent = (typeof TRANSMITTED_EVENTS)[number];

/** A transmitter this receiver accepts pushes from. */
export interface TransmitterConfig {
  name: string;
  /** Exact `iss` of its SETs. */
  issuer: string;
  /** Exactly one of jwks_uri / jwks. */
  jwks_uri?: string;
  jwks?: { keys: JsonWebKey[] };
  algorithms: string[];
  /** The trust whose identities its subjects may name (and no other). */
  trust: string;
  /** The `Authorization: Bearer` value it pushes with, from `push_auth.bearer_env` (never logged). */
  bearer: string;
}

/** A receiver Portcullis pushes SETs to (a statically configured stream). */
export interface ReceiverConfig {
  name: string;
  endpoint: string;
  /** `aud` of the SETs sent to it. */
  audience: string;
  /** `Authorization: Bearer` value sent with each push, from `bearer_env` (never logged). */
  bearer?: string;
  events: TransmittedEvent[];
}

export interface SignalsConfig {
  receiver?: {
    /** `aud` a SET must carry (default: Portcullis' public URL). */
    audience?: string;
    /** A SET whose `iat` is older than this (ms) is refused. */
    max_age_ms: number;
    /** Allowed clock skew for an `iat` in the future (ms). */
    leeway_ms: number;
    transmitters: TransmitterConfig[];
  };
  transmitter?: {
    receivers: ReceiverConfig[];
    max_attempts: number;
    backoff_base_ms: number;
    timeout_ms: number;
  };
}

const httpUrl = (loopbackHttp: boolean) =>
  text({ max: 2048 }).superRefine((s, ctx) => {
    if (!URL.canParse(s)) return void ctx.addIssue({ code: 'custom', message: 'must be an absolute https URL' });
    const u = new URL(s);
    const loopback = ['127.0.0.1', '[::1]', 'localhost'].includes(u.hostname);
    if (u.protocol !== 'https:' && !(u.protocol === 'http:' && (loopbackHttp || loopback))) ctx.addIssue({ code: 'custom', message: 'must be https (plain http only on loopback)' });
    if (u.username || u.password) ctx.addIssue({ code: 'custom', message: 'must not carry credentials (user:password@)' });
  });

const TRANSMITTER = mapping({
  name: text(NAME),
  issuer: text({ max: 2048 }),
  jwks_uri: httpUrl(false).optional(),
  // A JWKS inline, or the path of a JWKS file (relative to the config file).
  jwks: z.union([text(), z.looseObject({ keys: z.array(z.record(z.string(), z.unknown())).min(1) })], { error: 'must be a JWKS: {keys: [...]} with at least one key' }).optional(),
  algorithms: z
    .array(z.string().refine((a) => ASYMMETRIC_ALGS.includes(a), { error: (iss) => `${describe(iss.input)} is not allowed: only asymmetric algorithms (${ASYMMETRIC_ALGS.join(', ')})` }))
    .min(1)
    .default(['RS256', 'ES256', 'EdDSA']),
  trust: text(NAME),
  push_auth: mapping({ bearer_env: text(ENV_NAME), bearer: forbidden('secrets are not accepted inline; use bearer_env') }),
}).refine((o) => (o.jwks_uri === undefined) !== (o.jwks === undefined), 'needs exactly one of jwks_uri or jwks');

const RECEIVER = mapping({
  name: text(NAME),
  endpoint: httpUrl(false),
  audience: text({ max: 2048 }),
  bearer_env: text(ENV_NAME).optional(),
  bearer: forbidden('secrets are not accepted inline; use bearer_env'),
  events: z.array(oneOf(TRANSMITTED_EVENTS)).min(1).default([...TRANSMITTED_EVENTS]),
});

/** `signals:` as written. */
export const SIGNALS = mapping({
  receiver: mapping({
    audience: text({ max: 2048 }).optional(),
    max_age: duration({ numbers: 'seconds', min: 1000, max: 7 * 86_400_000 }).default(3_600_000),
    leeway: duration({ numbers: 'seconds', max: 300_000 }).default(30_000),
    transmitters: z.array(TRANSMITTER).min(1),
  }).optional(),
  transmitter: mapping({
    receivers: z.array(RECEIVER).min(1),
    max_attempts: integer(1, 20).default(6),
    backoff_base: duration({ numbers: 'seconds', min: 10, max: 3_600_000 }).default(1000),
    timeout: duration({ numbers: 'seconds', min: 100, max: 60_000 }).default(5000),
  }).optional(),
}).optional();

function secret(env: NodeJS.ProcessEnv, name: string, path: string): string {
  const v = env[name];
  if (v === undefined || v.length < 16) throw new ConfigError(path, `environment variable ${name} must hold the secret (at least 16 characters)`);
  return v;
}

function unique(list: readonly { name: string }[], path: string): void {
  const seen = new Set<string>();
  list.forEach((x, i) => {
    if (seen.has(x.name)) throw new ConfigError(`${path}[${i}].name`, `duplicate name "${x.name}"`);
    seen.add(x.name);
  });
}

/** The parsed section with its secrets and JWKS files read; `trusts` are the configured trust names. */
export function signalsConfig(raw: z.output<typeof SIGNALS>, o: { baseDir: string; env: NodeJS.ProcessEnv; trusts: readonly string[] }): SignalsConfig | undefined {
  if (raw === undefined) return undefined;
  const out: SignalsConfig = {};
  if (raw.receiver) {
    const at = 'signals.receiver.transmitters';
    unique(raw.receiver.transmitters, at);
    const transmitters = raw.receiver.transmitters.map((t, i): TransmitterConfig => {
      if (!o.trusts.includes(t.trust)) throw new ConfigError(`${at}[${i}].trust`, `no trust named "${t.trust}" (known: ${o.trusts.join(', ') || 'none'}): a transmitter's subjects resolve within one configured trust`);
      return {
        name: t.name,
        issuer: t.issuer,
        ...(t.jwks_uri !== undefined && { jwks_uri: t.jwks_uri }),
        ...(t.jwks !== undefined && { jwks: jwksOf(t.jwks, o.baseDir, `${at}[${i}].jwks`) }),
        algorithms: t.algorithms,
        trust: t.trust,
        bearer: secret(o.env, t.push_auth.bearer_env, `${at}[${i}].push_auth.bearer_env`),
      };
    });
    out.receiver = { ...(raw.receiver.audience !== undefined && { audience: raw.receiver.audience }), max_age_ms: raw.receiver.max_age, leeway_ms: raw.receiver.leeway, transmitters };
  }
  if (raw.transmitter) {
    const at = 'signals.transmitter.receivers';
    unique(raw.transmitter.receivers, at);
    out.transmitter = {
      receivers: raw.transmitter.receivers.map((r, i) => ({
        name: r.name,
        endpoint: r.endpoint,
        audience: r.audience,
        ...(r.bearer_env !== undefined && { bearer: secret(o.env, r.bearer_env, `${at}[${i}].bearer_env`) }),
        events: [...new Set(r.events)],
      })),
      max_attempts: raw.transmitter.max_attempts,
      backoff_base_ms: raw.transmitter.backoff_base,
      timeout_ms: raw.transmitter.timeout,
    };
  }
  return out;
}

function jwksOf(v: string | { keys: Record<string, unknown>[] }, baseDir: string, path: string): { keys: JsonWebKey[] } {
  if (typeof v !== 'string') return v as { keys: JsonWebKey[] };
  const file = resolve(baseDir, v);
  let jwks: unknown;
  try {
    jwks = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    throw new ConfigError(path, `cannot read a JWKS from ${file}`);
  }
  return validateConfig(z.object({ keys: z.array(z.record(z.string(), z.unknown())).min(1) }), jwks, path) as { keys: JsonWebKey[] };
}
