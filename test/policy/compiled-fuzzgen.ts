// Seeded generator of random Cedar policies (as text), entities and requests for differential
// testing of CompiledEngine against cedar-wasm. Deliberately produces ill-typed expressions,
// missing attributes, overflow, bad extension literals and odd hierarchies, so that error paths
// are compared as often as decisions.

import type { AuthzRequest, CedarValue, Entity, EntityUid } from '../../src/policy/engine/types.ts';

export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  next(): number {
    // mulberry32
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)];
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

const PTYPES = ['User', 'Workload', 'NS::User'] as const;
const RTYPES = ['Doc', 'Database'] as const;
const GTYPES = ['Group'] as const;
const IDS = ['a', 'b', 'c'];
const ACTIONS = ['read', 'write', 'delete', 'readGroup', 'all'];
const ATTRS = ['name', 'age', 'flag', 'tags', 'owner', 'addr', 'rec', 'level', 'when', 'span', 'big'];
const STRS = ['', 'a', 'ab', 'abc', 'a*c', 'b', 'prod', 'dev', '*', 'x\\y', 'ü', '\u{1F600}'];
const LONGS = ['0', '1', '-1', '2', '7', '100', '9223372036854775807', '9223372036854775806', '4611686018427387904', '3037000500', '9007199254740993'];
const IPS = ['127.0.0.1', '10.0.0.1', '10.0.0.0/8', '10.1.2.3/16', '192.168.0.1/24', '224.0.0.1', '::1', '::', 'ff02::1', '2001:db8::/32', '::1/127', '1.2.3.4/33', '01.2.3.4', '10.0.0.1/08', '::ffff:1.2.3.4', 'fe80::1%1', '127.0.0.1/0', '1:2:3:4:5:6:7:8', '1::2::3', 'abc'];
const DECS = ['0.0', '1.5', '-1.5', '-0.5', '0.5', '1.23456', '922337203685477.5807', '922337203685477.5808', '-922337203685477.5808', '1.', '.5', '12', '3.1400'];
const DTS = ['2024-01-01', '2024-02-29', '2023-02-29', '2024-01-01T10:00:00Z', '2024-01-01T10:00:00.123Z', '2024-01-01T10:00:00+0130', '2024-01-01T10:00:00-2359', '2024-01-01T24:00:00Z', '2024-01-01T10:00:00+2400', '0000-01-01', '9999-12-31T23:59:59.999Z', '1969-12-31T23:59:59Z', '2024-1-01', 'x'];
const DURS = ['1d', '2h', '30m', '45s', '500ms', '1d2h3m4s5ms', '-1h', '-9223372036854775808ms', '9223372036854775807ms', '9223372036854775808ms', '106751991167d', '106751991168d', '1h1d', '', '-', '0ms'];

function q(s: string): string {
  return JSON.stringify(s).replace(/[\u007f-\uffff]/g, (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`);
}

const P53 = 9007199254740992n;
const I64_MAX = 9223372036854775807n;
/** Record keys whose orders differ: source, Rust's byte order, UTF-16 order, JavaScript's own-key order. */
const BIG_KEYS = ['a', 'b', 'z', 'B', '_1', '10', '9', 'é', '\u{1F600}', '\u{FFFF}', '\u{10000}', 'q"', 'back\\', '__proto__', 'constructor'];
const BIG_OTHERS = ['User::"9007199254740993"', 'decimal("922337203685477.5807")', 'ip("10.0.0.1")', '"9223372036854775807"', 'true', '[]', '{}'];
type BigTree = { k: 'long'; v: bigint } | { k: 'other'; text: string } | { k: 'set'; items: BigTree[] } | { k: 'rec'; e: [string, BigTree][] };

/** A record key as Cedar text: a quoted string with escapes, or a bare identifier where possible. */
function keyText(k: string, quoted: boolean): string {
  if (!quoted && /^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) return k;
  let s = '"';
  for (const c of k) {
    const cp = c.codePointAt(0)!;
    if (c === '"' || c === '\\') s += '\\' + c;
    else if (cp < 0x20 || cp > 0x7e) s += `\\u{${cp.toString(16)}}`;
    else s += c;
  }
  return s + '"';
}

function uidText(u: EntityUid): string {
  return `${u.type}::${JSON.stringify(u.id)}`;
}

export class Gen {
  readonly r: Rng;
  /** Share of attributes present: half the cases have most attributes, so fewer paths error. */
  readonly attrDensity: number;
  constructor(seed: number) {
    this.r = new Rng(seed);
    this.attrDensity = this.r.chance(0.5) ? 0.55 : 0.9;
  }

  uid(types: readonly string[]): EntityUid {
    return { type: this.r.pick(types), id: this.r.pick(IDS) };
  }

  // ------------------------------------------------------------ expressions (text)

  expr(d: number): string {
    const r = this.r;
    if (d <= 0 || r.chance(0.2)) return this.leaf();
    switch (r.int(25)) {
      case 0:
        return `(${this.expr(d - 1)} && ${this.expr(d - 1)})`;
      case 1:
        return `(${this.expr(d - 1)} || ${this.expr(d - 1)})`;
      case 2:
        return `(!${this.expr(d - 1)})`;
      case 3:
        return `(${this.expr(d - 1)} ${r.pick(['==', '!='])} ${this.expr(d - 1)})`;
      case 4:
        return `(${this.longish(d - 1)} ${r.pick(['<', '<=', '>', '>='])} ${this.longish(d - 1)})`;
      case 5:
        return `(${this.longish(d - 1)} ${r.pick(['+', '-', '*'])} ${this.longish(d - 1)})`;
      case 6:
        return `(-${this.longish(d - 1)})`;
      case 7:
        return `(${this.entityish()} in ${r.chance(0.7) ? this.entityish() : `[${this.entityish()}, ${this.entityish()}]`})`;
      case 8:
        return `(${this.entityish()} is ${r.pick([...PTYPES, ...RTYPES, ...GTYPES])}${r.chance(0.4) ? ` in ${this.entityish()}` : ''})`;
      case 9:
        return `(${this.recordish()} has ${r.pick(ATTRS)}${r.chance(0.2) ? '.' + r.pick(ATTRS) : ''})`;
      case 10:
        return `(${this.stringish()} like ${this.pattern()})`;
      case 11:
        return `(if ${this.expr(d - 1)} then ${this.expr(d - 1)} else ${this.expr(d - 1)})`;
      case 12:
        return `${this.setish(d - 1)}.${r.pick(['contains', 'containsAll', 'containsAny'])}(${r.chance(0.5) ? this.setish(d - 1) : this.expr(d - 1)})`;
      case 13:
        return `${this.setish(d - 1)}.isEmpty()`;
      case 14:
        return `${this.entityish()}.${r.pick(['hasTag', 'getTag'])}(${r.chance(0.8) ? q(r.pick(['t1', 't2', 'name'])) : this.expr(d - 1)})`;
      case 15:
        return this.ipExpr();
      case 16:
        return this.decExpr();
      case 17:
        return this.dtExpr(d - 1);
      case 18:
        return `${this.recordish()}.${r.pick(ATTRS)}`;
      case 19:
        return `{${r.pick(ATTRS)}: ${this.expr(d - 1)}, z: ${this.expr(d - 1)}}`;
      case 20:
        return `[${this.expr(d - 1)}, ${this.expr(d - 1)}]`;
      case 21:
      case 22:
      case 23:
        return this.bigExpr(1 + r.int(3));
      default:
        return `(${this.expr(d - 1)} ${r.pick(['==', '&&', '||'])} ${this.leaf()})`;
    }
  }

  // ------------------------------------------------------------ large Long literals (item 17)

  /** A Long near ±2^53 or ±2^63 (always inside the 64-bit range). */
  bigLong(): bigint {
    const r = this.r;
    const off = BigInt(r.int(5)) - 2n;
    switch (r.int(4)) {
      case 0:
        return P53 + off;
      case 1:
        return -(P53 + off);
      case 2:
        return I64_MAX - BigInt(r.int(4));
      default:
        return -I64_MAX - BigInt(r.int(2)) + BigInt(r.int(3)); // down to -2^63
    }
  }

  bigTree(d: number): BigTree {
    const r = this.r;
    if (d <= 0 || r.chance(0.25)) return r.chance(0.85) ? { k: 'long', v: this.bigLong() } : { k: 'other', text: r.pick(BIG_OTHERS) };
    if (r.chance(0.3)) return { k: 'set', items: Array.from({ length: 1 + r.int(3) }, () => this.bigTree(d - 1)) };
    const keys = [...BIG_KEYS].sort(() => r.next() - 0.5).slice(0, 2 + r.int(3));
    return { k: 'rec', e: keys.map((k) => [k, this.bigTree(d - 1)] as [string, BigTree]) };
  }

  /** Cedar text of a tree; records written in a random key order (Cedar does not care). */
  bigText(t: BigTree, shuffle: boolean): string {
    switch (t.k) {
      case 'long':
        return String(t.v);
      case 'other':
        return t.text;
      case 'set':
        return `[${t.items.map((x) => this.bigText(x, shuffle)).join(', ')}]`;
      case 'rec': {
        const e = shuffle ? [...t.e].sort(() => this.r.next() - 0.5) : t.e;
        return `{${e.map(([k, v]) => `${keyText(k, this.r.chance(0.5))}: ${this.bigText(v, shuffle)}`).join(', ')}}`;
      }
    }
  }

  /** The same tree with one Long changed by one (so equality must see every digit). */
  bigNudge(t: BigTree): BigTree {
    switch (t.k) {
      case 'long':
        return { k: 'long', v: t.v === I64_MAX ? t.v - 1n : t.v + 1n };
      case 'other':
        return t;
      case 'set': {
        if (t.items.length === 0) return t;
        const i = this.r.int(t.items.length);
        return { k: 'set', items: t.items.map((x, j) => (j === i ? this.bigNudge(x) : x)) };
      }
      case 'rec': {
        const i = this.r.int(t.e.length);
        return { k: 'rec', e: t.e.map(([k, v], j) => [k, j === i ? this.bigNudge(v) : v] as [string, BigTree]) };
      }
    }
  }

  /**
   * An expression over records and sets of large Longs whose value depends on every digit of
   * the literals: attribute paths compared with the exact value (or off by one), `has`, `like`
   * on a neighbouring string, set containment of a reordered copy, arithmetic at the edges.
   */
  bigExpr(d: number): string {
    const r = this.r;
    const t = this.bigTree(d);
    const text = this.bigText(t, false);
    // walk a path of record attributes down to a leaf
    let cur = t;
    let path = '';
    while (cur.k === 'rec') {
      const [k, v] = r.pick(cur.e);
      path += r.chance(0.5) && /^[A-Za-z_][A-Za-z0-9_]*$/.test(k) ? `.${k}` : `[${keyText(k, true)}]`;
      cur = v;
    }
    switch (r.int(7)) {
      case 0:
      case 1: {
        if (cur.k !== 'long') return `(${text}${path} == ${cur.k === 'set' ? this.bigText(cur, true) : cur.text})`;
        const want = r.chance(0.7) ? cur.v : cur.v + (r.chance(0.5) ? 1n : -1n);
        return `(${text}${path} ${r.pick(['==', '!=', '<=', '>='])} ${want})`;
      }
      case 2: {
        // arithmetic at the edges: exact when in range, an overflow error (alike) when not
        const op = r.pick(['+', '-']);
        const by = BigInt(r.int(5) - 2);
        const v = cur.k === 'long' ? (op === '+' ? cur.v + by : cur.v - by) : 0n;
        return `(${text}${path} ${op} ${by} == ${v >= -I64_MAX - 1n && v <= I64_MAX ? v : 0})`;
      }
      case 3:
        return `[${text}].contains(${this.bigText(r.chance(0.6) ? t : this.bigNudge(t), true)})`;
      case 4:
        return `(${text} == ${this.bigText(r.chance(0.6) ? t : this.bigNudge(t), true)})`;
      case 5:
        return `(${text} has ${keyText(r.pick(BIG_KEYS), true)})`;
      default:
        return `({s: ${q(r.pick(['9007199254740993', 'a9223372036854775807', '*']))}, n: ${this.bigLong()}}.s like ${q(r.pick(['9007199254740993', '*3', 'a*7', '\\*']))})`;
    }
  }

  leaf(): string {
    const r = this.r;
    switch (r.int(9)) {
      case 0:
        return r.pick(['true', 'false']);
      case 1:
        return (r.chance(0.3) ? '-' : '') + r.pick(LONGS);
      case 2:
        return q(r.pick(STRS));
      case 3:
        return r.pick(['principal', 'action', 'resource', 'context']);
      case 4:
        return `${r.pick(['principal', 'resource', 'context'])}.${r.pick(ATTRS)}`;
      case 5:
        return `(${r.pick(['principal', 'resource', 'context'])} has ${r.pick(ATTRS)})`;
      case 6:
        return uidText(this.uid([...PTYPES, ...RTYPES, ...GTYPES]));
      case 7:
        return `context.${r.pick(['flag', 'level', 'name'])}`;
      default:
        return `principal.${r.pick(ATTRS)}`;
    }
  }

  longish(d: number): string {
    const r = this.r;
    if (d > 0 && r.chance(0.3)) return this.expr(d);
    return r.pick([
      () => (r.chance(0.3) ? '-' : '') + r.pick(LONGS),
      () => `${r.pick(['principal', 'resource', 'context'])}.${r.pick(['age', 'level', 'big'])}`,
      () => `principal.rec.${r.pick(['n', 'm'])}`,
      () => `${this.durLit()}.${r.pick(['toDays', 'toHours', 'toMinutes', 'toSeconds', 'toMilliseconds'])}()`,
      () => this.dtLit(),
      () => this.durLit(),
    ])();
  }

  entityish(): string {
    const r = this.r;
    return r.pick([
      () => r.pick(['principal', 'resource', 'action']),
      () => uidText(this.uid([...PTYPES, ...RTYPES, ...GTYPES])),
      () => `Action::${q(r.pick(ACTIONS))}`,
      () => `${r.pick(['principal', 'resource'])}.owner`,
      () => `context.${r.pick(['owner', 'age'])}`,
    ])();
  }

  recordish(): string {
    const r = this.r;
    return r.pick(['principal', 'resource', 'context', 'principal.rec', 'resource.owner', 'context.rec', '{n: 1}', '1']);
  }

  stringish(): string {
    const r = this.r;
    return r.pick([`${r.pick(['principal', 'resource', 'context'])}.name`, q(r.pick(STRS)), 'principal.rec.s', 'principal.age']);
  }

  setish(d: number): string {
    const r = this.r;
    return r.pick([
      () => `${r.pick(['principal', 'resource', 'context'])}.tags`,
      () => `[${q(r.pick(STRS))}, ${q(r.pick(STRS))}]`,
      () => `[${r.pick(LONGS)}, ${this.leaf()}]`,
      () => '[]',
      () => `[${this.expr(Math.max(0, d))}]`,
      () => `[{n: 1}, [1, 2], ${uidText(this.uid([...PTYPES, ...GTYPES]))}]`,
      () => 'principal.name',
    ])();
  }

  pattern(): string {
    const r = this.r;
    let s = '';
    const n = r.int(4);
    for (let i = 0; i < n; i++) s += r.pick(['*', 'a', 'b', 'c', '\\*', 'ab', '.', '\u{1F600}', 'ü', '-', '?']);
    return q(s).replace(/\\\\\*/g, '\\*');
  }

  ipLit(): string {
    return `ip(${q(this.r.pick(IPS))})`;
  }

  ipExpr(): string {
    const r = this.r;
    const x = r.chance(0.8) ? this.ipLit() : r.pick(['principal.addr', 'context.addr', 'principal.name']);
    const m = r.int(6);
    if (m === 5) return `${x}.isInRange(${r.chance(0.8) ? this.ipLit() : 'context.addr'})`;
    return `${x}.${['isIpv4', 'isIpv6', 'isLoopback', 'isMulticast', 'isIpv4'][m]}()`;
  }

  decLit(): string {
    return `decimal(${q(this.r.pick(DECS))})`;
  }

  decExpr(): string {
    const r = this.r;
    const a = r.chance(0.8) ? this.decLit() : r.pick(['principal.level', 'context.level', 'principal.age']);
    const b = r.chance(0.8) ? this.decLit() : 'principal.level';
    if (r.chance(0.15)) return `(${a} ${r.pick(['==', '<'])} ${b})`;
    return `${a}.${r.pick(['lessThan', 'lessThanOrEqual', 'greaterThan', 'greaterThanOrEqual'])}(${b})`;
  }

  dtLit(): string {
    return `datetime(${q(this.r.pick(DTS))})`;
  }

  durLit(): string {
    return `duration(${q(this.r.pick(DURS))})`;
  }

  dtExpr(d: number): string {
    const r = this.r;
    const dt = r.chance(0.7) ? this.dtLit() : r.pick(['context.when', 'principal.when']);
    switch (r.int(7)) {
      case 0:
        return `(${dt}.offset(${r.chance(0.8) ? this.durLit() : 'principal.span'}) ${r.pick(['<', '>=', '=='])} ${this.dtLit()})`;
      case 1:
        return `(${dt}.durationSince(${this.dtLit()}) ${r.pick(['<', '>', '=='])} ${this.durLit()})`;
      case 2:
        return `(${dt}.toDate() ${r.pick(['==', '<='])} ${this.dtLit()})`;
      case 3:
        return `(${dt}.toTime() ${r.pick(['==', '<'])} ${this.durLit()})`;
      case 4:
        return `(${this.durLit()}.${r.pick(['toDays', 'toHours', 'toMinutes', 'toSeconds', 'toMilliseconds'])}() ${r.pick(['==', '<', '>'])} ${this.longish(d)})`;
      case 5:
        return `(${dt} ${r.pick(['<', '<=', '>', '>=', '==', '!='])} ${r.chance(0.85) ? this.dtLit() : this.durLit()})`;
      default:
        return `(${this.durLit()} ${r.pick(['<', '<=', '>', '>='])} ${this.durLit()})`;
    }
  }

  // ------------------------------------------------------------ policies

  scope(kind: 'principal' | 'resource'): string {
    const r = this.r;
    const types = kind === 'principal' ? PTYPES : RTYPES;
    switch (r.int(6)) {
      case 0:
        return kind;
      case 1:
        return `${kind} == ${uidText(this.uid(types))}`;
      case 2:
        return `${kind} in ${uidText(r.chance(0.7) ? this.uid(GTYPES) : this.uid(types))}`;
      case 3:
        return `${kind} is ${r.pick(types)}`;
      case 4:
        return `${kind} is ${r.pick(types)} in ${uidText(this.uid(GTYPES))}`;
      default:
        return kind;
    }
  }

  actionScope(): string {
    const r = this.r;
    switch (r.int(4)) {
      case 0:
        return 'action';
      case 1:
        return `action == Action::${q(r.pick(ACTIONS))}`;
      case 2:
        return `action in Action::${q(r.pick(ACTIONS))}`;
      default:
        return `action in [Action::${q(r.pick(ACTIONS))}, Action::${q(r.pick(ACTIONS))}]`;
    }
  }

  policy(): string {
    const r = this.r;
    const open = r.chance(0.4); // unconstrained scope: every request evaluates the conditions
    let s = `${r.chance(0.7) ? 'permit' : 'forbid'}(${open ? 'principal' : this.scope('principal')}, ${open ? 'action' : this.actionScope()}, ${open ? 'resource' : this.scope('resource')})`;
    const n = open ? 1 + r.int(2) : r.int(3);
    for (let i = 0; i < n; i++) s += ` ${r.chance(0.75) ? 'when' : 'unless'} { ${this.expr(r.int(4))} }`;
    return s + ';';
  }

  // ------------------------------------------------------------ data

  value(depth: number, attr: string): CedarValue {
    const r = this.r;
    switch (attr) {
      case 'name':
        return r.chance(0.9) ? r.pick(STRS) : r.int(3);
      case 'age':
      case 'level':
        return r.chance(0.1) ? { __extn: { fn: 'decimal', arg: r.pick(['1.5', '-2.25', '0.0']) } } : r.pick([0, 1, -1, 42, 9007199254740991, -9007199254740991, 3037000500, 2 ** 62, r.int(1000)]);
      case 'big':
        return r.pick([9007199254740991, -9007199254740991, 4611686018427387904, 1]);
      case 'flag':
        return r.chance(0.9) ? r.chance(0.5) : 'yes';
      case 'tags':
        return r.chance(0.9) ? Array.from({ length: r.int(4) }, () => r.pick(STRS)) : 'notaset';
      case 'owner':
        return r.chance(0.9) ? { __entity: this.uid([...PTYPES, ...GTYPES]) } : r.pick(IDS);
      case 'addr':
        return { __extn: { fn: 'ip', arg: r.pick(['127.0.0.1', '10.1.2.3', '::1', '192.168.0.0/16', '224.1.1.1']) } };
      case 'when':
        return { __extn: { fn: 'datetime', arg: r.pick(['2024-01-01', '2024-06-30T12:00:00Z', '1970-01-01']) } };
      case 'span':
        return { __extn: { fn: 'duration', arg: r.pick(['1h', '-2d', '0ms']) } };
      case 'rec':
        if (depth <= 0) return {};
        return { n: r.int(5), s: r.pick(STRS), ...(r.chance(0.5) ? { m: 9007199254740991 } : {}), ...(r.chance(0.3) ? { inner: { n: 1 } } : {}) };
      default:
        return r.int(10);
    }
  }

  attrs(depth: number): Record<string, CedarValue> {
    const o: Record<string, CedarValue> = {};
    for (const a of ATTRS) if (this.r.chance(this.attrDensity)) o[a] = this.value(depth, a);
    return o;
  }

  entities(): Entity[] {
    const r = this.r;
    const out: Entity[] = [];
    const groups = IDS.map((id) => ({ type: 'Group', id }));
    for (const g of groups) {
      if (r.chance(0.15)) continue; // sometimes a parent that does not exist
      out.push({ uid: g, attrs: r.chance(0.3) ? this.attrs(1) : {}, parents: groups.filter((x) => x.id < g.id && r.chance(0.5) || (x.id > g.id && r.chance(0.05))) });
    }
    for (const t of [...PTYPES, ...RTYPES]) {
      for (const id of IDS) {
        if (r.chance(0.2)) continue; // missing entity
        const e: Entity = { uid: { type: t, id }, attrs: this.attrs(1), parents: groups.filter(() => r.chance(0.35)) };
        if (r.chance(0.3)) e.tags = { t1: r.pick(STRS), ...(r.chance(0.5) ? { t2: r.int(5) } : {}) };
        out.push(e);
      }
    }
    const groupsOf: Record<string, string[]> = { read: ['readGroup', 'all'], write: ['all'], delete: ['all'], readGroup: ['all'], all: [] };
    for (const a of ACTIONS) {
      if (r.chance(0.1)) continue;
      out.push({ uid: { type: 'Action', id: a }, attrs: {}, parents: groupsOf[a].filter(() => r.chance(0.85)).map((id) => ({ type: 'Action', id })) });
    }
    return out;
  }

  request(): AuthzRequest {
    const r = this.r;
    const ctx: Record<string, CedarValue> = r.chance(0.2) ? {} : this.attrs(1);
    return {
      principal: this.uid(PTYPES),
      action: { type: 'Action', id: r.pick(ACTIONS) },
      resource: this.uid(RTYPES),
      context: ctx,
    };
  }
}
