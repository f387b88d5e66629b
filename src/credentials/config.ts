// Validates the raw `targets:` section of portcullis.yaml. Every error names the offending path
// (`targets[0].permissions.readonly`). Secrets are never accepted inline: the PostgreSQL admin
// password is read from the environment variable named by `password_env`.
import { InvalidInput } from '../common/errors.ts';
import { parseDuration } from '../common/duration.ts';
import type { TargetKind } from './types.ts';

/**
 * What revocation does with objects the lease's role created: `drop_objects` (default) drops
 * them; `keep_objects` hands them to the target's keeper role (NOLOGIN, nothing beyond the
 * schemas), never to the admin connection's role.
 */
export type OnRevoke = 'drop_objects' | 'keep_objects';
export const ON_REVOKE: readonly OnRevoke[] = ['drop_objects', 'keep_objects'];

export type PostgresPermission = (
  | { preset: 'readonly' | 'readwrite'; schemas: string[] }
  /** Single GRANT statements with `{{role}}` where the generated role name goes. */
  | { statements: string[] }
) & { on_revoke?: OnRevoke };

/** Limits on every call to a target, so a target that stops answering cannot hang the broker. */
export interface TargetTimeouts {
  /** TCP connect + authentication. */
  connect_ms: number;
  /** Server-side statement_timeout; the client gives up at this + 1 s (query_timeout). */
  statement_ms: number;
  /** Server-side idle_in_transaction_session_timeout. */
  idle_in_transaction_ms: number;
  /** TCP keepalive initial delay. */
  keepalive_ms: number;
}

export const DEFAULT_TARGET_TIMEOUTS: TargetTimeouts = { connect_ms: 5000, statement_ms: 10_000, idle_in_transaction_ms: 10_000, keepalive_ms: 10_000 };

export interface PostgresTarget {
  name: string;
  kind: 'postgres';
  host: string;
  port: number;
  database: string;
  admin: { user: string; password_env: string };
  permissions: Record<string, PostgresPermission>;
  max_ttl_ms: number;
  default_ttl_ms: number;
  connection_limit: number;
  timeouts: TargetTimeouts;
}

export const SSH_EXTENSIONS = [
  'permit-pty',
  'permit-agent-forwarding',
  'permit-port-forwarding',
  'permit-X11-forwarding',
  'permit-user-rc',
] as const;
export type SshExtension = (typeof SSH_EXTENSIONS)[number];

export interface SshTarget {
  name: string;
  kind: 'ssh';
  hosts: string[];
  /** Identity id pattern (exact, or ending in `*`) → login principals it may use. */
  principals: Record<string, string[]>;
  max_ttl_ms: number;
  default_ttl_ms: number;
  /** CIDR list for the `source-address` critical option. */
  source_address?: string[];
  extensions: SshExtension[];
}

export interface ApiTarget {
  name: string;
  kind: 'api';
  audience: string;
  scopes: string[];
  max_ttl_ms: number;
  default_ttl_ms: number;
  /** Longest delegation chain (number of actors in `act`) a token exchange may produce. */
  max_delegation_depth: number;
}

export interface SpiffeX509Target {
  name: string;
  kind: 'spiffe-x509';
  trust_domain: string;
  max_ttl_ms: number;
  default_ttl_ms: number;
}

export type TargetConfig = PostgresTarget | SshTarget | ApiTarget | SpiffeX509Target;

type Obj = Record<string, unknown>;

const NAME_RE = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const HARD_MAX_TTL_MS = 7 * 86_400_000;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function onlyKeys(o: Obj, path: string, allowed: readonly string[]): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) throw new InvalidInput(`${path}.${k}: unknown field`, `${path}.${k}`);
  }
}

function str(o: Obj, key: string, path: string, opts: { optional?: boolean; re?: RegExp; hint?: string } = {}): string {
  const v = o[key];
  const p = `${path}.${key}`;
  if (v === undefined && opts.optional) return '';
  if (typeof v !== 'string' || v.trim() === '') throw new InvalidInput(`${p}: required non-empty string`, p);
  if (opts.re && !opts.re.test(v)) throw new InvalidInput(`${p}: ${opts.hint ?? 'invalid value'}`, p);
  return v;
}

function strList(v: unknown, p: string, opts: { nonEmpty?: boolean; re?: RegExp; hint?: string } = {}): string[] {
  if (!Array.isArray(v)) throw new InvalidInput(`${p}: expected a list of strings`, p);
  if (opts.nonEmpty && v.length === 0) throw new InvalidInput(`${p}: must not be empty`, p);
  return v.map((x, i) => {
    if (typeof x !== 'string' || x === '') throw new InvalidInput(`${p}[${i}]: expected a non-empty string`, `${p}[${i}]`);
    if (opts.re && !opts.re.test(x)) throw new InvalidInput(`${p}[${i}]: ${opts.hint ?? 'invalid value'}`, `${p}[${i}]`);
    return x;
  });
}

function ttls(o: Obj, path: string): { max_ttl_ms: number; default_ttl_ms: number } {
  const max = parseDuration(str(o, 'max_ttl', path), `${path}.max_ttl`);
  if (max <= 0 || max > HARD_MAX_TTL_MS) throw new InvalidInput(`${path}.max_ttl: must be between 1s and 7d`, `${path}.max_ttl`);
  const def = o.default_ttl === undefined ? Math.min(max, 15 * 60_000) : parseDuration(str(o, 'default_ttl', path), `${path}.default_ttl`);
  if (def <= 0 || def > max) throw new InvalidInput(`${path}.default_ttl: must be positive and at most max_ttl`, `${path}.default_ttl`);
  return { max_ttl_ms: max, default_ttl_ms: def };
}

const ENV_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const PG_IDENT_RE = /^[A-Za-z_][A-Za-z0-9_$]{0,62}$/;

function postgres(o: Obj, path: string, name: string): PostgresTarget {
  onlyKeys(o, path, ['name', 'kind', 'host', 'port', 'database', 'admin', 'permissions', 'max_ttl', 'default_ttl', 'connection_limit', 'timeouts']);
  const host = str(o, 'host', path);
  const port = o.port === undefined ? 5432 : o.port;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new InvalidInput(`${path}.port: expected an integer 1-65535`, `${path}.port`);
  }
  const database = str(o, 'database', path);
  const ap = `${path}.admin`;
  if (!isObj(o.admin)) throw new InvalidInput(`${ap}: required object with user and password_env`, ap);
  if ('password' in o.admin) {
    throw new InvalidInput(`${ap}.password: plain-text passwords are not accepted; use password_env`, `${ap}.password`);
  }
  onlyKeys(o.admin, ap, ['user', 'password_env']);
  const admin = {
    user: str(o.admin, 'user', ap),
    password_env: str(o.admin, 'password_env', ap, { re: ENV_RE, hint: 'expected an environment variable name' }),
  };
  const pp = `${path}.permissions`;
  if (!isObj(o.permissions) || Object.keys(o.permissions).length === 0) {
    throw new InvalidInput(`${pp}: required map of permission set name → readonly | readwrite | { statements }`, pp);
  }
  const permissions: Record<string, PostgresPermission> = {};
  for (const [pname, raw] of Object.entries(o.permissions)) {
    const p = `${pp}.${pname}`;
    if (!NAME_RE.test(pname)) throw new InvalidInput(`${p}: invalid permission set name`, p);
    permissions[pname] = postgresPermission(raw, p);
  }
  const limit = o.connection_limit === undefined ? 5 : o.connection_limit;
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > 1000) {
    throw new InvalidInput(`${path}.connection_limit: expected an integer 1-1000`, `${path}.connection_limit`);
  }
  return { name, kind: 'postgres', host, port, database, admin, permissions, ...ttls(o, path), connection_limit: limit, timeouts: timeouts(o.timeouts, `${path}.timeouts`) };
}

function timeouts(raw: unknown, p: string): TargetTimeouts {
  if (raw === undefined) return { ...DEFAULT_TARGET_TIMEOUTS };
  if (!isObj(raw)) throw new InvalidInput(`${p}: expected { connect, statement, idle_in_transaction, keepalive }`, p);
  onlyKeys(raw, p, ['connect', 'statement', 'idle_in_transaction', 'keepalive']);
  const one = (key: string, def: number, max: number): number => {
    if (raw[key] === undefined) return def;
    const ms = parseDuration(str(raw, key, p), `${p}.${key}`);
    if (ms < 100 || ms > max) throw new InvalidInput(`${p}.${key}: must be between 100ms and ${max / 1000}s`, `${p}.${key}`);
    return ms;
  };
  const d = DEFAULT_TARGET_TIMEOUTS;
  return {
    connect_ms: one('connect', d.connect_ms, 120_000),
    statement_ms: one('statement', d.statement_ms, 600_000),
    idle_in_transaction_ms: one('idle_in_transaction', d.idle_in_transaction_ms, 600_000),
    keepalive_ms: one('keepalive', d.keepalive_ms, 600_000),
  };
}

function onRevoke(raw: Obj, p: string): { on_revoke?: OnRevoke } {
  if (raw.on_revoke === undefined) return {};
  if (!(ON_REVOKE as readonly unknown[]).includes(raw.on_revoke)) {
    throw new InvalidInput(`${p}.on_revoke: expected ${ON_REVOKE.join(' or ')}`, `${p}.on_revoke`);
  }
  return { on_revoke: raw.on_revoke as OnRevoke };
}

function postgresPermission(raw: unknown, p: string): PostgresPermission {
  if (raw === 'readonly' || raw === 'readwrite') return { preset: raw, schemas: ['public'] };
  if (Array.isArray(raw)) return { statements: grantStatements(raw, p) };
  if (isObj(raw)) {
    if (raw.preset !== undefined) {
      onlyKeys(raw, p, ['preset', 'schemas', 'on_revoke']);
      if (raw.preset !== 'readonly' && raw.preset !== 'readwrite') {
        throw new InvalidInput(`${p}.preset: expected readonly or readwrite`, `${p}.preset`);
      }
      const schemas = raw.schemas === undefined ? ['public'] : strList(raw.schemas, `${p}.schemas`, { nonEmpty: true, re: PG_IDENT_RE, hint: 'expected a schema name' });
      return { preset: raw.preset, schemas, ...onRevoke(raw, p) };
    }
    onlyKeys(raw, p, ['statements', 'on_revoke']);
    return { statements: grantStatements(raw.statements, `${p}.statements`), ...onRevoke(raw, p) };
  }
  throw new InvalidInput(`${p}: expected readonly, readwrite, a list of GRANT statements or { preset | statements }`, p);
}

function grantStatements(raw: unknown, p: string): string[] {
  const list = strList(raw, p, { nonEmpty: true });
  list.forEach((s, i) => {
    // Only single GRANT statements to the generated role: a permission set must not be able to
    // run arbitrary admin SQL or grant to anyone else.
    // Exactly: GRANT <privileges ON objects | role> TO {{role}} — the role once, as the only
    // grantee, at the end. Not `TO {{role}}, other`, not `GRANT {{role}} TO other` (membership in
    // the lease for someone else), not WITH GRANT/ADMIN OPTION (the lease would hand the privilege
    // on to others), not GRANTED BY, no comments that could hide any of these.
    if (!/^\s*GRANT\s[\s\S]*\sTO\s+\{\{role\}\}\s*$/i.test(s) || s.split('{{role}}').length !== 2 || s.includes(';') || /--|\/\*/.test(s)) {
      throw new InvalidInput(`${p}[${i}]: expected a single GRANT statement ending in TO {{role}} (the generated role as the only grantee, no WITH GRANT OPTION)`, `${p}[${i}]`);
    }
  });
  return list;
}

const PRINCIPAL_RE = /^[A-Za-z0-9._@-]{1,64}$/;
const CIDR_RE = /^(\d{1,3}(\.\d{1,3}){3}(\/\d{1,2})?|[0-9a-fA-F:]+(\/\d{1,3})?)$/;

function ssh(o: Obj, path: string, name: string): SshTarget {
  onlyKeys(o, path, ['name', 'kind', 'hosts', 'principals', 'max_ttl', 'default_ttl', 'source_address', 'extensions']);
  const hosts = strList(o.hosts, `${path}.hosts`, { nonEmpty: true });
  const pp = `${path}.principals`;
  if (!isObj(o.principals) || Object.keys(o.principals).length === 0) {
    throw new InvalidInput(`${pp}: required map of identity pattern → list of login principals`, pp);
  }
  const principals: Record<string, string[]> = {};
  for (const [pattern, list] of Object.entries(o.principals)) {
    const p = `${pp}.${pattern}`;
    if (pattern.indexOf('*') !== -1 && pattern.indexOf('*') !== pattern.length - 1) {
      throw new InvalidInput(`${p}: only a trailing * is supported in identity patterns`, p);
    }
    principals[pattern] = strList(list, p, { nonEmpty: true, re: PRINCIPAL_RE, hint: 'invalid login name' });
  }
  const source_address = o.source_address === undefined
    ? undefined
    : strList(o.source_address, `${path}.source_address`, { nonEmpty: true, re: CIDR_RE, hint: 'expected an address or CIDR' });
  const extensions = o.extensions === undefined
    ? (['permit-pty'] as SshExtension[])
    : strList(o.extensions, `${path}.extensions`).map((e, i) => {
        if (!(SSH_EXTENSIONS as readonly string[]).includes(e)) {
          throw new InvalidInput(`${path}.extensions[${i}]: unknown extension (allowed: ${SSH_EXTENSIONS.join(', ')})`, `${path}.extensions[${i}]`);
        }
        return e as SshExtension;
      });
  return { name, kind: 'ssh', hosts, principals, ...ttls(o, path), ...(source_address ? { source_address } : {}), extensions };
}

const SCOPE_RE = /^[\x21\x23-\x5B\x5D-\x7E]+$/; // RFC 6749 scope-token

function api(o: Obj, path: string, name: string): ApiTarget {
  onlyKeys(o, path, ['name', 'kind', 'audience', 'scopes', 'max_ttl', 'default_ttl', 'max_delegation_depth']);
  const audience = str(o, 'audience', path);
  const scopes = strList(o.scopes, `${path}.scopes`, { nonEmpty: true, re: SCOPE_RE, hint: 'invalid scope token' });
  const t = ttls(o, path);
  if (t.max_ttl_ms > 3_600_000) throw new InvalidInput(`${path}.max_ttl: access tokens are capped at 1h`, `${path}.max_ttl`);
  const depth = o.max_delegation_depth === undefined ? 3 : o.max_delegation_depth;
  if (typeof depth !== 'number' || !Number.isInteger(depth) || depth < 0 || depth > 10) {
    throw new InvalidInput(`${path}.max_delegation_depth: expected an integer 0-10`, `${path}.max_delegation_depth`);
  }
  return { name, kind: 'api', audience, scopes, ...t, max_delegation_depth: depth };
}

function spiffe(o: Obj, path: string, name: string): SpiffeX509Target {
  onlyKeys(o, path, ['name', 'kind', 'trust_domain', 'max_ttl', 'default_ttl']);
  const trust_domain = str(o, 'trust_domain', path, { re: /^[a-z0-9._-]{1,255}$/, hint: 'expected a SPIFFE trust domain (lowercase letters, digits, . _ -)' });
  const t = ttls(o, path);
  if (t.max_ttl_ms > 86_400_000) throw new InvalidInput(`${path}.max_ttl: SVIDs are capped at 24h`, `${path}.max_ttl`);
  return { name, kind: 'spiffe-x509', trust_domain, ...t };
}

const VALIDATORS: Record<TargetKind, (o: Obj, path: string, name: string) => TargetConfig> = {
  postgres,
  ssh,
  api,
  'spiffe-x509': spiffe,
};

export function validateTargets(raw: unknown[]): TargetConfig[] {
  if (!Array.isArray(raw)) throw new InvalidInput('targets: expected a list', 'targets');
  const seen = new Set<string>();
  return raw.map((t, i) => {
    const path = `targets[${i}]`;
    if (!isObj(t)) throw new InvalidInput(`${path}: expected an object`, path);
    const name = str(t, 'name', path, { re: NAME_RE, hint: 'expected lowercase letters, digits, . _ -' });
    if (seen.has(name)) throw new InvalidInput(`${path}.name: duplicate target name "${name}"`, `${path}.name`);
    seen.add(name);
    const kind = t.kind;
    if (typeof kind !== 'string' || !Object.hasOwn(VALIDATORS, kind)) {
      throw new InvalidInput(`${path}.kind: expected one of ${Object.keys(VALIDATORS).join(', ')}`, `${path}.kind`);
    }
    return VALIDATORS[kind as TargetKind](t, path, name);
  });
}
