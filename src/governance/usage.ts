// Least privilege from observed use: effective permissions against the allowed decisions of a
// window — unused permissions per identity, the over-privilege ratio per identity and for the
// estate, and identities that used nothing at all.
import type { AuditRecord } from '../audit/types.ts';
import type { EntityUid } from '../policy/engine/types.ts';
import type { PrincipalFacts } from '../policy/entities.ts';
import type { EffectivePermissions, PermissionModel } from './permissions.ts';
import { decisionIdentity, recordResource } from './replay.ts';

/** `action resourceType::id`: one (action, resource) pair. */
export const pairKey = (action: string, r: EntityUid): string => `${action} ${r.type}::${r.id}`;

/** One observed (action, resource) pair of one identity. */
export interface ObservedPair {
  action: string;
  resource: EntityUid;
  allows: number;
  last: string;
  /** Determining policies named by the allowed decisions. */
  policies: Set<string>;
}

/** Allowed decisions of a window, per identity and pair. */
export class ObservedUse {
  readonly byIdentity = new Map<string, Map<string, ObservedPair>>();
  decisions = 0;

  /** One `authz.decision` record; anything but an allow is ignored. */
  add(r: AuditRecord): void {
    if (r.type !== 'authz.decision' || r.decision !== 'allow') return;
    const p = r.payload as { action?: unknown; reasons?: unknown };
    const resource = recordResource(r);
    if (typeof p.action !== 'string' || resource === undefined) return;
    this.decisions++;
    const id = decisionIdentity(r);
    let m = this.byIdentity.get(id);
    if (m === undefined) this.byIdentity.set(id, (m = new Map()));
    const k = pairKey(p.action, resource);
    let o = m.get(k);
    if (o === undefined) m.set(k, (o = { action: p.action, resource, allows: 0, last: r.time, policies: new Set() }));
    o.allows++;
    if (r.time > o.last) o.last = r.time;
    if (Array.isArray(p.reasons)) for (const x of p.reasons) if (typeof x === 'string') o.policies.add(x);
  }

  of(identity: string): ReadonlyMap<string, ObservedPair> {
    return this.byIdentity.get(identity) ?? new Map();
  }
}

export interface IdentityUsage {
  identity: string;
  /** Effective (action, resource) pairs over the declared resources. */
  effective: number;
  /** Effective pairs with at least one allowed decision in the window. */
  used: number;
  unused: number;
  /** unused / effective (0 when nothing is effective). */
  over_privilege: number;
  /** Allowed decisions in the window. */
  allows: number;
  /** The unused pairs (up to the report's limit). */
  unused_permissions: { action: string; resource: EntityUid }[];
}

export interface UsageReport {
  since: string;
  until: string;
  identities: IdentityUsage[];
  estate: { identities: number; effective: number; used: number; unused: number; over_privilege: number };
  /** Identities with effective permissions and not one allowed decision in the window. */
  nothing_used: string[];
}

/** Usage of each identity (sorted by over-privilege, then id) and of the estate. */
export function usageReport(args: {
  model: PermissionModel;
  identities: readonly PrincipalFacts[];
  observed: ObservedUse;
  since: string;
  until: string;
  /** At most this many unused pairs listed per identity (default 1000). */
  limit?: number;
}): UsageReport {
  const limit = args.limit ?? 1000;
  const rows: IdentityUsage[] = [];
  for (const facts of args.identities) rows.push(identityUsage(args.model.explain(facts), args.observed.of(facts.id), limit));
  rows.sort((a, b) => b.over_privilege - a.over_privilege || (a.identity < b.identity ? -1 : 1));
  const effective = rows.reduce((n, r) => n + r.effective, 0);
  const used = rows.reduce((n, r) => n + r.used, 0);
  return {
    since: args.since,
    until: args.until,
    identities: rows,
    estate: { identities: rows.length, effective, used, unused: effective - used, over_privilege: effective === 0 ? 0 : round((effective - used) / effective) },
    nothing_used: rows.filter((r) => r.effective > 0 && r.used === 0).map((r) => r.identity),
  };
}

export function identityUsage(perms: EffectivePermissions, observed: ReadonlyMap<string, ObservedPair>, limit = 1000): IdentityUsage {
  let used = 0;
  const unused: IdentityUsage['unused_permissions'] = [];
  for (const p of perms.permissions) {
    if (observed.has(pairKey(p.action, p.resource))) used++;
    else if (unused.length < limit) unused.push({ action: p.action, resource: p.resource });
  }
  const effective = perms.permissions.length;
  let allows = 0;
  for (const o of observed.values()) allows += o.allows;
  return { identity: perms.principal.id, effective, used, unused: effective - used, over_privilege: effective === 0 ? 0 : round((effective - used) / effective), allows, unused_permissions: unused };
}

const round = (x: number): number => Math.round(x * 10_000) / 10_000;
