// The reference engine: every decision is a call into @cedar-policy/cedar-wasm.
// Correct by construction, but each call re-reads all entities and context as JSON.
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import type { AuthzRequest, AuthzResult, DecisionEngine, Entity, EntityUid, PolicySource } from './types.ts';
import { PortcullisError } from '../../common/errors.ts';

let nextSetId = 0;
const uidKey = (u: EntityUid): string => `${u.type}::${JSON.stringify(u.id)}`;

export class WasmEngine implements DecisionEngine {
  readonly kind = 'wasm' as const;
  #setId = '';
  #entities = new Map<string, Entity>();
  #cachedList: Entity[] | null = null;

  loadPolicies(policies: readonly PolicySource[]): void {
    const staticPolicies: Record<string, string> = {};
    for (const p of policies) staticPolicies[p.id] = p.text;
    const id = `pcx-${++nextSetId}`;
    const r = cedar.preparsePolicySet(id, { staticPolicies });
    if (r.type !== 'success') {
      throw new PortcullisError('policy_invalid', 400, r.errors.map((e) => e.message).join('; '));
    }
    this.#setId = id;
  }

  upsertEntities(entities: readonly Entity[]): void {
    for (const e of entities) this.#entities.set(uidKey(e.uid), e);
    this.#cachedList = null;
  }

  removeEntities(uids: readonly EntityUid[]): void {
    for (const u of uids) this.#entities.delete(uidKey(u));
    this.#cachedList = null;
  }

  authorize(request: AuthzRequest, requestEntities: readonly Entity[] = []): AuthzResult {
    if (this.#setId === '') throw new PortcullisError('engine_not_ready', 503, 'no policy set loaded');
    let entities = (this.#cachedList ??= [...this.#entities.values()]);
    if (requestEntities.length > 0) {
      const over = new Set(requestEntities.map((e) => uidKey(e.uid)));
      entities = [...entities.filter((e) => !over.has(uidKey(e.uid))), ...requestEntities];
    }
    const answer = cedar.statefulIsAuthorized({
      principal: request.principal,
      action: request.action,
      resource: request.resource,
      context: request.context as cedar.Context,
      preparsedPolicySetId: this.#setId,
      entities: entities as cedar.EntityJson[],
    });
    if (answer.type !== 'success') {
      throw new PortcullisError('decision_failed', 400, answer.errors.map((e) => e.message).join('; '));
    }
    const { decision, diagnostics } = answer.response;
    return {
      decision,
      reasons: [...diagnostics.reason].sort(),
      errors: diagnostics.errors.map((e) => ({ policyId: e.policyId, message: e.error.message })),
    };
  }
}
