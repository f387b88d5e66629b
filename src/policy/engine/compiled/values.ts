// Runtime values of the compiled Cedar evaluator.
//
//   Bool     → boolean
//   Long     → number when it is a safe integer, bigint otherwise (always normalised, so `===`
//              is value equality and a Long never silently loses precision)
//   String   → string
//   Entity   → EUid
//   Set      → CSet (deduplicated by structural key)
//   Record   → CRecord (a Map, so attribute names like `__proto__` are plain data)
//   ext      → Decimal | IpAddr | Datetime | Duration (see ext.ts)

import { Decimal, IpAddr, Datetime, Duration, callExtension } from './ext.ts';
import { CedarEvalError } from './errors.ts';

export { CedarEvalError };

export const I64_MIN = -(2n ** 63n);
export const I64_MAX = 2n ** 63n - 1n;

export type Value = boolean | number | bigint | string | EUid | CSet | CRecord | Decimal | IpAddr | Datetime | Duration;

export class EUid {
  readonly type: string;
  readonly id: string;
  /** `type \0 id` — unambiguous because a type name never contains NUL. */
  readonly key: string;
  constructor(type: string, id: string) {
    this.type = type;
    this.id = id;
    this.key = type + '\u0000' + id;
  }
  toString(): string {
    return `${this.type}::${JSON.stringify(this.id)}`;
  }
}

export class CSet {
  readonly items: Value[];
  #keys: Set<string> | undefined;
  #key: string | undefined;
  constructor(items: Value[]) {
    // Deduplicate structurally so that iteration and size match Cedar's set.
    if (items.length <= 1) {
      this.items = items;
    } else {
      const keys = new Set<string>();
      const out: Value[] = [];
      for (const v of items) {
        const k = valueKey(v);
        if (!keys.has(k)) {
          keys.add(k);
          out.push(v);
        }
      }
      this.items = out;
      this.#keys = keys;
    }
  }
  keys(): Set<string> {
    if (this.#keys === undefined) {
      const s = new Set<string>();
      for (const v of this.items) s.add(valueKey(v));
      this.#keys = s;
    }
    return this.#keys;
  }
  has(v: Value): boolean {
    const items = this.items;
    if (items.length <= 4) {
      for (let i = 0; i < items.length; i++) if (valueEq(items[i], v)) return true;
      return false;
    }
    return this.keys().has(valueKey(v));
  }
  key(): string {
    if (this.#key === undefined) this.#key = '[' + [...this.keys()].sort().join(',') + ']';
    return this.#key;
  }
}

export class CRecord {
  readonly map: Map<string, Value>;
  #key: string | undefined;
  constructor(map: Map<string, Value>) {
    this.map = map;
  }
  key(): string {
    if (this.#key === undefined) {
      const parts: string[] = [];
      for (const k of [...this.map.keys()].sort()) parts.push(JSON.stringify(k) + ':' + valueKey(this.map.get(k)!));
      this.#key = '{' + parts.join(',') + '}';
    }
    return this.#key;
  }
}

/** A canonical string for structural equality and hashing. */
function valueKey(v: Value): string {
  switch (typeof v) {
    case 'boolean':
      return v ? 'T' : 'F';
    case 'number':
    case 'bigint':
      return 'l' + String(v);
    case 'string':
      return 's' + JSON.stringify(v);
    default:
      if (v instanceof EUid) return 'e' + JSON.stringify(v.key);
      if (v instanceof CSet) return v.key();
      if (v instanceof CRecord) return v.key();
      return 'x' + v.key();
  }
}

export function valueEq(a: Value, b: Value): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object') return false;
  if (a instanceof EUid) return b instanceof EUid && a.key === b.key;
  if (a instanceof CSet) {
    if (!(b instanceof CSet) || a.items.length !== b.items.length) return false;
    for (const x of a.items) if (!b.has(x)) return false;
    return true;
  }
  if (a instanceof CRecord) {
    if (!(b instanceof CRecord) || a.map.size !== b.map.size) return false;
    for (const [k, x] of a.map) {
      const y = b.map.get(k);
      if (y === undefined || !valueEq(x, y)) return false;
    }
    return true;
  }
  if (b instanceof EUid || b instanceof CSet || b instanceof CRecord) return false;
  return a.constructor === b.constructor && a.key() === b.key();
}

export function typeName(v: Value): string {
  switch (typeof v) {
    case 'boolean':
      return 'bool';
    case 'number':
    case 'bigint':
      return 'long';
    case 'string':
      return 'string';
    default:
      if (v instanceof EUid) return 'entity';
      if (v instanceof CSet) return 'set';
      if (v instanceof CRecord) return 'record';
      if (v instanceof Decimal) return 'decimal';
      if (v instanceof IpAddr) return 'ipaddr';
      if (v instanceof Datetime) return 'datetime';
      return 'duration';
  }
}

export function typeError(expected: string, got: Value): CedarEvalError {
  return new CedarEvalError(`type error: expected ${expected}, got ${typeName(got)}`);
}

/** Normalises a bigint Long result; throws on 64-bit overflow. */
export function normLong(b: bigint, what: string): number | bigint {
  if (b < I64_MIN || b > I64_MAX) throw new CedarEvalError(`integer overflow while attempting to ${what}`);
  if (b >= -9007199254740991n && b <= 9007199254740991n) return Number(b);
  return b;
}

function longFromJson(n: number | bigint): number | bigint {
  if (typeof n === 'number') {
    if (!Number.isInteger(n)) throw new CedarEvalError(`not an integer: ${n}`);
    if (Number.isSafeInteger(n)) return n === 0 ? 0 : n;
    // A double beyond 2^53 is read the way cedar-wasm reads it: as the integer its shortest
    // decimal form spells (2**62 reads as 4611686018427388000), rejected outside the 64-bit
    // range. Callers that want Cedar's exact semantics pass such Longs as bigint.
    const s = String(n);
    if (/^-?[0-9]+$/.test(s)) {
      const b = BigInt(s);
      if (b >= I64_MIN && b <= I64_MAX) return b;
    }
    throw new CedarEvalError(`integer ${s} is outside the 64-bit range`);
  }
  return normLong(n, 'read a Long literal');
}

const extnMemo = new Map<string, Value>();

/**
 * Converts Cedar's JSON value format (entity attributes, context, policy literals) into runtime
 * values. Throws CedarEvalError for input Cedar rejects.
 */
export function fromJson(j: unknown): Value {
  switch (typeof j) {
    case 'boolean':
    case 'string':
      return j;
    case 'number':
    case 'bigint':
      return longFromJson(j);
    case 'object': {
      if (j === null) throw new CedarEvalError('null is not a Cedar value');
      if (Array.isArray(j)) return new CSet(j.map(fromJson));
      const o = j as Record<string, unknown>;
      const keys = Object.keys(o);
      if (keys.length === 1 && keys[0] === '__entity') {
        const u = o.__entity as Record<string, unknown>;
        if (u === null || typeof u !== 'object' || typeof u.type !== 'string' || typeof u.id !== 'string') {
          throw new CedarEvalError('invalid __entity escape');
        }
        return new EUid(u.type, u.id);
      }
      if (keys.length === 1 && keys[0] === '__extn') {
        const x = o.__extn as Record<string, unknown>;
        if (x === null || typeof x !== 'object' || typeof x.fn !== 'string') throw new CedarEvalError('invalid __extn escape');
        if (typeof x.arg === 'string') {
          // Extension literals repeat across requests (timestamps, source addresses): parse
          // each distinct one once. Values are immutable, so sharing them is safe.
          const mk = x.fn + '\u0000' + x.arg;
          const hit = extnMemo.get(mk);
          if (hit !== undefined) return hit;
          const r = callExtension(x.fn, [x.arg]);
          if (extnMemo.size >= 4096) extnMemo.clear();
          extnMemo.set(mk, r);
          return r;
        }
        let args: Value[];
        if ('arg' in x) args = [fromJson(x.arg)];
        else if (Array.isArray(x.args)) args = x.args.map(fromJson);
        else throw new CedarEvalError('invalid __extn escape');
        // Like Cedar, any extension function may appear here (`lessThan` yields a bool).
        return callExtension(x.fn, args);
      }
      if (keys.length === 1 && keys[0] === '__expr') throw new CedarEvalError('the `__expr` escape is no longer supported');
      const m = new Map<string, Value>();
      for (const k of keys) m.set(k, fromJson(o[k]));
      return new CRecord(m);
    }
    default:
      throw new CedarEvalError(`not a Cedar value: ${typeof j}`);
  }
}

export function uidFromJson(j: unknown): EUid {
  if (j !== null && typeof j === 'object') {
    let o = j as Record<string, unknown>;
    if ('__entity' in o && Object.keys(o).length === 1) o = o.__entity as Record<string, unknown>;
    if (o !== null && typeof o === 'object' && typeof o.type === 'string' && typeof o.id === 'string') return new EUid(o.type, o.id);
  }
  throw new CedarEvalError('invalid entity uid');
}
