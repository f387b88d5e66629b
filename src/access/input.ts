// Parsing untrusted API/CLI bodies into typed inputs; errors name the field.
import { InvalidInput } from '../common/errors.ts';
import type { EntityUid } from '../policy/engine/types.ts';
import type { CreateRequestInput } from './requests.ts';
import type { AccessTarget } from './types.ts';
import { ACTION_RE, NAME_RE, bool, duration, entityRef, isObj, obj, onlyKeys, optStr, str } from './validate.ts';
import { HARD_MAX_BREAK_GLASS_MS, HARD_MAX_GRANT_MS } from './config.ts';

function resourceRef(v: unknown, path: string): EntityUid {
  if (isObj(v)) {
    onlyKeys(v, path, ['type', 'id']);
    return { type: str(v.type, `${path}.type`, { re: /^[A-Z][A-Za-z0-9_]*$/, what: 'an entity type' }), id: str(v.id, `${path}.id`) };
  }
  return entityRef(v, path);
}

/**
 * `{ role } | { resource, actions } | { credential: { target, permission?, resource? } }` plus
 * `duration` (e.g. `2h`), `reason`, optional `ticket`, `start_at` (ISO-8601), `session_bound`.
 */
export function parseCreateRequest(raw: unknown): CreateRequestInput {
  const o = obj(raw, 'body');
  onlyKeys(o, '', ['role', 'resource', 'actions', 'credential', 'duration', 'reason', 'ticket', 'start_at', 'session_bound']);
  const kinds = ['role', 'resource', 'credential'].filter((k) => o[k] !== undefined);
  if (kinds.length !== 1) throw new InvalidInput('give exactly one of role, resource (with actions) or credential', 'role');
  let target: AccessTarget;
  if (o.role !== undefined) {
    target = { kind: 'role', role: str(o.role, 'role', { re: NAME_RE, what: 'a role name' }) };
  } else if (o.resource !== undefined) {
    if (!Array.isArray(o.actions) || o.actions.length === 0) throw new InvalidInput('actions: give at least one action for the resource', 'actions');
    const actions = [...new Set(o.actions.map((a, i) => str(a, `actions[${i}]`, { re: ACTION_RE, what: 'an action name' })))];
    target = { kind: 'resource', resource: resourceRef(o.resource, 'resource'), actions };
  } else {
    const c = obj(o.credential, 'credential');
    onlyKeys(c, 'credential', ['target', 'permission', 'resource']);
    const permission = optStr(c.permission, 'credential.permission', { re: NAME_RE, what: 'a permission name' });
    target = {
      kind: 'credential',
      target: str(c.target, 'credential.target', { re: NAME_RE, what: 'a target name' }),
      ...(permission !== undefined && { permission }),
      ...(c.resource !== undefined && { resource: resourceRef(c.resource, 'credential.resource') }),
    };
  }
  if (o.actions !== undefined && target.kind !== 'resource') throw new InvalidInput('actions only go with resource', 'actions');
  if (o.duration === undefined) throw new InvalidInput('duration is required (e.g. 1h)', 'duration');
  const input: CreateRequestInput = {
    target,
    duration_ms: duration(o.duration, 'duration', 0, 60_000, HARD_MAX_GRANT_MS),
    reason: str(o.reason, 'reason', { max: 1024 }),
    session_bound: bool(o.session_bound, 'session_bound', false),
  };
  const ticket = optStr(o.ticket, 'ticket', { max: 128 });
  if (ticket !== undefined) input.ticket = ticket;
  if (o.start_at !== undefined) {
    const t = Date.parse(str(o.start_at, 'start_at'));
    if (Number.isNaN(t)) throw new InvalidInput('start_at: expected an ISO-8601 time', 'start_at');
    input.start_at = t;
  }
  return input;
}

export interface BreakGlassInput {
  resource: EntityUid;
  reason: string;
  duration_ms?: number;
}

/** `{ target: 'Database::"orders"' | {type,id}, reason, duration? }` */
export function parseBreakGlass(raw: unknown): BreakGlassInput {
  const o = obj(raw, 'body');
  onlyKeys(o, '', ['target', 'reason', 'duration']);
  const out: BreakGlassInput = { resource: resourceRef(o.target, 'target'), reason: str(o.reason, 'reason', { max: 1024 }) };
  if (o.duration !== undefined) out.duration_ms = duration(o.duration, 'duration', 0, 60_000, HARD_MAX_BREAK_GLASS_MS);
  return out;
}
