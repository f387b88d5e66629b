// The `access:` section of portcullis.yaml: request rules (approval thresholds, duration caps,
// ticket requirements), break-glass, webhooks. Raw unknown → typed, or InvalidInput naming the
// field. Webhook secrets are never accepted inline: `secret_env` names an environment variable.
import { InvalidInput } from '../common/errors.ts';
import type { EntityUid } from '../policy/engine/types.ts';
import {
  ACTION_RE, IDENTITY_ID_RE, NAME_RE, bool, duration, entityRef, int, isObj, join, obj, onlyKeys, optStr, str, strList,
} from './validate.ts';

export const WEBHOOK_EVENTS = [
  'request.created', 'request.approved', 'request.denied', 'request.cancelled', 'request.expiring', 'request.expired',
  'grant.ended', 'breakglass.started', 'breakglass.ended', 'breakglass.reviewed',
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENTS)[number];

export interface RuleMatch {
  role?: string;
  resource?: EntityUid;
  resource_type?: string;
  /** Matches when the request's action set contains it. */
  action?: string;
  target?: string;
  environment?: string;
  /** Trust boundary of the resource (or one of its ancestors). */
  boundary?: string;
}

/** A request type. Every matching rule applies; the strictest value of each setting wins. */
export interface AccessRule {
  name: string;
  match: RuleMatch;
  approvals: number;
  max_duration_ms: number;
  require_ticket: boolean;
  /** Suggested reviewers, shown in status and notifications. Authority comes from Cedar only. */
  reviewers: string[];
}

export interface BreakGlassConfig {
  /** Cedar action decided on the target to establish eligibility (`breakglass.use`). */
  action: string;
  /** Hard cap; a break-glass always ends by then and cannot be renewed. */
  max_duration_ms: number;
  /** Identities (`user:…`) or teams (`team:<name>`) who are notified and may end it. */
  revokers: string[];
}

export interface WebhookEndpoint {
  name: string;
  url: string;
  /** Resolved from `secret_env`; never logged. */
  secret: string;
  /** Event types delivered; `['*']` for all. */
  events: string[];
}

export interface WebhookConfig {
  endpoints: WebhookEndpoint[];
  max_attempts: number;
  backoff_base_ms: number;
  backoff_max_ms: number;
  timeout_ms: number;
}

export interface AccessConfig {
  pending_ttl_ms: number;
  /** A `request.expiring` notice is sent once when a pending request has this long left. */
  expiring_notice_ms: number;
  default_max_duration_ms: number;
  default_approvals: number;
  require_ticket: boolean;
  rules: AccessRule[];
  break_glass: BreakGlassConfig;
  webhooks: WebhookConfig;
}

const H = 3_600_000;
export const HARD_MAX_GRANT_MS = 7 * 24 * H;
export const HARD_MAX_BREAK_GLASS_MS = 4 * H;

export function defaultAccessConfig(): AccessConfig {
  return validateAccessConfig({});
}

export function validateAccessConfig(raw: unknown, env: NodeJS.ProcessEnv = process.env, path = 'access'): AccessConfig {
  const o = raw === undefined ? {} : obj(raw, path);
  onlyKeys(o, path, ['pending_ttl', 'expiring_notice', 'max_duration', 'approvals', 'require_ticket', 'rules', 'break_glass', 'webhooks']);
  const default_max_duration_ms = duration(o.max_duration, join(path, 'max_duration'), 8 * H, 60_000, HARD_MAX_GRANT_MS);
  const default_approvals = int(o.approvals, join(path, 'approvals'), 1, 1, 10);
  const require_ticket = bool(o.require_ticket, join(path, 'require_ticket'), false);
  const rulesRaw = o.rules ?? [];
  if (!Array.isArray(rulesRaw)) throw new InvalidInput(`${join(path, 'rules')}: expected a list`, join(path, 'rules'));
  const names = new Set<string>();
  const rules = rulesRaw.map((r, i) => {
    const rule = validateRule(r, join(join(path, 'rules'), i), default_max_duration_ms);
    if (names.has(rule.name)) throw new InvalidInput(`${join(join(path, 'rules'), i)}.name: duplicate rule name ${rule.name}`, `${join(join(path, 'rules'), i)}.name`);
    names.add(rule.name);
    return rule;
  });
  return {
    pending_ttl_ms: duration(o.pending_ttl, join(path, 'pending_ttl'), H, 60_000, 7 * 24 * H),
    expiring_notice_ms: duration(o.expiring_notice, join(path, 'expiring_notice'), 10 * 60_000, 0, 24 * H),
    default_max_duration_ms,
    default_approvals,
    require_ticket,
    rules,
    break_glass: validateBreakGlass(o.break_glass, join(path, 'break_glass')),
    webhooks: validateWebhooks(o.webhooks, join(path, 'webhooks'), env),
  };
}

function validateRule(raw: unknown, p: string, defaultMax: number): AccessRule {
  const o = obj(raw, p);
  onlyKeys(o, p, ['name', 'match', 'approvals', 'max_duration', 'require_ticket', 'reviewers']);
  const m = obj(o.match, join(p, 'match'));
  const mp = join(p, 'match');
  onlyKeys(m, mp, ['role', 'resource', 'resource_type', 'action', 'target', 'environment', 'boundary']);
  if (Object.keys(m).length === 0) throw new InvalidInput(`${mp}: give at least one of role, resource, resource_type, action, target, environment, boundary`, mp);
  const match: RuleMatch = {};
  if (m.role !== undefined) match.role = str(m.role, join(mp, 'role'), { re: NAME_RE, what: 'a role name' });
  if (m.resource !== undefined) match.resource = entityRef(m.resource, join(mp, 'resource'));
  if (m.resource_type !== undefined) match.resource_type = str(m.resource_type, join(mp, 'resource_type'), { re: /^[A-Z][A-Za-z0-9_]*$/, what: 'an entity type' });
  if (m.action !== undefined) match.action = str(m.action, join(mp, 'action'), { re: ACTION_RE, what: 'an action name' });
  if (m.target !== undefined) match.target = str(m.target, join(mp, 'target'), { re: NAME_RE, what: 'a target name' });
  if (m.environment !== undefined) match.environment = str(m.environment, join(mp, 'environment'), { max: 64 });
  if (m.boundary !== undefined) match.boundary = str(m.boundary, join(mp, 'boundary'), { max: 64 });
  return {
    name: str(o.name, join(p, 'name'), { re: NAME_RE, what: 'a rule name (lowercase, digits, . _ -)' }),
    match,
    approvals: int(o.approvals, join(p, 'approvals'), 1, 1, 10),
    max_duration_ms: duration(o.max_duration, join(p, 'max_duration'), defaultMax, 60_000, HARD_MAX_GRANT_MS),
    require_ticket: bool(o.require_ticket, join(p, 'require_ticket'), false),
    reviewers: strList(o.reviewers, join(p, 'reviewers'), [], { re: IDENTITY_ID_RE, what: 'an identity id' }),
  };
}

function validateBreakGlass(raw: unknown, p: string): BreakGlassConfig {
  const o = raw === undefined ? {} : obj(raw, p);
  onlyKeys(o, p, ['action', 'max_duration', 'revokers']);
  return {
    action: optStr(o.action, join(p, 'action'), { re: ACTION_RE, what: 'an action name' }) ?? 'breakglass.use',
    max_duration_ms: duration(o.max_duration, join(p, 'max_duration'), H, 60_000, HARD_MAX_BREAK_GLASS_MS),
    revokers: strList(o.revokers, join(p, 'revokers'), [], { re: IDENTITY_ID_RE, what: 'an identity id or team:<name>' }),
  };
}

function validateWebhooks(raw: unknown, p: string, env: NodeJS.ProcessEnv): WebhookConfig {
  const o = raw === undefined ? {} : obj(raw, p);
  onlyKeys(o, p, ['endpoints', 'max_attempts', 'backoff_base', 'backoff_max', 'timeout']);
  const eps = o.endpoints ?? [];
  if (!Array.isArray(eps)) throw new InvalidInput(`${join(p, 'endpoints')}: expected a list`, join(p, 'endpoints'));
  const names = new Set<string>();
  const endpoints = eps.map((e, i) => {
    const ep = validateEndpoint(e, join(join(p, 'endpoints'), i), env);
    if (names.has(ep.name)) throw new InvalidInput(`${join(join(p, 'endpoints'), i)}.name: duplicate endpoint name`, `${join(join(p, 'endpoints'), i)}.name`);
    names.add(ep.name);
    return ep;
  });
  const backoff_base_ms = duration(o.backoff_base, join(p, 'backoff_base'), 1000, 1, H);
  return {
    endpoints,
    max_attempts: int(o.max_attempts, join(p, 'max_attempts'), 8, 1, 50),
    backoff_base_ms,
    backoff_max_ms: duration(o.backoff_max, join(p, 'backoff_max'), 10 * 60_000, backoff_base_ms, 24 * H),
    timeout_ms: duration(o.timeout, join(p, 'timeout'), 5000, 10, 60_000),
  };
}

function validateEndpoint(raw: unknown, p: string, env: NodeJS.ProcessEnv): WebhookEndpoint {
  const o = obj(raw, p);
  onlyKeys(o, p, ['name', 'url', 'secret_env', 'events', 'allow_insecure']);
  if ('secret' in o) throw new InvalidInput(`${p}.secret: secrets are not accepted inline; use secret_env`, `${p}.secret`);
  const urlText = str(o.url, join(p, 'url'), { max: 2048 });
  let url: URL;
  try {
    url = new URL(urlText);
  } catch {
    throw new InvalidInput(`${join(p, 'url')}: not a URL`, join(p, 'url'));
  }
  const loopback = ['127.0.0.1', '[::1]', 'localhost'].includes(url.hostname);
  const insecureOk = bool(o.allow_insecure, join(p, 'allow_insecure'), false) || loopback;
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && insecureOk)) {
    throw new InvalidInput(`${join(p, 'url')}: must be https (http only for loopback or with allow_insecure)`, join(p, 'url'));
  }
  if (url.username || url.password) throw new InvalidInput(`${join(p, 'url')}: credentials in the URL are not accepted`, join(p, 'url'));
  const envName = str(o.secret_env, join(p, 'secret_env'), { re: /^[A-Z_][A-Z0-9_]*$/, what: 'an environment variable name' });
  const secret = env[envName];
  if (secret === undefined || secret.length < 16) {
    throw new InvalidInput(`${join(p, 'secret_env')}: environment variable ${envName} must hold a secret of at least 16 characters`, join(p, 'secret_env'));
  }
  const events = strList(o.events, join(p, 'events'), ['*']);
  events.forEach((e, i) => {
    if (e !== '*' && !(WEBHOOK_EVENTS as readonly string[]).includes(e)) {
      throw new InvalidInput(`${join(join(p, 'events'), i)}: unknown event ${e} (expected * or one of ${WEBHOOK_EVENTS.join(', ')})`, join(join(p, 'events'), i));
    }
  });
  return { name: str(o.name, join(p, 'name'), { re: NAME_RE, what: 'an endpoint name' }), url: url.toString(), secret, events };
}

export { isObj };
