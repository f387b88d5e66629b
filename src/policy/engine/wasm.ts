// The reference engine: every decision is a call into @cedar-policy/cedar-wasm.
// Each call hands Cedar only the slice of entities the request can reach — from the principal,
// action, resource, context and the entity literals in the policies, following parents and
// entity-valued attributes and tags — because cedar-wasm re-reads every entity it is given.
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import type { AuthzRequest, AuthzResult, CedarValue, DecisionEngine, Entity, EntityUid, PolicySource } from './types.ts';
import { PolicyInvalid, EngineNotReady, DecisionFailed } from './errors.ts';

let nextSetId = 0;
const uidKey = (u: EntityUid): string => `${u.type}::${JSON.stringify(u.id)}`;

export class WasmEngine implements DecisionEngine {
  readonly kind = 'wasm' as const;
  #setId = '';
  #entities = new Map<string, Entity>();
  /** Entities named as literals in the active policies: reachable whatever the request. */
  #literals: EntityUid[] = [];

  loadPolicies(policies: readonly PolicySource[]): void {
    const staticPolicies: Record<string, string> = {};
    for (const p of policies) staticPolicies[p.id] = p.text;
    const id = `pcx-${++nextSetId}`;
    const r = cedar.preparsePolicySet(id, { staticPolicies });
    if (r.type !== 'success') {
      throw new PolicyInvalid(r.errors.map((e) => e.message).join('; '));
    }
    const literals = new Map<string, EntityUid>();
    for (const p of policies) {
      const json = cedar.policyToJson(p.text);
      if (json.type === 'success') collectEntityLiterals(json.json, literals);
    }
    this.#literals = [...literals.values()];
    this.#setId = id;
  }

  upsertEntities(entities: readonly Entity[]): void {
    for (const e of entities) this.#entities.set(uidKey(e.uid), e);
  }

  removeEntities(uids: readonly EntityUid[]): void {
    for (const u of uids) this.#entities.delete(uidKey(u));
  }

  authorize(request: AuthzRequest, requestEntities: readonly Entity[] = []): AuthzResult {
    if (this.#setId === '') throw new EngineNotReady();
    const overlay = new Map<string, Entity>();
    for (const e of requestEntities) overlay.set(uidKey(e.uid), e);
    const roots: EntityUid[] = [request.principal, request.action, request.resource, ...this.#literals];
    collectValueRefs(request.context as CedarValue, roots);
    const answer = cedar.statefulIsAuthorized({
      principal: request.principal,
      action: request.action,
      resource: request.resource,
      context: request.context as cedar.Context,
      preparsedPolicySetId: this.#setId,
      entities: this.#reachable(roots, overlay) as cedar.EntityJson[],
    });
    if (answer.type !== 'success') {
      throw new DecisionFailed(answer.errors.map((e) => e.message).join('; '));
    }
    const { decision, diagnostics } = answer.response;
    return {
      decision,
      reasons: [...diagnostics.reason].sort(),
      errors: diagnostics.errors.map((e) => ({ policyId: e.policyId, message: e.error.message })).sort((a, b) => (a.policyId < b.policyId ? -1 : 1)),
    };
  }

  #reachable(roots: EntityUid[], overlay: Map<string, Entity>): Entity[] {
    const out: Entity[] = [];
    const seen = new Set<string>();
    const stack = [...roots];
    while (stack.length > 0) {
      const uid = stack.pop()!;
      const key = uidKey(uid);
      if (seen.has(key)) continue;
      seen.add(key);
      const e = overlay.get(key) ?? this.#entities.get(key);
      if (!e) continue;
      out.push(e);
      stack.push(...e.parents);
      for (const v of Object.values(e.attrs)) collectValueRefs(v, stack);
      if (e.tags) for (const v of Object.values(e.tags)) collectValueRefs(v, stack);
    }
    return out;
  }
}

function collectValueRefs(v: CedarValue, out: EntityUid[]): void {
  if (typeof v !== 'object' || v === null) return;
  if (Array.isArray(v)) {
    for (const x of v) collectValueRefs(x, out);
    return;
  }
  if ('__entity' in v && typeof v.__entity === 'object') {
    out.push(v.__entity as EntityUid);
    return;
  }
  if ('__extn' in v) return;
  for (const x of Object.values(v)) collectValueRefs(x as CedarValue, out);
}

/** Every entity uid written in a policy's JSON form (scope constraints and expressions). */
function collectEntityLiterals(node: unknown, out: Map<string, EntityUid>): void {
  if (typeof node !== 'object' || node === null) return;
  if (Array.isArray(node)) {
    for (const x of node) collectEntityLiterals(x, out);
    return;
  }
  const o = node as Record<string, unknown>;
  const e = (o.__entity ?? (typeof o.type === 'string' && typeof o.id === 'string' && Object.keys(o).length === 2 ? o : undefined)) as EntityUid | undefined;
  if (e && typeof e.type === 'string' && typeof e.id === 'string') out.set(uidKey(e), { type: e.type, id: e.id });
  for (const x of Object.values(o)) collectEntityLiterals(x, out);
}
