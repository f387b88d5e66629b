// Building Cedar entities from inventory rows and config resources.
import { InvalidInput } from '../common/errors.ts';
import type { CedarValue, Entity } from './engine/types.ts';
import { PRINCIPAL_TYPE_OF_KIND } from './schema.ts';

export interface PrincipalFacts {
  id: string;
  kind: string;
  boundary: string;
  environment: string;
  owner: string | null;
  labels: Record<string, string>;
  parents: { type: string; id: string }[];
}

export interface ResourceFacts {
  type: string;
  id: string;
  boundary: string;
  environment: string;
  parents: { type: string; id: string }[];
  attributes: Record<string, unknown>;
}

function principalType(kind: string): string {
  const t = PRINCIPAL_TYPE_OF_KIND[kind];
  if (!t) throw new Error(`no principal type for identity kind ${kind}`);
  return t;
}

/** The principal as the engine sees it; `claims` are the verified attributes of this session. */
export function principalEntity(p: PrincipalFacts, claims: Record<string, string | number | boolean> = {}): Entity {
  const attrs: Record<string, CedarValue> = {
    kind: p.kind,
    boundary: p.boundary,
    environment: p.environment,
    labels: Object.entries(p.labels).map(([k, v]) => `${k}=${v}`),
  };
  if (p.owner !== null) attrs.owner = p.owner;
  const tags: Record<string, CedarValue> = {};
  for (const [k, v] of Object.entries(claims)) tags[k] = String(v);
  return { uid: { type: principalType(p.kind), id: p.id }, attrs, parents: p.parents, tags };
}

/** Resources carry boundary/environment as attributes and any extra attributes as string tags. */
export function resourceEntity(r: ResourceFacts): Entity {
  const tags: Record<string, CedarValue> = {};
  for (const [k, v] of Object.entries(r.attributes)) tags[k] = String(v);
  return { uid: { type: r.type, id: r.id }, attrs: { boundary: r.boundary, environment: r.environment }, parents: r.parents, tags };
}

/** Admin resources of the control plane (not governed by the boundary guard). */
export function adminEntity(type: string, id: string, attrs: Record<string, CedarValue>): Entity {
  return { uid: { type, id }, attrs: { boundary: 'platform', environment: 'control-plane', ...attrs }, parents: [] };
}

/**
 * Boundaries hold through the hierarchy: every parent of a resource is a declared resource in the
 * same boundary (so, transitively, every ancestor is). The boundary guard compares the principal
 * with the resource asked about; a `resource in Database::"x"` permit reaches x's descendants, so a
 * descendant in another boundary than its ancestors would carry one boundary's data under the
 * other's. Refused wherever resources are loaded (docs/policy.md). Throws InvalidInput naming the
 * field, e.g. `resources[1].parents[0]`.
 */
export function checkResourceHierarchy(resources: readonly ResourceFacts[], path = 'resources'): void {
  const byKey = new Map(resources.map((r) => [`${r.type}::${r.id}`, r]));
  resources.forEach((r, i) => {
    r.parents.forEach((p, j) => {
      const field = `${path}[${i}].parents[${j}]`;
      const parent = byKey.get(`${p.type}::${p.id}`);
      if (!parent) throw new InvalidInput(`${field}: ${p.type}::"${p.id}" is not a declared resource (declare it with its boundary)`, field);
      if (parent.boundary !== r.boundary) {
        throw new InvalidInput(`${field}: ${r.type}::"${r.id}" is in boundary ${r.boundary} but its parent ${p.type}::"${p.id}" is in ${parent.boundary}; a resource and its ancestors share one boundary`, field);
      }
    });
  });
  // The hierarchy is a DAG: a resource that is its own ancestor has no meaning in Cedar (`in`).
  const index = new Map(resources.map((r, i) => [`${r.type}::${r.id}`, i]));
  const state = new Map<string, 'open' | 'done'>();
  const visit = (key: string, trail: string[]): void => {
    if (state.get(key) === 'done') return;
    state.set(key, 'open');
    const i = index.get(key)!;
    resources[i]!.parents.forEach((p, j) => {
      const pk = `${p.type}::${p.id}`;
      if (state.get(pk) === 'open') {
        const loop = [...trail.slice(trail.indexOf(pk)), key, pk].map((k) => k.replace(/::(.*)$/, '::"$1"')).join(' → ');
        const field = `${path}[${i}].parents[${j}]`;
        throw new InvalidInput(`${field}: the resource hierarchy loops (${loop}); a resource cannot be its own ancestor`, field);
      }
      visit(pk, [...trail, key]);
    });
    state.set(key, 'done');
  };
  for (const key of index.keys()) visit(key, []);
}
