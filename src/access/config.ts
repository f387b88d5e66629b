// The `access:` section of portcullis.yaml: request rules (approval thresholds, duration caps,
// ticket requirements), break-glass, webhooks. A zod schema, then the webhook secrets read from
// the environment (`secret_env`; never inline). Errors are ConfigErrors naming the field.
import { ConfigError, duration, flag, forbidden, integer, mapping, text, texts, validateConfig, z } from '../common/validation.ts';
import type { EntityUid } from '../policy/engine/types.ts';
import { ACTION_RE, IDENTITY_ID_RE, NAME_RE, entityRef } from './fields.ts';

const WEBHOOK_EVENTS = [
  'request.created', 'request.approved', 'request.denied', 'request.cancelled', 'request.expiring', 'request.expired',
  'grant.ended', 'breakglass.started', 'breakglass.ended', 'breakglass.reviewed',
  // Governance (issue #12): review campaigns and lifecycle notices.
  'review.opened', 'review.reminder', 'review.closed', 'identity.stale_warning', 'identity.owner_offboarded',
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

/** Durations under `access` read a bare number as milliseconds. */
const ms = (min: number, max: number) => duration({ numbers: 'ms', min, max });

const RULE = mapping({
  name: text({ max: 512, pattern: NAME_RE, hint: 'must be a rule name (lowercase, digits, . _ -)' }),
  match: mapping({
    role: text({ max: 512, pattern: NAME_RE, hint: 'must be a role name' }).optional(),
    resource: entityRef.optional(),
    resource_type: text({ max: 512, pattern: /^[A-Z][A-Za-z0-9_]*$/, hint: 'must be an entity type' }).optional(),
    action: text({ max: 512, pattern: ACTION_RE, hint: 'must be an action name' }).optional(),
    target: text({ max: 512, pattern: NAME_RE, hint: 'must be a target name' }).optional(),
    environment: text({ max: 64 }).optional(),
    boundary: text({ max: 64 }).optional(),
  }).refine((m) => Object.values(m).some((v) => v !== undefined), 'give at least one of role, resource, resource_type, action, target, environment, boundary'),
  approvals: integer(1, 10).default(1),
  // Default: the section's max_duration.
  max_duration: ms(60_000, HARD_MAX_GRANT_MS).optional(),
  require_ticket: flag().default(false),
  reviewers: texts({ max: 512, pattern: IDENTITY_ID_RE, hint: 'must be an identity id' }).default([]),
});

const ENDPOINT = mapping({
  name: text({ max: 512, pattern: NAME_RE, hint: 'must be an endpoint name' }),
  url: text({ max: 2048 }),
  secret_env: text({ max: 512, pattern: /^[A-Z_][A-Z0-9_]*$/, hint: 'must be an environment variable name' }),
  secret: forbidden('secrets are not accepted inline; use secret_env'),
  events: z
    .array(text({ max: 512 }).refine((e) => e === '*' || (WEBHOOK_EVENTS as readonly string[]).includes(e), { error: (iss) => `unknown event ${String(iss.input)} (expected * or one of ${WEBHOOK_EVENTS.join(', ')})` }))
    .default(['*']),
  allow_insecure: flag().default(false),
}).transform((o, ctx) => {
  if (!URL.canParse(o.url)) {
    ctx.addIssue({ code: 'custom', path: ['url'], message: 'not a URL' });
    return z.NEVER;
  }
  const url = new URL(o.url);
  const loopback = ['127.0.0.1', '[::1]', 'localhost'].includes(url.hostname);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && (o.allow_insecure || loopback))) {
    ctx.addIssue({ code: 'custom', path: ['url'], message: 'must be https (http only for loopback or with allow_insecure)' });
  }
  if (url.username || url.password) ctx.addIssue({ code: 'custom', path: ['url'], message: 'credentials in the URL are not accepted' });
  return { name: o.name, url: url.toString(), secret_env: o.secret_env, events: o.events };
});

/** Names unique within a list (`rules`, `endpoints`). */
const uniqueNames = (what: string) => (list: readonly { name: string }[], ctx: z.core.$RefinementCtx) => {
  const seen = new Set<string>();
  list.forEach((x, i) => {
    if (seen.has(x.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `duplicate ${what} ${x.name}` });
    seen.add(x.name);
  });
};

/** The `access:` section as written (JSON Schema: jsonSchemaOf); validateAccessConfig reads the webhook secrets from the environment. */
export const ACCESS_CONFIG = mapping({
  pending_ttl: ms(60_000, 7 * 24 * H).default(H),
  expiring_notice: ms(0, 24 * H).default(10 * 60_000),
  max_duration: ms(60_000, HARD_MAX_GRANT_MS).default(8 * H),
  approvals: integer(1, 10).default(1),
  require_ticket: flag().default(false),
  rules: z.array(RULE).superRefine(uniqueNames('rule name')).default([]),
  break_glass: mapping({
    action: text({ max: 512, pattern: ACTION_RE, hint: 'must be an action name' }).default('breakglass.use'),
    max_duration: ms(60_000, HARD_MAX_BREAK_GLASS_MS).default(H),
    revokers: texts({ max: 512, pattern: IDENTITY_ID_RE, hint: 'must be an identity id or team:<name>' }).default([]),
  }).default({ action: 'breakglass.use', max_duration: H, revokers: [] }),
  webhooks: mapping({
    endpoints: z.array(ENDPOINT).superRefine(uniqueNames('endpoint name')).default([]),
    max_attempts: integer(1, 50).default(8),
    backoff_base: ms(1, H).default(1000),
    backoff_max: ms(1, 24 * H).default(10 * 60_000),
    timeout: ms(10, 60_000).default(5000),
  })
    .refine((w) => w.backoff_max >= w.backoff_base, { path: ['backoff_max'], message: 'must be at least backoff_base' })
    .default({ endpoints: [], max_attempts: 8, backoff_base: 1000, backoff_max: 10 * 60_000, timeout: 5000 }),
});

/** The `access:` section as parsed, webhook secrets not read yet. */
export type DeclaredAccessConfig = z.output<typeof ACCESS_CONFIG>;

export function validateAccessConfig(raw: unknown, env: NodeJS.ProcessEnv = process.env, path = 'access'): AccessConfig {
  return resolveAccessConfig(validateConfig(ACCESS_CONFIG, raw ?? {}, path), env, path);
}

/** Reads each webhook endpoint's secret from the environment variable `secret_env` names (never from the file). */
export function resolveAccessConfig(o: DeclaredAccessConfig, env: NodeJS.ProcessEnv, path = 'access'): AccessConfig {
  const endpoints = o.webhooks.endpoints.map((e, i): WebhookEndpoint => {
    const secret = env[e.secret_env];
    if (secret === undefined || secret.length < 16) {
      throw new ConfigError(`${path}.webhooks.endpoints[${i}].secret_env`, `environment variable ${e.secret_env} must hold a secret of at least 16 characters`);
    }
    return { name: e.name, url: e.url, secret, events: e.events };
  });
  const rules = o.rules.map((r): AccessRule => {
    const match: RuleMatch = {};
    for (const [k, v] of Object.entries(r.match)) if (v !== undefined) (match as Record<string, unknown>)[k] = v;
    return { name: r.name, match, approvals: r.approvals, max_duration_ms: r.max_duration ?? o.max_duration, require_ticket: r.require_ticket, reviewers: r.reviewers };
  });
  return {
    pending_ttl_ms: o.pending_ttl,
    expiring_notice_ms: o.expiring_notice,
    default_max_duration_ms: o.max_duration,
    default_approvals: o.approvals,
    require_ticket: o.require_ticket,
    rules,
    break_glass: { action: o.break_glass.action, max_duration_ms: o.break_glass.max_duration, revokers: o.break_glass.revokers },
    webhooks: {
      endpoints,
      max_attempts: o.webhooks.max_attempts,
      backoff_base_ms: o.webhooks.backoff_base,
      backoff_max_ms: o.webhooks.backoff_max,
      timeout_ms: o.webhooks.timeout,
    },
  };
}
