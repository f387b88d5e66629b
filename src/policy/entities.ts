// Building Cedar entities from inventory rows and config resources.
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

export function principalType(kind: string): string {
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
