// Which configured request rules apply to a request, and the strictest settings they give.
//
// A request is matched by what it reaches (docs/access.md "Rules"): a resource request by its
// resource and every ancestor of it; a credential request by the Cedar resource its target guards
// (and the narrower resource it names, with their ancestors) — so a rule for prod databases also
// governs `credential: { target: orders-db }`. A rule matches when one reached entity satisfies
// all of its entity criteria (resource, resource_type, environment, boundary). Facts that are not
// known (an undeclared resource) never make a rule miss: unknown counts as matching.
import type { EntityUid } from '../policy/engine/types.ts';
import type { AccessConfig, AccessRule } from './config.ts';
import type { AccessTarget } from './types.ts';

export interface Requirements {
  rules: string[];
  approvals: number;
  max_duration_ms: number;
  require_ticket: boolean;
  reviewers: string[];
}

/** Declared facts of a resource: boundary, environment, parents (Cedar ancestors). */
export interface ResourceInfo {
  boundary: string;
  environment: string;
  parents?: readonly EntityUid[];
}
export type ResourceLookup = (uid: EntityUid) => ResourceInfo | undefined;
/** The declared resources that have `uid` among their parents. */
export type ResourceChildren = (uid: EntityUid) => readonly EntityUid[];

/** One entity a request reaches, with what is known of it. */
export interface Reached {
  uid: EntityUid;
  info: ResourceInfo | undefined;
}

export function targetResource(t: AccessTarget): EntityUid | undefined {
  return t.kind === 'resource' ? t.resource : t.kind === 'credential' ? t.resource : undefined;
}

/**
 * The resource(s) a target names, every ancestor of each and — when `children` is given — every
 * descendant (a grant on a database reaches its tables through `resource in`): deduplicated,
 * cycle-safe.
 */
export function reachedBy(
  t: AccessTarget,
  lookup: ResourceLookup | undefined,
  targetResourceOf?: (target: string) => EntityUid | undefined,
  children?: ResourceChildren,
): Reached[] {
  const roots: EntityUid[] = [];
  if (t.kind === 'resource') roots.push(t.resource);
  if (t.kind === 'credential') {
    const guarded = targetResourceOf?.(t.target);
    if (guarded) roots.push(guarded);
    if (t.resource) roots.push(t.resource);
  }
  const out = new Map<string, Reached>();
  const walk = (next: (uid: EntityUid, info: ResourceInfo | undefined) => readonly EntityUid[]) => {
    const seen = new Set<string>();
    const queue = [...roots];
    while (queue.length > 0) {
      const uid = queue.shift()!;
      const key = `${uid.type}::${uid.id}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const info = lookup?.(uid);
      out.set(key, { uid, info });
      queue.push(...next(uid, info));
    }
  };
  walk((_uid, info) => info?.parents ?? []);
  if (children) walk((uid) => children(uid));
  return [...out.values()];
}

function entityMatches(m: AccessRule['match'], e: Reached): boolean {
  if (m.resource !== undefined && !(e.uid.type === m.resource.type && e.uid.id === m.resource.id)) return false;
  if (m.resource_type !== undefined && e.uid.type !== m.resource_type) return false;
  if (m.environment !== undefined && e.info !== undefined && e.info.environment !== m.environment) return false;
  if (m.boundary !== undefined && e.info !== undefined && e.info.boundary !== m.boundary) return false;
  return true;
}

function ruleMatches(rule: AccessRule, t: AccessTarget, reached: readonly Reached[]): boolean {
  const m = rule.match;
  if (m.role !== undefined && !(t.kind === 'role' && t.role === m.role)) return false;
  if (m.target !== undefined && !(t.kind === 'credential' && t.target === m.target)) return false;
  // A credential may carry any action on what it reaches, so an action rule governs it too.
  // (A resource target with no actions — a break-glass — may be used for any action.)
  if (m.action !== undefined && !((t.kind === 'resource' && (t.actions.length === 0 || t.actions.includes(m.action))) || t.kind === 'credential')) return false;
  const entityCriteria = m.resource !== undefined || m.resource_type !== undefined || m.environment !== undefined || m.boundary !== undefined;
  if (!entityCriteria) return true;
  // Role requests reach whatever policy gives the role: they are matched by `role` only.
  if (t.kind === 'role') return false;
  return reached.some((e) => entityMatches(m, e));
}

export function requirementsFor(cfg: AccessConfig, t: AccessTarget, reached: readonly Reached[]): Requirements {
  const matched = cfg.rules.filter((r) => ruleMatches(r, t, reached));
  return {
    rules: matched.map((r) => r.name),
    approvals: Math.max(cfg.default_approvals, ...matched.map((r) => r.approvals)),
    max_duration_ms: Math.min(cfg.default_max_duration_ms, ...matched.map((r) => r.max_duration_ms)),
    require_ticket: cfg.require_ticket || matched.some((r) => r.require_ticket),
    reviewers: [...new Set(matched.flatMap((r) => r.reviewers))],
  };
}

/** Human label for a target: `db.admin on Database::"orders"`, `role db-admin`, `credential orders-pg (readonly)`. */
export function describeTarget(t: AccessTarget): string {
  switch (t.kind) {
    case 'role':
      return `role ${t.role}`;
    case 'resource':
      return `${t.actions.join(', ')} on ${t.resource.type}::"${t.resource.id}"`;
    case 'credential':
      return `credential ${t.target}${t.permission ? ` (${t.permission})` : ''}`;
  }
}
