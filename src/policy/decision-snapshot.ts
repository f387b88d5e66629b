// What an authz record keeps so a decision can be re-evaluated later against other policies
// (what-if replay, docs/governance.md): the principal's and resource's facts as they were, and the
// context the server built. Compact: what the record already holds (action, resource, purpose,
// authn method/trust, source address, bridge, break-glass, delegation) is not repeated.
import type { CedarValue, Entity, EntityUid } from './engine/types.ts';
import type { PrincipalFacts } from './entities.ts';

/** `payload.replay` of an `authz.decision` record (version 1). */
export interface DecisionSnapshot {
  v: 1;
  /** The decision time as the context saw it (RFC 3339, seconds). */
  at: string;
  /** Principal facts; empty members left out. */
  p: { kind: string; boundary: string; environment: string; owner?: string; labels?: Record<string, string>; parents?: string[] };
  /** Verified session claims (principal tags). */
  claims?: Record<string, string>;
  /** authn strength: mfa, assurance, age of the proof in seconds. */
  mfa: boolean;
  assurance: string;
  age: number;
  grants?: string[];
  /** Caller- or gateway-supplied context beyond purpose (statement, ssh, credential …). */
  extra?: Record<string, unknown>;
  /** The resource type, when the recorded `Type::id` is ambiguous (a namespaced type or an id holding `::`). */
  rt?: string;
  /** The resource entity as the engine knew it: attrs, parents (`Type::id`), tags. */
  r?: { attrs: Record<string, unknown>; parents?: string[]; tags?: Record<string, unknown> };
}

const uidText = (u: EntityUid): string => `${u.type}::${u.id}`;

export function parseUidText(s: string): EntityUid | undefined {
  const i = s.indexOf('::');
  if (i <= 0) return undefined;
  return { type: s.slice(0, i), id: s.slice(i + 2) };
}

export function snapshotOf(args: {
  at: string;
  principal: PrincipalFacts;
  claims: Record<string, string | number | boolean>;
  mfa: boolean;
  assurance: string;
  age: number;
  grants: string[] | undefined;
  extra: Record<string, unknown> | undefined;
  resourceUid: EntityUid;
  resource: Entity | undefined;
}): DecisionSnapshot {
  const p = args.principal;
  const snap: DecisionSnapshot = {
    v: 1,
    at: args.at,
    p: { kind: p.kind, boundary: p.boundary, environment: p.environment },
    mfa: args.mfa,
    assurance: args.assurance,
    age: args.age,
  };
  if (p.owner !== null) snap.p.owner = p.owner;
  if (Object.keys(p.labels).length > 0) snap.p.labels = p.labels;
  if (p.parents.length > 0) snap.p.parents = p.parents.map(uidText);
  const claimKeys = Object.keys(args.claims);
  if (claimKeys.length > 0) snap.claims = Object.fromEntries(claimKeys.map((k) => [k, String(args.claims[k])]));
  if (args.grants !== undefined && args.grants.length > 0) snap.grants = args.grants;
  if (args.extra !== undefined && Object.keys(args.extra).length > 0) snap.extra = args.extra;
  if (args.resourceUid.type.includes('::') || args.resourceUid.id.includes('::')) snap.rt = args.resourceUid.type;
  const r = args.resource;
  if (r !== undefined) {
    snap.r = { attrs: r.attrs as Record<string, unknown> };
    if (r.parents.length > 0) snap.r.parents = r.parents.map(uidText);
    if (r.tags !== undefined && Object.keys(r.tags).length > 0) snap.r.tags = r.tags as Record<string, unknown>;
  }
  return snap;
}

/** The principal facts recorded in a snapshot. */
export function snapshotPrincipal(id: string, s: DecisionSnapshot): PrincipalFacts {
  return {
    id,
    kind: s.p.kind,
    boundary: s.p.boundary,
    environment: s.p.environment,
    owner: s.p.owner ?? null,
    labels: s.p.labels ?? {},
    parents: (s.p.parents ?? []).map((t) => parseUidText(t)).filter((u): u is EntityUid => u !== undefined),
  };
}

/** The resource entity recorded in a snapshot. */
export function snapshotResource(uid: EntityUid, s: DecisionSnapshot): Entity | undefined {
  if (s.r === undefined) return undefined;
  return {
    uid,
    attrs: s.r.attrs as Record<string, CedarValue>,
    parents: (s.r.parents ?? []).map((t) => parseUidText(t)).filter((u): u is EntityUid => u !== undefined),
    ...(s.r.tags !== undefined && { tags: s.r.tags as Record<string, CedarValue> }),
  };
}
