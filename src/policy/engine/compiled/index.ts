// CompiledEngine: Cedar policies compiled to JavaScript closures, an index that narrows each
// request to the policies whose scope can match, and an in-memory entity store whose ancestor
// closure is maintained incrementally. Answers must equal cedar-wasm's (see docs/decision-engine.md).

import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import type { AuthzRequest, AuthzResult, DecisionEngine, Entity, EntityUid, PolicyError, PolicySource } from '../types.ts';
import { PortcullisError } from '../../../common/errors.ts';
import { compilePolicy, scopeMatches, PolicyCompileError, type CompiledPolicy, type EntityData, type EvalCtx } from './compile.ts';
import { CedarEvalError } from './errors.ts';
import { closure, convertEntity, EntityStore } from './store.ts';
import { CRecord, EUid, fromJson, uidFromJson } from './values.ts';

export { CedarEvalError } from './errors.ts';

/** Policies that can apply to one action, sub-indexed by principal scope. */
interface ActionBucket {
  all: CompiledPolicy[];
  eq: Map<string, CompiledPolicy[]>;
  in: Map<string, CompiledPolicy[]>;
  is: Map<string, CompiledPolicy[]>;
}

interface PolicyIndex {
  policies: CompiledPolicy[];
  actionAll: CompiledPolicy[];
  actionEq: Map<string, CompiledPolicy[]>;
  actionIn: Map<string, CompiledPolicy[]>;
}

function push<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const a = m.get(k);
  if (a === undefined) m.set(k, [v]);
  else a.push(v);
}

const EMPTY_CONTEXT = new CRecord(new Map());

export class CompiledEngine implements DecisionEngine {
  readonly kind = 'compiled' as const;
  #index: PolicyIndex | null = null;
  readonly #store = new EntityStore();
  #buckets = new Map<string, ActionBucket>();
  #bucketsVersion = -1;

  /** Number of active policies. */
  get size(): number {
    return this.#index?.policies.length ?? 0;
  }

  loadPolicies(policies: readonly PolicySource[]): void {
    const compiled: CompiledPolicy[] = [];
    const ids = new Set<string>();
    for (const p of policies) {
      if (ids.has(p.id)) throw new PortcullisError('policy_invalid', 400, `duplicate policy id ${p.id}`);
      ids.add(p.id);
      const parts = cedar.policySetTextToParts(p.text);
      if (parts.type !== 'success') {
        throw new PortcullisError('policy_invalid', 400, `${p.id}: ${parts.errors.map((e) => e.message).join('; ')}`);
      }
      if (parts.policies.length !== 1 || parts.policy_templates.length !== 0) {
        throw new PortcullisError('policy_invalid', 400, `${p.id}: expected exactly one static policy`);
      }
      const text = parts.policies[0];
      const json = cedar.policyToJson(text);
      if (json.type !== 'success') {
        throw new PortcullisError('policy_invalid', 400, `${p.id}: ${json.errors.map((e) => e.message).join('; ')}`);
      }
      try {
        compiled.push(compilePolicy(p.id, compiled.length, json.json, text));
      } catch (e) {
        if (e instanceof PolicyCompileError || e instanceof CedarEvalError) throw new PortcullisError('policy_invalid', 400, `${p.id}: ${e.message}`);
        throw e;
      }
    }
    const idx: PolicyIndex = { policies: compiled, actionAll: [], actionEq: new Map(), actionIn: new Map() };
    for (const p of compiled) {
      const a = p.action;
      if (a.op === 'all') idx.actionAll.push(p);
      else if (a.op === 'eq') push(idx.actionEq, a.uid.key, p);
      else if (a.op === 'in') {
        const seen = new Set<string>();
        for (const u of a.uids) if (!seen.has(u.key)) (seen.add(u.key), push(idx.actionIn, u.key, p));
      } else throw new PortcullisError('policy_invalid', 400, `${p.id}: unexpected action scope`);
    }
    this.#index = idx;
    this.#buckets = new Map();
  }

  upsertEntities(entities: readonly Entity[]): void {
    try {
      this.#store.upsert(entities);
    } catch (e) {
      if (e instanceof CedarEvalError) throw new PortcullisError('entity_invalid', 400, e.message);
      throw e;
    }
  }

  removeEntities(uids: readonly EntityUid[]): void {
    try {
      this.#store.remove(uids);
    } catch (e) {
      if (e instanceof CedarEvalError) throw new PortcullisError('entity_invalid', 400, e.message);
      throw e;
    }
  }

  #bucket(idx: PolicyIndex, action: EUid, anc: ReadonlySet<string> | undefined, cacheable: boolean): ActionBucket {
    if (cacheable) {
      if (this.#bucketsVersion !== this.#store.version) {
        this.#buckets = new Map();
        this.#bucketsVersion = this.#store.version;
      }
      const b = this.#buckets.get(action.key);
      if (b !== undefined) return b;
    }
    const seen = new Set<number>();
    const list: CompiledPolicy[] = [];
    const add = (ps: CompiledPolicy[] | undefined): void => {
      if (ps === undefined) return;
      for (const p of ps) if (!seen.has(p.index)) (seen.add(p.index), list.push(p));
    };
    add(idx.actionAll);
    add(idx.actionEq.get(action.key));
    add(idx.actionIn.get(action.key));
    if (anc !== undefined) for (const k of anc) add(idx.actionIn.get(k));
    list.sort((a, b) => a.index - b.index);
    const b: ActionBucket = { all: [], eq: new Map(), in: new Map(), is: new Map() };
    for (const p of list) {
      const s = p.principal;
      if (s.op === 'all') b.all.push(p);
      else if (s.op === 'eq') push(b.eq, s.uid.key, p);
      else if (s.op === 'in') push(b.in, s.uids[0].key, p);
      else push(b.is, s.type, p);
    }
    if (cacheable) this.#buckets.set(action.key, b);
    return b;
  }

  authorize(request: AuthzRequest, requestEntities: readonly Entity[] = []): AuthzResult {
    const idx = this.#index;
    if (idx === null) throw new PortcullisError('engine_not_ready', 503, 'no policy set loaded');
    let principal: EUid, action: EUid, resource: EUid, context: CRecord;
    try {
      principal = uidFromJson(request.principal);
      action = uidFromJson(request.action);
      resource = uidFromJson(request.resource);
      const rc = request.context;
      if (rc === undefined || rc === null) context = EMPTY_CONTEXT;
      else {
        if (typeof rc !== 'object' || Array.isArray(rc)) throw new CedarEvalError('context must be a record');
        let empty = true;
        for (const _ in rc) {
          empty = false;
          break;
        }
        if (empty) context = EMPTY_CONTEXT;
        else {
          const c = fromJson(rc);
          if (!(c instanceof CRecord)) throw new CedarEvalError('context must be a record');
          context = c;
        }
      }
    } catch (e) {
      if (e instanceof CedarEvalError) throw new PortcullisError('decision_failed', 400, e.message);
      throw e;
    }

    const store = this.#store;
    let ctx: EvalCtx;
    let cacheable = true;
    if (requestEntities.length === 0) {
      ctx = {
        principal,
        action,
        resource,
        context,
        entity: (k) => store.get(k),
        ancestors: (u) => store.ancestors(u.key),
      };
    } else {
      const overlay = new Map<string, EntityData>();
      try {
        for (const e of requestEntities) {
          const d = convertEntity(e);
          if (overlay.has(d.uid.key)) throw new CedarEvalError(`duplicate request entity ${d.uid}`);
          overlay.set(d.uid.key, d);
        }
      } catch (e) {
        if (e instanceof CedarEvalError) throw new PortcullisError('decision_failed', 400, e.message);
        throw e;
      }
      // Does the overlay change the hierarchy that stored entities see? Only when an overlaid
      // entity is a parent of stored entities and its own parents (or existence) differ.
      let touched = false;
      for (const [k, d] of overlay) {
        if (!store.children.has(k)) continue;
        const old = store.get(k);
        if (old === undefined || old.parents.length !== d.parents.length || old.parents.some((p, i) => p.key !== d.parents[i].key)) {
          touched = true;
          break;
        }
      }
      if (overlay.has(action.key) || touched) cacheable = false;
      const lookup = (k: string): EntityData | undefined => overlay.get(k) ?? store.get(k);
      const memo = new Map<string, ReadonlySet<string>>();
      const closed = touched ? (): undefined => undefined : (k: string): ReadonlySet<string> | undefined => (overlay.has(k) ? undefined : store.ancestors(k));
      // The stored hierarchy is acyclic, so any cycle in the merged one runs through the overlay.
      for (const [k, d] of overlay) {
        if (d.parents.length === 0) continue;
        const a = closure(d, lookup, closed);
        if (a.has(k)) throw new PortcullisError('decision_failed', 400, `entity hierarchy has a cycle containing \`${d.uid}\``);
        memo.set(k, a);
      }
      ctx = {
        principal,
        action,
        resource,
        context,
        entity: lookup,
        ancestors: (u) => {
          if (!touched && !overlay.has(u.key)) return store.ancestors(u.key);
          let a = memo.get(u.key);
          if (a === undefined) {
            const d = lookup(u.key);
            if (d === undefined) return undefined;
            a = closure(d, lookup, closed);
            memo.set(u.key, a);
          }
          return a;
        },
      };
    }

    const bucket = this.#bucket(idx, action, ctx.ancestors(action), cacheable);

    let permits: string[] | null = null;
    let forbids: string[] | null = null;
    let errors: PolicyError[] | null = null;
    const run = (ps: CompiledPolicy[] | undefined): void => {
      if (ps === undefined) return;
      for (let i = 0; i < ps.length; i++) {
        const p = ps[i];
        if (!scopeMatches(ctx, p.resource, resource)) continue;
        if (p.principal.op === 'is' && p.principal.in !== undefined && !scopeMatches(ctx, p.principal, principal)) continue;
        let ok = true;
        if (p.cond !== null) {
          try {
            ok = p.cond(ctx);
          } catch (e) {
            if (!(e instanceof CedarEvalError)) throw e;
            (errors ??= []).push({ policyId: p.id, message: e.message });
            continue;
          }
        }
        if (ok) {
          if (p.permit) (permits ??= []).push(p.id);
          else (forbids ??= []).push(p.id);
        }
      }
    };
    run(bucket.all);
    if (bucket.eq.size > 0) run(bucket.eq.get(principal.key));
    if (bucket.is.size > 0) run(bucket.is.get(principal.type));
    if (bucket.in.size > 0) {
      run(bucket.in.get(principal.key));
      const anc = ctx.ancestors(principal);
      if (anc !== undefined && anc.size > 0) {
        if (anc.size <= bucket.in.size) {
          for (const k of anc) if (k !== principal.key) run(bucket.in.get(k));
        } else {
          for (const [k, ps] of bucket.in) if (k !== principal.key && anc.has(k)) run(ps);
        }
      }
    }

    const errs: PolicyError[] = errors ?? [];
    if (errs.length > 1) errs.sort((a, b) => (a.policyId < b.policyId ? -1 : a.policyId > b.policyId ? 1 : 0));
    const f = forbids as string[] | null;
    if (f !== null) return { decision: 'deny', reasons: f.length > 1 ? f.sort() : f, errors: errs };
    const p = permits as string[] | null;
    if (p !== null) return { decision: 'allow', reasons: p.length > 1 ? p.sort() : p, errors: errs };
    return { decision: 'deny', reasons: [], errors: errs };
  }
}
