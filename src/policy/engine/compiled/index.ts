// CompiledEngine: Cedar policies compiled to JavaScript closures, an index that narrows each
// request to the policies whose scope can match, and an in-memory entity store whose ancestor
// closure is maintained incrementally. Answers must equal cedar-wasm's (see docs/decision-engine.md).

import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import type { AuthzRequest, AuthzResult, DecisionEngine, Entity, EntityUid, PolicyError, PolicySource } from '../types.ts';
import { PolicyInvalid, EntityInvalid, EngineNotReady, DecisionFailed } from '../errors.ts';
import { compilePolicy, PolicyCompileError, type CompiledPolicy, type EntityData, type EvalCtx, type ScopeConstraint } from './compile.ts';
import { CedarEvalError } from './errors.ts';
import { closure, convertEntity, EntityStore } from './store.ts';
import { CRecord, EUid, fromJson, uidFromJson } from './values.ts';

export { CedarEvalError } from './errors.ts';
export { parseCedarJson } from './json.ts';

/**
 * Items keyed by the scope constraint they carry on one variable (principal or resource). Each
 * policy sits in exactly one slot, so a lookup never yields it twice. `is T in E` sits under E;
 * its type is checked when the policy is evaluated.
 */
interface Slots<T> {
  all: T[];
  eq: Map<string, T[]>;
  in: Map<string, T[]>;
  is: Map<string, T[]>;
}

const newSlots = <T>(): Slots<T> => ({ all: [], eq: new Map(), in: new Map(), is: new Map() });

function slotOf<T>(s: Slots<T>, c: ScopeConstraint, make: () => T[]): T[] {
  const get = (m: Map<string, T[]>, k: string): T[] => {
    let a = m.get(k);
    if (a === undefined) m.set(k, (a = make()));
    return a;
  };
  switch (c.op) {
    case 'all':
      return s.all;
    case 'eq':
      return get(s.eq, c.uid.key);
    case 'in':
      return get(s.in, c.uids[0].key);
    case 'is':
      // `is T in E` is usually more selective by E than by T: slot it under E and check T later.
      return c.in !== undefined ? get(s.in, c.in.key) : get(s.is, c.type);
  }
}

/** Calls `f` with every slot that can match entity `u` (whose ancestors are `anc`). */
function visitSlots<T>(s: Slots<T>, u: EUid, anc: ReadonlySet<string> | undefined, f: (items: T[]) => void): void {
  if (s.all.length > 0) f(s.all);
  if (s.eq.size > 0) {
    const a = s.eq.get(u.key);
    if (a !== undefined) f(a);
  }
  if (s.is.size > 0) {
    const a = s.is.get(u.type);
    if (a !== undefined) f(a);
  }
  if (s.in.size > 0) {
    const a = s.in.get(u.key);
    if (a !== undefined) f(a);
    if (anc !== undefined && anc.size > 0) {
      if (anc.size <= s.in.size) {
        for (const k of anc) {
          if (k === u.key) continue;
          const b = s.in.get(k);
          if (b !== undefined) f(b);
        }
      } else {
        for (const [k, b] of s.in) if (k !== u.key && anc.has(k)) f(b);
      }
    }
  }
}

/** Policies that can apply to one action: by principal scope, then by resource scope. */
type ActionBucket = Slots<Slots<CompiledPolicy>>;

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
  #jsonCache = new Map<string, cedar.PolicyJson>();

  /** Number of active policies. */
  get size(): number {
    return this.#index?.policies.length ?? 0;
  }

  loadPolicies(policies: readonly PolicySource[]): void {
    const compiled: CompiledPolicy[] = [];
    const ids = new Set<string>();
    const nextCache = new Map<string, cedar.PolicyJson>();
    for (const p of policies) {
      if (ids.has(p.id)) throw new PolicyInvalid(`duplicate policy id ${p.id}`);
      ids.add(p.id);
      const text = p.text;
      // The JSON form of a policy depends only on its text: reuse it across activations, so
      // re-activating a large set with a few changed policies only parses the changed ones.
      let json = this.#jsonCache.get(text);
      if (json === undefined) {
        const r = cedar.policyToJson(text); // parses exactly one static policy; fails on anything else
        if (r.type !== 'success') {
          throw new PolicyInvalid(`${p.id}: ${r.errors.map((e) => e.message).join('; ')}`);
        }
        json = r.json;
      }
      nextCache.set(text, json);
      try {
        compiled.push(compilePolicy(p.id, compiled.length, json, text));
      } catch (e) {
        if (e instanceof PolicyCompileError || e instanceof CedarEvalError) throw new PolicyInvalid(`${p.id}: ${e.message}`);
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
        for (const u of a.uids) {
          if (seen.has(u.key)) continue;
          seen.add(u.key);
          push(idx.actionIn, u.key, p);
        }
      } else throw new PolicyInvalid(`${p.id}: unexpected action scope`);
    }
    this.#index = idx;
    this.#jsonCache = nextCache;
    this.#buckets = new Map();
  }

  upsertEntities(entities: readonly Entity[]): void {
    try {
      this.#store.upsert(entities);
    } catch (e) {
      if (e instanceof CedarEvalError || e instanceof RangeError) throw new EntityInvalid(e.message);
      throw e;
    }
  }

  removeEntities(uids: readonly EntityUid[]): void {
    try {
      this.#store.remove(uids);
    } catch (e) {
      if (e instanceof CedarEvalError) throw new EntityInvalid(e.message);
      throw e;
    }
  }

  #bucket(idx: PolicyIndex, action: EUid, anc: ReadonlySet<string> | undefined, cacheable: boolean): ActionBucket {
    if (cacheable) {
      if (this.#bucketsVersion !== this.#store.actionVersion) {
        this.#buckets = new Map();
        this.#bucketsVersion = this.#store.actionVersion;
      }
      const b = this.#buckets.get(action.key);
      if (b !== undefined) return b;
    }
    const seen = new Set<number>();
    const list: CompiledPolicy[] = [];
    const add = (ps: CompiledPolicy[] | undefined): void => {
      if (ps === undefined) return;
      for (const p of ps) {
        if (seen.has(p.index)) continue;
        seen.add(p.index);
        list.push(p);
      }
    };
    add(idx.actionAll);
    add(idx.actionEq.get(action.key));
    add(idx.actionIn.get(action.key));
    if (anc !== undefined) for (const k of anc) add(idx.actionIn.get(k));
    list.sort((a, b) => a.index - b.index);
    const b: ActionBucket = newSlots();
    for (const p of list) {
      const outer = slotOf(b, p.principal, () => [newSlots<CompiledPolicy>()]);
      if (outer.length === 0) outer.push(newSlots<CompiledPolicy>());
      slotOf(outer[0], p.resource, () => []).push(p);
    }
    if (cacheable) {
      if (this.#buckets.size >= 4096) this.#buckets.clear(); // action ids come from requests: stay bounded
      this.#buckets.set(action.key, b);
    }
    return b;
  }

  authorize(request: AuthzRequest, requestEntities: readonly Entity[] = []): AuthzResult {
    const idx = this.#index;
    if (idx === null) throw new EngineNotReady();
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
      if (e instanceof CedarEvalError || e instanceof RangeError) throw new DecisionFailed(e.message);
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
        if (e instanceof CedarEvalError || e instanceof RangeError) throw new DecisionFailed(e.message);
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
        if (a.has(k)) throw new DecisionFailed(`entity hierarchy has a cycle containing \`${d.uid}\``);
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
    const evaluate = (ps: CompiledPolicy[]): void => {
      for (let i = 0; i < ps.length; i++) {
        const p = ps[i];
        // Slots guarantee everything but the type of an `is T in E` constraint.
        if (p.principal.op === 'is' && p.principal.type !== principal.type) continue;
        if (p.resource.op === 'is' && p.resource.type !== resource.type) continue;
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
    const resAnc = ctx.ancestors(resource);
    const byResource = (ss: Slots<CompiledPolicy>[]): void => visitSlots(ss[0], resource, resAnc, evaluate);
    visitSlots(bucket, principal, ctx.ancestors(principal), byResource);

    const errs: PolicyError[] = errors ?? [];
    if (errs.length > 1) errs.sort((a, b) => (a.policyId < b.policyId ? -1 : a.policyId > b.policyId ? 1 : 0));
    const f = forbids as string[] | null;
    if (f !== null) return { decision: 'deny', reasons: f.length > 1 ? f.sort() : f, errors: errs };
    const p = permits as string[] | null;
    if (p !== null) return { decision: 'allow', reasons: p.length > 1 ? p.sort() : p, errors: errs };
    return { decision: 'deny', reasons: [], errors: errs };
  }
}
