// Effective permissions: the (action, resource) pairs the active policies allow an identity over
// the declared resources, with the determining policies and the conditions left for request time.
//
// How (docs/governance.md "Effective permissions"): each policy's condition is split into a
// boolean tree of atoms. Atoms that read nothing of the request (no `context`, no session claims
// = principal tags) are decided now by a compiled engine holding one derived permit per atom
// (`permit(<scope>) when { atom }`); the rest stay as the residual condition, shown as Cedar text
// and classified (purpose, time, authn, grants …). `context.bridge` is known (config bridges).
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import type { Entity, EntityUid, PolicySource } from '../policy/engine/types.ts';
import { CompiledEngine } from '../policy/engine/compiled/index.ts';
import type { PrincipalFacts } from '../policy/entities.ts';
import { principalEntity } from '../policy/entities.ts';

/** What a residual condition still reads at request time. */
export type ConditionKind =
  | 'purpose' // context.purpose (reason, ticket)
  | 'time' // context.request.time / hour / weekday
  | 'network' // context.request.sourceIp
  | 'authn' // context.authn: method, trust, mfa, assurance, authAgeSeconds (authn strength)
  | 'grants' // context.grants: an active access grant
  | 'break-glass' // context.breakGlass
  | 'delegation' // context.delegation
  | 'claims' // principal tags: verified claims of the session
  | 'request'; // anything else the caller or gateway supplies (credential, statement, ssh …)

/** One policy that can decide a pair, with what is left of its condition. */
export interface PolicyCondition {
  policy: string;
  /** The residual condition as a Cedar expression; absent when the policy holds as it is. */
  condition?: string;
  /** What the residual reads; empty when it holds as it is. */
  requires: ConditionKind[];
}

/** One (action, resource) pair the identity may be allowed. */
export interface EffectivePermission {
  action: string;
  resource: EntityUid;
  /**
   * `unconditional`: a permit holds whatever the request, and no forbid can apply;
   * `conditional`: allowed when one of `permits`' conditions holds and none of `forbids`' does.
   */
  status: 'unconditional' | 'conditional';
  /** The determining permits (any one suffices), each with its residual condition. */
  permits: PolicyCondition[];
  /** Forbids that still deny when their condition holds at request time (e.g. step-up). */
  forbids: PolicyCondition[];
}

/** The result of effectivePermissions. */
export interface EffectivePermissions {
  principal: EntityUid;
  /** Declared resources considered (after the resource filter). */
  resources: number;
  /** (action, resource) pairs the schema lets apply, i.e. the pairs examined. */
  pairs: number;
  /** Sorted by resource type, id, then action. */
  permissions: EffectivePermission[];
}

export interface PermissionModelInput {
  /** The active policies, as validated (system policies included). */
  policies: readonly PolicySource[];
  /** Declared resources as entities (config `resources:`). */
  resources: readonly Entity[];
  /** Action entities from the schema (with their groups). */
  actionEntities: readonly Entity[];
  /** The actions the schema lets apply to a principal type and a resource type. */
  actionsApplying: (principalType: string, resourceType: string) => readonly string[];
  /** Whether a declared bridge lets this principal boundary reach that resource boundary for the action (`context.bridge`). */
  bridged: (principalBoundary: string, resourceBoundary: string, action: string) => boolean;
}

/** Boolean structure of a condition over atoms. */
type Tree =
  | { t: 'and' | 'or'; l: Tree; r: Tree }
  | { t: 'not'; a: Tree }
  | { t: 'static'; id: string } // decided now by the derived engine
  | { t: 'bridge' } // context.bridge
  | { t: 'dynamic'; expr: unknown }; // read at request time

interface Analysed {
  id: string;
  effect: 'permit' | 'forbid';
  scopeId: string;
  tree: Tree | undefined;
}

/** Residual after simplification: true, false, or an expression. */
type Residual = boolean | { expr: unknown };

/** Everything that depends only on the policy set and resources: build once per active version. */
export class PermissionModel {
  readonly #engine = new CompiledEngine();
  readonly #policies: Analysed[] = [];
  readonly #resources: Entity[];
  readonly #in: PermissionModelInput;
  readonly #text = new Map<string, { condition: string; requires: ConditionKind[] }>();

  constructor(input: PermissionModelInput) {
    this.#in = input;
    this.#resources = [...input.resources];
    const derived: PolicySource[] = [];
    input.policies.forEach((p, i) => {
      const r = cedar.policyToJson(p.text);
      if (r.type !== 'success') throw new Error(`policy ${p.id} does not parse: ${r.errors.map((e) => e.message).join('; ')}`);
      const json = r.json as PolicyJsonLike;
      const scope = { principal: json.principal, action: json.action, resource: json.resource };
      const scopeId = `${i}`;
      derived.push({ id: scopeId, text: toText({ effect: 'permit', ...scope, conditions: [] }) });
      let k = 0;
      const atom = (expr: unknown): Tree => {
        if (isBridge(expr)) return { t: 'bridge' };
        if (isDynamic(expr)) return { t: 'dynamic', expr };
        const id = `${i}.${k++}`;
        derived.push({ id, text: toText({ effect: 'permit', ...scope, conditions: [{ kind: 'when', body: expr }] }) });
        return { t: 'static', id };
      };
      const build = (expr: unknown): Tree => {
        const o = expr as Record<string, { left: unknown; right: unknown; arg: unknown }>;
        if (o['&&']) return { t: 'and', l: build(o['&&'].left), r: build(o['&&'].right) };
        if (o['||']) return { t: 'or', l: build(o['||'].left), r: build(o['||'].right) };
        if (o['!']) return { t: 'not', a: build(o['!'].arg) };
        return atom(expr);
      };
      let tree: Tree | undefined;
      for (const c of json.conditions) {
        const body = c.kind === 'unless' ? { '!': { arg: c.body } } : c.body;
        const t = build(body);
        tree = tree === undefined ? t : { t: 'and', l: tree, r: t };
      }
      this.#policies.push({ id: p.id, effect: json.effect, scopeId, tree });
    });
    this.#engine.loadPolicies(derived);
    this.#engine.upsertEntities(input.actionEntities);
    this.#engine.upsertEntities(input.resources);
  }

  /** The declared resources (entities). */
  get resources(): readonly Entity[] {
    return this.#resources;
  }

  /** Effective permissions of one principal; see effectivePermissions. */
  explain(principal: PrincipalFacts, options: ExplainOptions = {}): EffectivePermissions {
    const entity = principalEntity(principal);
    delete entity.tags; // claims are the session's: request-time, never assumed
    const puid = entity.uid;
    const wanted = options.resources && new Set(options.resources.map((u) => `${u.type}::${u.id}`));
    const actionFilter = options.actions && new Set(options.actions);
    const out: EffectivePermission[] = [];
    let resources = 0;
    let pairs = 0;
    for (const res of this.#resources) {
      if (wanted && !wanted.has(`${res.uid.type}::${res.uid.id}`)) continue;
      resources++;
      const rb = typeof res.attrs.boundary === 'string' ? res.attrs.boundary : '';
      for (const action of this.#in.actionsApplying(puid.type, res.uid.type)) {
        if (actionFilter && !actionFilter.has(action)) continue;
        pairs++;
        const p = this.#pair(entity, principal.boundary, action, res.uid, rb);
        if (p) out.push(p);
      }
    }
    out.sort((a, b) => cmp(a.resource.type, b.resource.type) || cmp(a.resource.id, b.resource.id) || cmp(a.action, b.action));
    return { principal: puid, resources, pairs, permissions: out };
  }

  #pair(principal: Entity, pb: string, action: string, resource: EntityUid, rb: string): EffectivePermission | undefined {
    const r = this.#engine.authorize({ principal: principal.uid, action: { type: 'Action', id: action }, resource, context: {} }, [principal]);
    if (r.reasons.length === 0) return undefined;
    const sat = new Set(r.reasons);
    const errored = new Set(r.errors.map((e) => e.policyId));
    const bridge = rb !== pb && this.#in.bridged(pb, rb, action);
    const permits: PolicyCondition[] = [];
    const forbids: PolicyCondition[] = [];
    let unconditionalPermit = false;
    for (const pol of this.#policies) {
      if (!sat.has(pol.scopeId)) continue;
      const res = pol.tree === undefined ? true : simplify(pol.tree, sat, errored, bridge);
      if (res === false) continue;
      if (res === true) {
        if (pol.effect === 'forbid') return undefined; // denied whatever the request
        unconditionalPermit = true;
        permits.push({ policy: pol.id, requires: [] });
        continue;
      }
      const c = this.#render(res.expr);
      (pol.effect === 'permit' ? permits : forbids).push({ policy: pol.id, ...c });
    }
    if (permits.length === 0) return undefined;
    return { action, resource, status: unconditionalPermit && forbids.length === 0 ? 'unconditional' : 'conditional', permits, forbids };
  }

  #render(expr: unknown): { condition: string; requires: ConditionKind[] } {
    const key = JSON.stringify(expr);
    let v = this.#text.get(key);
    if (v === undefined) {
      const text = toText({ effect: 'permit', principal: { op: 'All' }, action: { op: 'All' }, resource: { op: 'All' }, conditions: [{ kind: 'when', body: expr }] });
      const m = /when\s*\{([\s\S]*)\}\s*;\s*$/.exec(text);
      const kinds = new Set<ConditionKind>();
      classify(expr, kinds);
      v = { condition: (m?.[1] ?? text).replace(/\s+/g, ' ').trim(), requires: [...kinds].sort() };
      if (this.#text.size < 100_000) this.#text.set(key, v);
    }
    return v;
  }
}

export interface ExplainOptions {
  /** Only these resources (each must be declared to be considered). */
  resources?: readonly EntityUid[];
  /** Only these actions. */
  actions?: readonly string[];
}

/**
 * Effective permissions of `principal` under `model` (build the model once per active policy
 * version with `new PermissionModel(...)`; it holds a compiled engine of derived policies).
 * Every listed pair is allowed in some request satisfying one of its permits' conditions and none
 * of its forbids'; every pair the engine allows for this identity's standing facts (its
 * memberships as declared, any claims, any context) is listed. Temporary role parents that an
 * access grant adds at request time are not standing memberships: a policy naming the role shows
 * the pair only for identities already in it (docs/governance.md).
 */
export function effectivePermissions(model: PermissionModel, principal: PrincipalFacts, options: ExplainOptions = {}): EffectivePermissions {
  return model.explain(principal, options);
}

interface PolicyJsonLike {
  effect: 'permit' | 'forbid';
  principal: unknown;
  action: unknown;
  resource: unknown;
  conditions: { kind: 'when' | 'unless'; body: unknown }[];
}

function toText(json: unknown): string {
  const r = cedar.policyToText(json as cedar.PolicyJson);
  if (r.type !== 'success') throw new Error(`cannot render a derived policy: ${r.errors.map((e) => e.message).join('; ')}`);
  return r.text;
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function isBridge(expr: unknown): boolean {
  const dot = (expr as { '.'?: { left: unknown; attr: string } })['.'];
  return dot !== undefined && dot.attr === 'bridge' && (dot.left as { Var?: string }).Var === 'context';
}

/** Reads `context` or a principal tag (session claims) anywhere inside. */
function isDynamic(node: unknown): boolean {
  if (typeof node !== 'object' || node === null) return false;
  if (Array.isArray(node)) return node.some(isDynamic);
  const o = node as Record<string, unknown>;
  if (o.Var === 'context') return true;
  for (const op of ['hasTag', 'getTag']) {
    const t = o[op] as { left?: { Var?: string } } | undefined;
    if (t?.left?.Var === 'principal') return true;
  }
  return Object.values(o).some(isDynamic);
}

function simplify(t: Tree, sat: ReadonlySet<string>, errored: ReadonlySet<string>, bridge: boolean): Residual {
  switch (t.t) {
    case 'static':
      // An atom that errors is left for request time (it is shown, never assumed either way).
      if (errored.has(t.id)) return { expr: { Value: 'error' } };
      return sat.has(t.id);
    case 'bridge':
      return bridge;
    case 'dynamic':
      return { expr: t.expr };
    case 'not': {
      const a = simplify(t.a, sat, errored, bridge);
      return typeof a === 'boolean' ? !a : { expr: { '!': { arg: a.expr } } };
    }
    case 'and':
    case 'or': {
      const l = simplify(t.l, sat, errored, bridge);
      const short = t.t === 'or';
      if (l === short) return short;
      const r = simplify(t.r, sat, errored, bridge);
      if (l === !short) return r;
      if (r === !short) return l;
      // `dyn && false` is false (or an error), `dyn || true` true (or an error): no request makes it otherwise.
      if (r === short) return short;
      const op = t.t === 'and' ? '&&' : '||';
      return { expr: { [op]: { left: (l as { expr: unknown }).expr, right: (r as { expr: unknown }).expr } } };
    }
  }
}

const CONTEXT_KIND: Record<string, ConditionKind> = {
  purpose: 'purpose',
  authn: 'authn',
  grants: 'grants',
  breakGlass: 'break-glass',
  delegation: 'delegation',
};

/** What the residual reads, by the first attribute under `context` (`request.sourceIp`: network). */
function classify(node: unknown, out: Set<ConditionKind>): void {
  if (typeof node !== 'object' || node === null) return;
  if (Array.isArray(node)) {
    for (const x of node) classify(x, out);
    return;
  }
  const o = node as Record<string, unknown>;
  for (const op of ['.', 'has']) {
    const d = o[op] as { left: Record<string, unknown>; attr: string } | undefined;
    if (d === undefined) continue;
    const inner = d.left['.'] as { left: Record<string, unknown>; attr: string } | undefined;
    if (inner?.left.Var === 'context' && inner.attr === 'request') {
      out.add(d.attr === 'sourceIp' ? 'network' : 'time');
      return;
    }
    if (d.left.Var === 'context') {
      out.add(CONTEXT_KIND[d.attr] ?? (d.attr === 'request' ? 'time' : 'request'));
      return;
    }
  }
  for (const op of ['hasTag', 'getTag']) {
    if ((o[op] as { left?: { Var?: string } } | undefined)?.left?.Var === 'principal') out.add('claims');
  }
  for (const v of Object.values(o)) classify(v, out);
}

