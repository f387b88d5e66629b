// Parsing untrusted API/CLI bodies into typed inputs (zod, common/validation.ts); errors name the field.
import { duration, flag, mapping, text, validate, z } from '../common/validation.ts';
import type { EntityUid } from '../policy/engine/types.ts';
import type { CreateRequestInput } from './requests.ts';
import type { AccessTarget } from './types.ts';
import { ACTION_RE, NAME_RE, entityRef } from './fields.ts';
import { HARD_MAX_BREAK_GLASS_MS, HARD_MAX_GRANT_MS } from './config.ts';

/** `Type::"id"`, `Type::id` or `{ type, id }`. */
const resourceRef = z.union(
  [mapping({ type: text({ max: 512, pattern: /^[A-Z][A-Za-z0-9_]*$/, hint: 'must be an entity type' }), id: text({ max: 512 }) }), entityRef],
  { error: 'expected an entity like Database::"orders" or { type, id }' },
);

/** Durations in a body read a bare number as milliseconds. */
const ms = (max: number) => duration({ numbers: 'ms', min: 60_000, max });

const CREATE_REQUEST = mapping({
  role: text({ max: 512, pattern: NAME_RE, hint: 'must be a role name' }).optional(),
  resource: resourceRef.optional(),
  actions: z.array(text({ max: 512, pattern: ACTION_RE, hint: 'must be an action name' })).optional(),
  credential: mapping({
    target: text({ max: 512, pattern: NAME_RE, hint: 'must be a target name' }),
    permission: text({ max: 512, pattern: NAME_RE, hint: 'must be a permission name' }).optional(),
    resource: resourceRef.optional(),
  }).optional(),
  duration: ms(HARD_MAX_GRANT_MS),
  reason: text({ max: 1024 }),
  ticket: text({ max: 128 }).optional(),
  start_at: text({ max: 64 }).optional(),
  session_bound: flag().default(false),
}).transform((o, ctx): CreateRequestInput => {
  const kinds = (['role', 'resource', 'credential'] as const).filter((k) => o[k] !== undefined);
  if (kinds.length !== 1) ctx.addIssue({ code: 'custom', path: ['role'], message: 'give exactly one of role, resource (with actions) or credential' });
  if (o.resource !== undefined && (o.actions === undefined || o.actions.length === 0)) ctx.addIssue({ code: 'custom', path: ['actions'], message: 'give at least one action for the resource' });
  if (o.actions !== undefined && o.resource === undefined) ctx.addIssue({ code: 'custom', path: ['actions'], message: 'actions only go with resource' });
  const start = o.start_at === undefined ? undefined : Date.parse(o.start_at);
  if (Number.isNaN(start)) ctx.addIssue({ code: 'custom', path: ['start_at'], message: 'expected an ISO-8601 time' });
  const c = o.credential;
  const target: AccessTarget =
    o.role !== undefined ? { kind: 'role', role: o.role }
    : o.resource !== undefined ? { kind: 'resource', resource: o.resource, actions: [...new Set(o.actions ?? [])] }
    : {
        kind: 'credential',
        target: c?.target ?? '',
        ...(c?.permission !== undefined && { permission: c.permission }),
        ...(c?.resource !== undefined && { resource: c.resource }),
      };
  return {
    target,
    duration_ms: o.duration,
    reason: o.reason,
    session_bound: o.session_bound,
    ...(o.ticket !== undefined && { ticket: o.ticket }),
    ...(start !== undefined && { start_at: start }),
  };
});

/**
 * `{ role } | { resource, actions } | { credential: { target, permission?, resource? } }` plus
 * `duration` (e.g. `2h`), `reason`, optional `ticket`, `start_at` (ISO-8601), `session_bound`.
 */
export function parseCreateRequest(raw: unknown): CreateRequestInput {
  return validate(CREATE_REQUEST, raw);
}

export interface BreakGlassInput {
  resource: EntityUid;
  reason: string;
  duration_ms?: number;
}

const BREAK_GLASS = mapping({ target: resourceRef, reason: text({ max: 1024 }), duration: ms(HARD_MAX_BREAK_GLASS_MS).optional() });

/** `{ target: 'Database::"orders"' | {type,id}, reason, duration? }` */
export function parseBreakGlass(raw: unknown): BreakGlassInput {
  const o = validate(BREAK_GLASS, raw);
  return { resource: o.target, reason: o.reason, ...(o.duration !== undefined && { duration_ms: o.duration }) };
}
