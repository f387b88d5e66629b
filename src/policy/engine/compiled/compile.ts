// Compiles one Cedar policy (its JSON AST from cedar-wasm `policyToJson`) into JavaScript
// closures, once, at activation time. Evaluation follows Cedar's semantics exactly: the same
// values, the same short-circuits, and an error (CedarEvalError) wherever Cedar raises one.

import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { CedarEvalError } from './errors.ts';
import { Datetime, Duration, getExtensionFn, extensionArity } from './ext.ts';
import { CRecord, CSet, EUid, fromJson, normLong, typeError, uidFromJson, valueEq, type Value } from './values.ts';

export interface EntityData {
  readonly uid: EUid;
  readonly attrs: Map<string, Value>;
  readonly tags: Map<string, Value> | undefined;
  readonly parents: readonly EUid[];
}

/** What a compiled expression sees while it runs. */
export interface EvalCtx {
  principal: EUid;
  action: EUid;
  resource: EUid;
  context: CRecord;
  entity(key: string): EntityData | undefined;
  /** Transitive ancestors (keys) of an entity, or undefined when it does not exist. */
  ancestors(uid: EUid): ReadonlySet<string> | undefined;
}

export type Fn = (c: EvalCtx) => Value;

export type ScopeConstraint =
  | { op: 'all' }
  | { op: 'eq'; uid: EUid }
  | { op: 'in'; uids: EUid[] }
  | { op: 'is'; type: string; in?: EUid };

export interface CompiledPolicy {
  readonly id: string;
  readonly index: number;
  readonly permit: boolean;
  readonly principal: ScopeConstraint;
  readonly action: ScopeConstraint;
  readonly resource: ScopeConstraint;
  /** Evaluates the when/unless clauses; true when satisfied. Throws CedarEvalError. */
  readonly cond: ((c: EvalCtx) => boolean) | null;
}

export class PolicyCompileError extends Error {}

/** Parses one static policy to its JSON AST with cedar-wasm; throws on a parse error. */
function parsePolicyJson(text: string): unknown {
  const r = cedar.policyToJson(text);
  if (r.type !== 'success') throw new Error(r.errors.map((e) => e.message).join('; '));
  return r.json;
}

// ---------------------------------------------------------------- integer literal precision

/**
 * cedar-wasm hands the AST to JavaScript with Long literals as doubles, so a literal beyond 2^53
 * arrives rounded (9007199254740993 reads as 9007199254740992). Matching the AST's numbers to the
 * text's integer tokens by order or by value is wrong: the AST is not in text order (record keys
 * are sorted, in Rust's byte order, and JavaScript reorders integer-like keys again), and two
 * distinct literals can round to the same double.
 *
 * Instead each integer token beyond 2^53 is replaced in the text by a distinct marker, an exact
 * safe integer that occurs nowhere else, and the marked text is parsed again. The two ASTs have
 * the same shape; wherever the marked one holds ±marker_i the original holds ±token_i, and we
 * take the exact value from there — by position in the tree, whatever the order of keys. Any
 * difference in shape, or a recovered value that does not round to the double cedar-wasm gave,
 * refuses the policy (PolicyCompileError) instead of guessing.
 */
const MAX_SAFE = 9007199254740991n;
const MARKER_BASE = 2 ** 52;

interface IntToken { start: number; end: number; value: bigint }

/** The integer tokens of a Cedar policy text, outside strings, comments and identifiers. */
export function integerTokens(text: string): IntToken[] {
  const out: IntToken[] = [];
  let i = 0;
  const n = text.length;
  while (i < n) {
    const ch = text[i];
    if (ch === '"') {
      i++;
      while (i < n && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
      i++;
    } else if (ch === '/' && text[i + 1] === '/') {
      while (i < n && text[i] !== '\n' && text[i] !== '\r') i++;
    } else if (/[A-Za-z_]/.test(ch)) {
      while (i < n && /[A-Za-z0-9_]/.test(text[i])) i++;
    } else if (ch >= '0' && ch <= '9') {
      const s = i;
      while (i < n && text[i] >= '0' && text[i] <= '9') i++;
      out.push({ start: s, end: i, value: BigInt(text.slice(s, i)) });
    } else {
      i++;
    }
  }
  return out;
}

function hasUnsafeNumber(v: unknown): boolean {
  if (typeof v === 'number') return !Number.isSafeInteger(v);
  if (Array.isArray(v)) return v.some(hasUnsafeNumber);
  if (v !== null && typeof v === 'object') return Object.values(v).some(hasUnsafeNumber);
  return false;
}

function collectNumbers(v: unknown, into: Set<number>): void {
  if (typeof v === 'number') into.add(Math.abs(v));
  else if (Array.isArray(v)) for (const x of v) collectNumbers(x, into);
  else if (v !== null && typeof v === 'object') for (const x of Object.values(v)) collectNumbers(x, into);
}

/** Builds an object with exactly these own keys (`__proto__` included, as a plain key). */
function record(entries: [string, unknown][]): Record<string, unknown> {
  return Object.fromEntries(entries);
}

/** The policy's AST with every Long literal beyond 2^53 as its exact bigint. */
function recoverLongs(ast: unknown, text: string, parse: (text: string) => unknown): unknown {
  if (!hasUnsafeNumber(ast)) return ast;
  const tokens = integerTokens(text);
  const used = new Set<number>();
  collectNumbers(ast, used);
  for (const t of tokens) if (t.value <= MAX_SAFE) used.add(Number(t.value));
  const byMarker = new Map<number, bigint>();
  let marked = '';
  let at = 0;
  let next = MARKER_BASE;
  for (const t of tokens) {
    if (t.value <= MAX_SAFE) continue;
    while (used.has(next)) next++;
    used.add(next);
    byMarker.set(next, t.value);
    marked += text.slice(at, t.start) + String(next);
    at = t.end;
    next++;
  }
  marked += text.slice(at);
  let twin: unknown;
  try {
    twin = parse(marked);
  } catch (e) {
    throw new PolicyCompileError(`cannot recover the exact integer literals: ${(e as Error).message}`);
  }
  const fail = (what: string): never => {
    throw new PolicyCompileError(`cannot recover the exact integer literals: ${what}`);
  };
  const walk = (v: unknown, m: unknown): unknown => {
    if (typeof v === 'number') {
      if (typeof m !== 'number') return fail(`a literal ${v} has no counterpart`);
      if (!Number.isInteger(v)) return fail(`non-integer literal ${v}`);
      if (Number.isSafeInteger(v) && !byMarker.has(Math.abs(m))) return v === m ? v : fail(`literal ${v} differs`);
      const t = byMarker.get(Math.abs(m));
      if (t === undefined) return fail(`literal ${v} is not in the text`);
      const exact = m < 0 ? -t : t;
      if (Number(exact) !== v) return fail(`literal ${exact} does not match ${v}`);
      return exact;
    }
    if (Array.isArray(v)) {
      if (!Array.isArray(m) || m.length !== v.length) return fail('a set or list differs in length');
      return v.map((x, i) => walk(x, m[i]));
    }
    if (v !== null && typeof v === 'object') {
      if (m === null || typeof m !== 'object' || Array.isArray(m)) return fail('an object has no counterpart');
      const keys = Object.keys(v);
      const mo = m as Record<string, unknown>;
      if (Object.keys(mo).length !== keys.length) return fail('an object differs in keys');
      return record(keys.map((k) => {
        if (!Object.hasOwn(mo, k)) fail(`key ${JSON.stringify(k)} has no counterpart`);
        return [k, walk((v as Record<string, unknown>)[k], mo[k])];
      }));
    }
    if (v !== m) return fail('a value differs');
    return v;
  };
  return walk(ast, twin);
}

// ---------------------------------------------------------------- helpers

const err = (m: string): never => {
  throw new CedarEvalError(m);
};

function asBool(v: Value): boolean {
  if (typeof v !== 'boolean') throw typeError('bool', v);
  return v;
}

function isLong(v: Value): v is number | bigint {
  return typeof v === 'number' || typeof v === 'bigint';
}

function getAttr(c: EvalCtx, v: Value, attr: string): Value {
  if (v instanceof EUid) {
    const e = c.entity(v.key);
    if (e === undefined) return err(`entity \`${v}\` does not exist`);
    const x = e.attrs.get(attr);
    if (x === undefined) return err(`\`${v}\` does not have the attribute \`${attr}\``);
    return x;
  }
  if (v instanceof CRecord) {
    const x = v.map.get(attr);
    if (x === undefined) return err(`record does not have the attribute \`${attr}\``);
    return x;
  }
  throw typeError('entity or record', v);
}

function hasAttr(c: EvalCtx, v: Value, attr: string): boolean {
  if (v instanceof EUid) {
    const e = c.entity(v.key);
    return e !== undefined && e.attrs.has(attr);
  }
  if (v instanceof CRecord) return v.map.has(attr);
  throw typeError('entity or record', v);
}

function entityIn(c: EvalCtx, l: EUid, r: Value): boolean {
  if (r instanceof EUid) {
    if (l.key === r.key) return true;
    const a = c.ancestors(l);
    return a !== undefined && a.has(r.key);
  }
  if (r instanceof CSet) {
    const items = r.items;
    for (let i = 0; i < items.length; i++) if (!(items[i] instanceof EUid)) throw typeError('entity', items[i]);
    let a: ReadonlySet<string> | undefined | null = null;
    for (let i = 0; i < items.length; i++) {
      const k = (items[i] as EUid).key;
      if (k === l.key) return true;
      if (a === null) a = c.ancestors(l);
      if (a !== undefined && a.has(k)) return true;
    }
    return false;
  }
  throw typeError('set or entity', r);
}

function addLong(a: Value, b: Value): Value {
  if (typeof a === 'number' && typeof b === 'number') {
    const r = a + b;
    if (Number.isSafeInteger(r)) return r;
  }
  if (!isLong(a)) throw typeError('long', a);
  if (!isLong(b)) throw typeError('long', b);
  return normLong(BigInt(a) + BigInt(b), 'add');
}

function subLong(a: Value, b: Value): Value {
  if (typeof a === 'number' && typeof b === 'number') {
    const r = a - b;
    if (Number.isSafeInteger(r)) return r;
  }
  if (!isLong(a)) throw typeError('long', a);
  if (!isLong(b)) throw typeError('long', b);
  return normLong(BigInt(a) - BigInt(b), 'subtract');
}

function mulLong(a: Value, b: Value): Value {
  if (typeof a === 'number' && typeof b === 'number') {
    const r = a * b;
    if (Number.isSafeInteger(r)) return r === 0 ? 0 : r;
  }
  if (!isLong(a)) throw typeError('long', a);
  if (!isLong(b)) throw typeError('long', b);
  return normLong(BigInt(a) * BigInt(b), 'multiply');
}

function cmp(a: Value, b: Value): number {
  if (typeof a === 'number' && typeof b === 'number') return a < b ? -1 : a > b ? 1 : 0;
  if (isLong(a)) {
    if (!isLong(b)) throw typeError('long', b);
    return a < b ? -1 : a > b ? 1 : 0;
  }
  if (a instanceof Datetime) {
    if (!(b instanceof Datetime)) throw typeError('datetime', b);
    return a.ms < b.ms ? -1 : a.ms > b.ms ? 1 : 0;
  }
  if (a instanceof Duration) {
    if (!(b instanceof Duration)) throw typeError('duration', b);
    return a.ms < b.ms ? -1 : a.ms > b.ms ? 1 : 0;
  }
  throw typeError('long, datetime or duration', a);
}

function asSet(v: Value): CSet {
  if (!(v instanceof CSet)) throw typeError('set', v);
  return v;
}

/**
 * Cedar `like`: `segs` are the literal runs between wildcards. Works on UTF-16 code units, which
 * is exact for well-formed strings (a literal never starts inside a surrogate pair).
 */
function likeMatch(s: string, segs: readonly string[]): boolean {
  if (segs.length === 1) return s === segs[0];
  const first = segs[0];
  const last = segs[segs.length - 1];
  if (s.length < first.length + last.length || !s.startsWith(first) || !s.endsWith(last)) return false;
  let pos = first.length;
  const end = s.length - last.length;
  for (let i = 1; i < segs.length - 1; i++) {
    const seg = segs[i];
    if (seg === '') continue;
    const at = s.indexOf(seg, pos);
    if (at < 0 || at + seg.length > end) return false;
    pos = at + seg.length;
  }
  return true;
}

// ---------------------------------------------------------------- expressions

interface Compiled {
  fn: Fn;
  /** Present when the expression is a constant that evaluated without error. */
  konst?: Value;
}

type Json = Record<string, unknown>;

function constant(v: Value): Compiled {
  return { fn: () => v, konst: v };
}

/** Folds an operator over constant operands at compile time; an error stays a runtime error. */
function fold(fn: Fn, parts: Compiled[]): Compiled {
  if (parts.every((p) => p.konst !== undefined)) {
    try {
      const v = fn(NO_CTX);
      return constant(v);
    } catch (e) {
      if (!(e instanceof CedarEvalError) && !(e instanceof NotConstant)) throw e;
      return { fn };
    }
  }
  return { fn };
}

class NotConstant extends Error {}

const NO_CTX: EvalCtx = {
  get principal(): EUid {
    throw new NotConstant();
  },
  get action(): EUid {
    throw new NotConstant();
  },
  get resource(): EUid {
    throw new NotConstant();
  },
  get context(): CRecord {
    throw new NotConstant();
  },
  entity: () => {
    throw new NotConstant();
  },
  ancestors: () => {
    throw new NotConstant();
  },
};

function compileExpr(e: unknown): Compiled {
  if (e === null || typeof e !== 'object' || Array.isArray(e)) throw new PolicyCompileError('malformed expression');
  const keys = Object.keys(e);
  if (keys.length !== 1) throw new PolicyCompileError(`malformed expression with keys ${keys.join(',')}`);
  const op = keys[0];
  const body = (e as Json)[op] as Json;
  const bin = (): [Compiled, Compiled] => [compileExpr(body.left), compileExpr(body.right)];

  switch (op) {
    case 'Value': {
      let v: Value;
      try {
        v = fromJson(body);
      } catch (x) {
        throw new PolicyCompileError(`invalid literal: ${(x as Error).message}`);
      }
      return constant(v);
    }
    case 'Var': {
      switch (body as unknown as string) {
        case 'principal':
          return { fn: (c) => c.principal };
        case 'action':
          return { fn: (c) => c.action };
        case 'resource':
          return { fn: (c) => c.resource };
        case 'context':
          return { fn: (c) => c.context };
      }
      throw new PolicyCompileError(`unknown variable ${String(body)}`);
    }
    case 'Slot':
      throw new PolicyCompileError('templates (slots) are not supported; link them first');
    case '!': {
      const ca = compileExpr(body.arg);
      const a = ca.fn;
      return fold((c) => {
        const v = a(c);
        if (typeof v !== 'boolean') throw typeError('bool', v);
        return !v;
      }, [ca]);
    }
    case 'neg': {
      const ca = compileExpr(body.arg);
      const a = ca.fn;
      return fold((c) => {
        const v = a(c);
        if (typeof v === 'number') return v === 0 ? 0 : -v;
        if (typeof v === 'bigint') return normLong(-v, 'negate');
        throw typeError('long', v);
      }, [ca]);
    }
    case '==':
    case '!=': {
      const [l, r] = bin();
      const neq = op === '!=';
      let fn: Fn;
      const k = l.konst ?? r.konst;
      const other = l.konst !== undefined ? r.fn : l.fn;
      if (k !== undefined && (typeof k === 'string' || typeof k === 'boolean' || typeof k === 'number')) {
        fn = neq ? (c) => other(c) !== k : (c) => other(c) === k;
      } else if (k instanceof EUid) {
        const key = k.key;
        fn = neq
          ? (c) => {
              const v = other(c);
              return !(v instanceof EUid && v.key === key);
            }
          : (c) => {
              const v = other(c);
              return v instanceof EUid && v.key === key;
            };
      } else {
        const lf = l.fn;
        const rf = r.fn;
        fn = neq ? (c) => !valueEq(lf(c), rf(c)) : (c) => valueEq(lf(c), rf(c));
      }
      return fold(fn, [l, r]);
    }
    case 'in': {
      const [l, r] = bin();
      const lf = l.fn;
      if (r.konst instanceof EUid) {
        const key = r.konst.key;
        return {
          fn: (c) => {
            const v = lf(c);
            if (!(v instanceof EUid)) throw typeError('entity', v);
            if (v.key === key) return true;
            const a = c.ancestors(v);
            return a !== undefined && a.has(key);
          },
        };
      }
      const rf = r.fn;
      return {
        fn: (c) => {
          const v = lf(c);
          const w = rf(c);
          if (!(v instanceof EUid)) throw typeError('entity', v);
          return entityIn(c, v, w);
        },
      };
    }
    case '<':
    case '<=':
    case '>':
    case '>=': {
      const [l, r] = bin();
      const lf = l.fn;
      const rf = r.fn;
      let fn: Fn;
      if (op === '<') fn = (c) => cmp(lf(c), rf(c)) < 0;
      else if (op === '<=') fn = (c) => cmp(lf(c), rf(c)) <= 0;
      else if (op === '>') fn = (c) => cmp(lf(c), rf(c)) > 0;
      else fn = (c) => cmp(lf(c), rf(c)) >= 0;
      return fold(fn, [l, r]);
    }
    case '&&': {
      const [l, r] = bin();
      const lf = l.fn;
      const rf = r.fn;
      return fold((c) => {
        const a = lf(c);
        if (a === false) return false;
        if (a !== true) throw typeError('bool', a);
        const b = rf(c);
        if (typeof b !== 'boolean') throw typeError('bool', b);
        return b;
      }, [l, r]);
    }
    case '||': {
      const [l, r] = bin();
      const lf = l.fn;
      const rf = r.fn;
      return fold((c) => {
        const a = lf(c);
        if (a === true) return true;
        if (a !== false) throw typeError('bool', a);
        const b = rf(c);
        if (typeof b !== 'boolean') throw typeError('bool', b);
        return b;
      }, [l, r]);
    }
    case '+':
    case '-':
    case '*': {
      const [l, r] = bin();
      const lf = l.fn;
      const rf = r.fn;
      const f = op === '+' ? addLong : op === '-' ? subLong : mulLong;
      return fold((c) => f(lf(c), rf(c)), [l, r]);
    }
    case 'contains': {
      const [l, r] = bin();
      const lf = l.fn;
      const rf = r.fn;
      return fold((c) => {
        const s = asSet(lf(c));
        return s.has(rf(c));
      }, [l, r]);
    }
    case 'containsAll':
    case 'containsAny': {
      const [l, r] = bin();
      const lf = l.fn;
      const rf = r.fn;
      const all = op === 'containsAll';
      return fold((c) => {
        const a = asSet(lf(c));
        const b = asSet(rf(c));
        if (all) {
          for (const x of b.items) if (!a.has(x)) return false;
          return true;
        }
        for (const x of b.items) if (a.has(x)) return true;
        return false;
      }, [l, r]);
    }
    case 'isEmpty': {
      const a = compileExpr(body.arg);
      const af = a.fn;
      return fold((c) => asSet(af(c)).items.length === 0, [a]);
    }
    case 'getTag':
    case 'hasTag': {
      const [l, r] = bin();
      const lf = l.fn;
      const rf = r.fn;
      const get = op === 'getTag';
      return {
        fn: (c) => {
          const v = lf(c);
          const t = rf(c);
          if (!(v instanceof EUid)) throw typeError('entity', v);
          if (typeof t !== 'string') throw typeError('string', t);
          const e = c.entity(v.key);
          if (!get) return e !== undefined && e.tags !== undefined && e.tags.has(t);
          if (e === undefined) return err(`entity \`${v}\` does not exist`);
          const x = e.tags?.get(t);
          if (x === undefined) return err(`\`${v}\` does not have the tag \`${t}\``);
          return x;
        },
      };
    }
    case '.': {
      const l = compileExpr(body.left);
      const attr = body.attr as string;
      const lf = l.fn;
      return fold((c) => getAttr(c, lf(c), attr), [l]);
    }
    case 'has': {
      const l = compileExpr(body.left);
      const lf = l.fn;
      const attrs = Array.isArray(body.attr) ? (body.attr as string[]) : [body.attr as string];
      if (attrs.length === 1) {
        const a0 = attrs[0];
        return fold((c) => hasAttr(c, lf(c), a0), [l]);
      }
      return fold((c) => {
        let v = lf(c);
        for (let i = 0; i < attrs.length; i++) {
          if (!hasAttr(c, v, attrs[i])) return false;
          if (i < attrs.length - 1) v = getAttr(c, v, attrs[i]);
        }
        return true;
      }, [l]);
    }
    case 'like': {
      const l = compileExpr(body.left);
      const lf = l.fn;
      // Literal runs between wildcards. Matching is greedy leftmost search (linear-time per
      // segment, no backtracking), so an attacker-chosen string cannot blow up evaluation.
      const segs: string[] = [''];
      for (const p of body.pattern as unknown[]) {
        if (p === 'Wildcard') segs.push('');
        else if (p !== null && typeof p === 'object' && typeof (p as Json).Literal === 'string') segs[segs.length - 1] += (p as Json).Literal as string;
        else throw new PolicyCompileError('malformed like pattern');
      }
      return fold((c) => {
        const v = lf(c);
        if (typeof v !== 'string') throw typeError('string', v);
        return likeMatch(v, segs);
      }, [l]);
    }
    case 'is': {
      const l = compileExpr(body.left);
      const lf = l.fn;
      const type = body.entity_type as string;
      if (body.in === undefined) {
        return {
          fn: (c) => {
            const v = lf(c);
            if (!(v instanceof EUid)) throw typeError('entity', v);
            return v.type === type;
          },
        };
      }
      const rf = compileExpr(body.in).fn;
      return {
        fn: (c) => {
          const v = lf(c);
          if (!(v instanceof EUid)) throw typeError('entity', v);
          if (v.type !== type) return false;
          return entityIn(c, v, rf(c));
        },
      };
    }
    case 'if-then-else': {
      const i = compileExpr(body.if);
      const t = compileExpr(body.then);
      const el = compileExpr(body.else);
      const f = i.fn;
      const tf = t.fn;
      const ef = el.fn;
      if (i.konst === true) return t;
      if (i.konst === false) return el;
      return { fn: (c) => (asBool(f(c)) ? tf(c) : ef(c)) };
    }
    case 'Set': {
      const items = (body as unknown as unknown[]).map(compileExpr);
      const fs = items.map((x) => x.fn);
      return fold((c) => {
        const vs: Value[] = new Array(fs.length);
        for (let i = 0; i < fs.length; i++) vs[i] = fs[i](c);
        return new CSet(vs);
      }, items);
    }
    case 'Record': {
      const entries = Object.entries(body).map(([k, x]) => [k, compileExpr(x)] as const);
      return fold((c) => {
        const m = new Map<string, Value>();
        for (const [k, x] of entries) m.set(k, x.fn(c));
        return new CRecord(m);
      }, entries.map(([, x]) => x));
    }
    default: {
      if (!Array.isArray(body)) throw new PolicyCompileError(`unknown operator ${op}`);
      const f = getExtensionFn(op);
      const args = (body as unknown[]).map(compileExpr);
      const fs = args.map((a) => a.fn);
      if (f === undefined) return { fn: () => err(`unknown extension function ${op}`) };
      if (extensionArity(op) !== args.length) return { fn: () => err(`wrong number of arguments to ${op}`) };
      if (fs.length === 1) {
        const a0 = fs[0];
        return fold((c) => f([a0(c)]) as Value, args);
      }
      if (fs.length === 2) {
        const a0 = fs[0];
        const a1 = fs[1];
        return fold((c) => f([a0(c), a1(c)]) as Value, args);
      }
      return fold((c) => f(fs.map((g) => g(c))) as Value, args);
    }
  }
}

// ---------------------------------------------------------------- policies

function scopeOf(j: Json, isAction: boolean): ScopeConstraint {
  const op = j.op as string;
  if ('slot' in j) throw new PolicyCompileError('templates (slots) are not supported; link them first');
  switch (op) {
    case 'All':
      return { op: 'all' };
    case '==':
      return { op: 'eq', uid: uidFromJson(j.entity) };
    case 'in':
      if (isAction && Array.isArray(j.entities)) return { op: 'in', uids: (j.entities as unknown[]).map(uidFromJson) };
      return { op: 'in', uids: [uidFromJson(j.entity)] };
    case 'is': {
      const inner = j.in as Json | undefined;
      if (inner !== undefined && 'slot' in inner) throw new PolicyCompileError('templates (slots) are not supported');
      return inner === undefined ? { op: 'is', type: j.entity_type as string } : { op: 'is', type: j.entity_type as string, in: uidFromJson(inner.entity) };
    }
  }
  throw new PolicyCompileError(`unknown scope constraint ${op}`);
}

export function compilePolicy(id: string, index: number, json: unknown, text: string): CompiledPolicy {
  const j = recoverLongs(json, text, parsePolicyJson) as Json;
  const clauses = (j.conditions as Json[]).map((cl) => ({ when: cl.kind === 'when', c: compileExpr(cl.body) }));
  const fns = clauses.map((cl) => ({ when: cl.when, fn: cl.c.fn }));
  let cond: ((c: EvalCtx) => boolean) | null;
  if (fns.length === 0) cond = null;
  else if (fns.length === 1) {
    const f = fns[0].fn;
    cond = fns[0].when
      ? (c) => {
          const v = f(c);
          if (typeof v !== 'boolean') throw typeError('bool', v);
          return v;
        }
      : (c) => {
          const v = f(c);
          if (typeof v !== 'boolean') throw typeError('bool', v);
          return !v;
        };
  } else {
    cond = (c) => {
      for (let i = 0; i < fns.length; i++) {
        const v = fns[i].fn(c);
        if (typeof v !== 'boolean') throw typeError('bool', v);
        if (v !== fns[i].when) return false;
      }
      return true;
    };
  }
  return {
    id,
    index,
    permit: j.effect === 'permit',
    principal: scopeOf(j.principal as Json, false),
    action: scopeOf(j.action as Json, true),
    resource: scopeOf(j.resource as Json, false),
    cond,
  };
}
