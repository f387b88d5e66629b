// Which configured request rules apply to a request, and the strictest settings they give.
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

export function targetResource(t: AccessTarget): EntityUid | undefined {
  return t.kind === 'resource' ? t.resource : t.kind === 'credential' ? t.resource : undefined;
}

export function ruleMatches(rule: AccessRule, t: AccessTarget, environment: string | undefined): boolean {
  const m = rule.match;
  const r = targetResource(t);
  if (m.role !== undefined && !(t.kind === 'role' && t.role === m.role)) return false;
  if (m.resource !== undefined && !(r && r.type === m.resource.type && r.id === m.resource.id)) return false;
  if (m.resource_type !== undefined && r?.type !== m.resource_type) return false;
  if (m.action !== undefined && !(t.kind === 'resource' && t.actions.includes(m.action))) return false;
  if (m.target !== undefined && !(t.kind === 'credential' && t.target === m.target)) return false;
  if (m.environment !== undefined && environment !== m.environment) return false;
  return true;
}

export function requirementsFor(cfg: AccessConfig, t: AccessTarget, environment: string | undefined): Requirements {
  const matched = cfg.rules.filter((r) => ruleMatches(r, t, environment));
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
