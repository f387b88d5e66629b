// Cedar extension types: decimal, ipaddr, datetime, duration — with Cedar 4.x parsing rules and
// error behaviour (every failure is a CedarEvalError, so the policy using it is skipped).

import { CedarEvalError } from './errors.ts';

const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;
const inI64 = (b: bigint): boolean => b >= I64_MIN && b <= I64_MAX;

export class Decimal {
  readonly v: bigint; // value × 10^4
  constructor(v: bigint) {
    this.v = v;
  }
  key(): string {
    return 'decimal:' + this.v;
  }
}

export class IpAddr {
  readonly v6: boolean;
  readonly addr: bigint;
  readonly prefix: number;
  constructor(v6: boolean, addr: bigint, prefix: number) {
    this.v6 = v6;
    this.addr = addr;
    this.prefix = prefix;
  }
  key(): string {
    return 'ip:' + (this.v6 ? '6:' : '4:') + this.addr + '/' + this.prefix;
  }
}

export class Datetime {
  readonly ms: bigint;
  constructor(ms: bigint) {
    this.ms = ms;
  }
  key(): string {
    return 'datetime:' + this.ms;
  }
}

export class Duration {
  readonly ms: bigint;
  constructor(ms: bigint) {
    this.ms = ms;
  }
  key(): string {
    return 'duration:' + this.ms;
  }
}

function extErr(msg: string): CedarEvalError {
  return new CedarEvalError(msg);
}

// ---------------------------------------------------------------- decimal

const DECIMAL_RE = /^(-?\p{Nd}+)\.(\p{Nd}+)$/u;
const ASCII_INT = /^-?[0-9]+$/;

function parseDecimal(s: string): Decimal {
  const m = DECIMAL_RE.exec(s);
  if (m === null) throw extErr(`\`${s}\` is not a well-formed decimal value`);
  const ls = m[1];
  const rs = m[2];
  if (!ASCII_INT.test(ls)) throw extErr('overflow when converting to decimal');
  let l = BigInt(ls);
  if (!inI64(l)) throw extErr('overflow when converting to decimal');
  l *= 10000n;
  if (!inI64(l)) throw extErr('overflow when converting to decimal');
  if ([...rs].length > 4) throw extErr(`too many digits after the decimal in \`${s}\``);
  if (!ASCII_INT.test(rs)) throw extErr('overflow when converting to decimal');
  const r = BigInt(rs) * 10n ** BigInt(4 - rs.length);
  const v = ls.startsWith('-') ? l - r : l + r;
  if (!inI64(v)) throw extErr('overflow when converting to decimal');
  return new Decimal(v);
}

// ---------------------------------------------------------------- ipaddr

function parseIpv4(s: string): bigint | null {
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  let v = 0n;
  for (const p of parts) {
    if (!/^[0-9]{1,3}$/.test(p)) return null;
    if (p.length > 1 && p[0] === '0') return null;
    const n = Number(p);
    if (n > 255) return null;
    v = (v << 8n) | BigInt(n);
  }
  return v;
}

function parseIpv6(s: string): bigint | null {
  // Embedded IPv4 forms are rejected before we get here (Cedar refuses colons with dots).
  if (s.includes('.')) return null;
  const group = /^[0-9a-fA-F]{1,4}$/;
  const dbl = s.indexOf('::');
  let head: string[];
  let tail: string[];
  if (dbl < 0) {
    head = s.split(':');
    if (head.length !== 8) return null;
    tail = [];
  } else {
    if (s.indexOf('::', dbl + 1) >= 0) return null;
    const h = s.slice(0, dbl);
    const t = s.slice(dbl + 2);
    head = h === '' ? [] : h.split(':');
    tail = t === '' ? [] : t.split(':');
    if (head.length + tail.length > 7) return null;
  }
  for (const g of head) if (!group.test(g)) return null;
  for (const g of tail) if (!group.test(g)) return null;
  const groups: number[] = [...head.map((g) => parseInt(g, 16))];
  const zeros = 8 - head.length - tail.length;
  for (let i = 0; i < zeros; i++) groups.push(0);
  for (const g of tail) groups.push(parseInt(g, 16));
  let v = 0n;
  for (const g of groups) v = (v << 16n) | BigInt(g);
  return v;
}

function parseAddr(s: string): { v6: boolean; addr: bigint } | null {
  const v4 = parseIpv4(s);
  if (v4 !== null) return { v6: false, addr: v4 };
  const v6 = parseIpv6(s);
  if (v6 !== null) return { v6: true, addr: v6 };
  return null;
}

function atLeastTwo(s: string, c: string): boolean {
  const i = s.indexOf(c);
  return i >= 0 && s.indexOf(c, i + 1) >= 0;
}

function parseIp(s: string): IpAddr {
  if (Buffer.byteLength(s, 'utf8') > 43) throw extErr(`error parsing IP address from string \`${s}\`: string length is too large`);
  if (atLeastTwo(s, ':') && atLeastTwo(s, '.')) throw extErr('error parsing IP address from string: We do not accept IPv4 embedded in IPv6');
  const slash = s.indexOf('/');
  if (slash >= 0) {
    const a = parseAddr(s.slice(0, slash));
    if (a === null) throw extErr(`error parsing IP address from the string \`${s.slice(0, slash)}\``);
    const ps = s.slice(slash + 1);
    const max = a.v6 ? 128 : 32;
    if (ps.length > (a.v6 ? 3 : 2)) throw extErr('error parsing prefix: string length is too large');
    if (!/^[0-9]*$/.test(ps)) throw extErr(`error parsing prefix \`${ps}\`: encountered non-digit`);
    if (ps.startsWith('0') && ps !== '0') throw extErr(`error parsing prefix \`${ps}\`: leading zero(s)`);
    if (ps === '') throw extErr('error parsing prefix from the string ``');
    const p = Number(ps);
    if (p > max) throw extErr(`error parsing prefix: ${p} is larger than the limit ${max}`);
    return new IpAddr(a.v6, a.addr, p);
  }
  const a = parseAddr(s);
  if (a === null) throw extErr(`invalid IP address: ${s}`);
  return new IpAddr(a.v6, a.addr, a.v6 ? 128 : 32);
}

function ipIsLoopback(ip: IpAddr): boolean {
  if (ip.v6) return ip.addr === 1n && ip.prefix >= 128;
  return ip.addr >> 24n === 127n && ip.prefix >= 8;
}

function ipIsMulticast(ip: IpAddr): boolean {
  if (ip.v6) return ip.addr >> 120n === 0xffn && ip.prefix >= 8;
  return ip.addr >> 28n === 0xen && ip.prefix >= 4;
}

function ipInRange(a: IpAddr, b: IpAddr): boolean {
  if (a.v6 !== b.v6) return false;
  const bits = a.v6 ? 128n : 32n;
  const all = (1n << bits) - 1n;
  const netmask = (p: number): bigint => (all << (bits - BigInt(p))) & all;
  const hostmask = (p: number): bigint => all >> BigInt(p);
  const aNet = a.addr & netmask(a.prefix);
  const bNet = b.addr & netmask(b.prefix);
  const aBc = a.addr | hostmask(a.prefix);
  const bBc = b.addr | hostmask(b.prefix);
  return bNet <= aNet && aBc <= bBc;
}

// ---------------------------------------------------------------- datetime / duration

const DAY_MS = 86400000n;

function daysFromCivil(y: number, m: number, d: number): number {
  // Howard Hinnant's algorithm, proleptic Gregorian.
  y -= m <= 2 ? 1 : 0;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

function daysInMonth(y: number, m: number): number {
  if (m === 2) return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0 ? 29 : 28;
  return [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1];
}

const DATE_RE = /^([0-9]{4})-([0-9]{2})-([0-9]{2})/;
const HMS_RE = /^T([0-9]{2}):([0-9]{2}):([0-9]{2})/;
const MSOFF_RE = /^(\.([0-9]{3}))?(Z|(([+-])([0-9]{2})([0-9]{2})))$/;

function parseDatetime(s: string): Datetime {
  const dm = DATE_RE.exec(s);
  if (dm === null) throw extErr('invalid date pattern');
  const y = Number(dm[1]);
  const mo = Number(dm[2]);
  const d = Number(dm[3]);
  const dateOk = mo >= 1 && mo <= 12 && d >= 1 && d <= daysInMonth(y, mo);
  const days = BigInt(dateOk ? daysFromCivil(y, mo, d) : 0);
  if (dm[0].length === s.length) {
    if (!dateOk) throw extErr(`invalid date: ${dm[0]}`);
    return new Datetime(days * DAY_MS);
  }
  const rest = s.slice(dm[0].length);
  const hm = HMS_RE.exec(rest);
  if (hm === null) throw extErr('invalid hour/minute/second pattern');
  const rest2 = rest.slice(hm[0].length);
  const om = MSOFF_RE.exec(rest2);
  if (om === null) throw extErr('invalid millisecond and/or offset pattern');
  if (!dateOk) throw extErr(`invalid date: ${dm[0]}`);
  const h = Number(hm[1]);
  const mi = Number(hm[2]);
  const sec = Number(hm[3]);
  if (h > 23 || mi > 59 || sec > 59) throw extErr('invalid hour/minute/second');
  const ms = om[2] === undefined ? 0 : Number(om[2]);
  let offsetSec = 0;
  if (om[4] !== undefined) {
    const oh = Number(om[6]);
    const omin = Number(om[7]);
    if (oh >= 24 || omin >= 60) throw extErr('invalid offset range');
    offsetSec = (oh * 3600 + omin * 60) * (om[5] === '+' ? 1 : -1);
  }
  const total = days * DAY_MS + BigInt(((h * 60 + mi) * 60 + sec - offsetSec) * 1000 + ms);
  return new Datetime(total);
}

const DURATION_RE = /^-?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?$/;
const U64_MAX = 2n ** 64n - 1n;

export function parseDuration(s: string): Duration {
  if (s === '' || s === '-') throw extErr('invalid duration pattern');
  const m = DURATION_RE.exec(s);
  if (m === null) throw extErr('invalid duration pattern');
  const neg = s.startsWith('-');
  const num = (i: number): bigint => {
    if (m[i] === undefined) return 0n;
    const b = BigInt(m[i]);
    if (b > U64_MAX) throw extErr('Duration overflows internal representation');
    return b;
  };
  const d = num(2);
  const h = num(4);
  const mi = num(6);
  const sec = num(8);
  const msRaw = num(10);
  let ms = neg ? -msRaw : msRaw;
  if (!inI64(ms)) throw extErr('Duration overflows internal representation');
  const step = (acc: bigint, y: bigint, mul: bigint): bigint => {
    if (y > I64_MAX) throw extErr('Duration overflows internal representation');
    const p = y * mul;
    if (!inI64(p)) throw extErr('Duration overflows internal representation');
    const r = neg ? acc - p : acc + p;
    if (!inI64(r)) throw extErr('Duration overflows internal representation');
    return r;
  };
  ms = step(ms, sec, 1000n);
  ms = step(ms, mi, 60000n);
  ms = step(ms, h, 3600000n);
  ms = step(ms, d, DAY_MS);
  return new Duration(ms);
}

// ---------------------------------------------------------------- dispatch

function typeName(v: unknown): string {
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'number' || typeof v === 'bigint') return 'long';
  if (typeof v === 'string') return 'string';
  if (v instanceof Decimal) return 'decimal';
  if (v instanceof IpAddr) return 'ipaddr';
  if (v instanceof Datetime) return 'datetime';
  if (v instanceof Duration) return 'duration';
  return 'value';
}

function wantStr(v: unknown): string {
  if (typeof v !== 'string') throw new CedarEvalError(`type error: expected string, got ${typeName(v)}`);
  return v;
}
function wantDec(v: unknown): Decimal {
  if (!(v instanceof Decimal)) throw new CedarEvalError(`type error: expected decimal, got ${typeName(v)}`);
  return v;
}
function wantIp(v: unknown): IpAddr {
  if (!(v instanceof IpAddr)) throw new CedarEvalError(`type error: expected ipaddr, got ${typeName(v)}`);
  return v;
}
function wantDt(v: unknown): Datetime {
  if (!(v instanceof Datetime)) throw new CedarEvalError(`type error: expected datetime, got ${typeName(v)}`);
  return v;
}
function wantDur(v: unknown): Duration {
  if (!(v instanceof Duration)) throw new CedarEvalError(`type error: expected duration, got ${typeName(v)}`);
  return v;
}

const SAFE = 9007199254740991n;
function long(b: bigint): number | bigint {
  return b >= -SAFE && b <= SAFE ? Number(b) : b;
}

type ExtResult = boolean | number | bigint | Decimal | IpAddr | Datetime | Duration;
type ExtFn = (args: unknown[]) => ExtResult;

const FNS: Record<string, { arity: number; fn: ExtFn }> = {
  decimal: { arity: 1, fn: (a) => parseDecimal(wantStr(a[0])) },
  lessThan: { arity: 2, fn: (a) => wantDec(a[0]).v < wantDec(a[1]).v },
  lessThanOrEqual: { arity: 2, fn: (a) => wantDec(a[0]).v <= wantDec(a[1]).v },
  greaterThan: { arity: 2, fn: (a) => wantDec(a[0]).v > wantDec(a[1]).v },
  greaterThanOrEqual: { arity: 2, fn: (a) => wantDec(a[0]).v >= wantDec(a[1]).v },
  ip: { arity: 1, fn: (a) => parseIp(wantStr(a[0])) },
  isIpv4: { arity: 1, fn: (a) => !wantIp(a[0]).v6 },
  isIpv6: { arity: 1, fn: (a) => wantIp(a[0]).v6 },
  isLoopback: { arity: 1, fn: (a) => ipIsLoopback(wantIp(a[0])) },
  isMulticast: { arity: 1, fn: (a) => ipIsMulticast(wantIp(a[0])) },
  isInRange: { arity: 2, fn: (a) => ipInRange(wantIp(a[0]), wantIp(a[1])) },
  datetime: { arity: 1, fn: (a) => parseDatetime(wantStr(a[0])) },
  duration: { arity: 1, fn: (a) => parseDuration(wantStr(a[0])) },
  offset: {
    arity: 2,
    fn: (a) => {
      const r = wantDt(a[0]).ms + wantDur(a[1]).ms;
      if (!inI64(r)) throw extErr('overflows when adding an offset');
      return new Datetime(r);
    },
  },
  durationSince: {
    arity: 2,
    fn: (a) => {
      const r = wantDt(a[0]).ms - wantDt(a[1]).ms;
      if (!inI64(r)) throw extErr('overflows when computing the duration');
      return new Duration(r);
    },
  },
  toDate: {
    arity: 1,
    fn: (a) => {
      const ms = wantDt(a[0]).ms;
      let r: bigint;
      if (ms < 0n) r = ms % DAY_MS === 0n ? ms : (ms / DAY_MS - 1n) * DAY_MS;
      else r = (ms / DAY_MS) * DAY_MS;
      if (!inI64(r)) throw extErr('overflows when computing the date');
      return new Datetime(r);
    },
  },
  toTime: {
    arity: 1,
    fn: (a) => {
      const ms = wantDt(a[0]).ms;
      let r = ms % DAY_MS;
      if (ms < 0n && r !== 0n) r += DAY_MS;
      return new Duration(r);
    },
  },
  toMilliseconds: { arity: 1, fn: (a) => long(wantDur(a[0]).ms) },
  toSeconds: { arity: 1, fn: (a) => long(wantDur(a[0]).ms / 1000n) },
  toMinutes: { arity: 1, fn: (a) => long(wantDur(a[0]).ms / 1000n / 60n) },
  toHours: { arity: 1, fn: (a) => long(wantDur(a[0]).ms / 1000n / 60n / 60n) },
  toDays: { arity: 1, fn: (a) => long(wantDur(a[0]).ms / 1000n / 60n / 60n / 24n) },
};

export function extensionArity(name: string): number | undefined {
  return Object.hasOwn(FNS, name) ? FNS[name].arity : undefined;
}

export function getExtensionFn(name: string): ExtFn | undefined {
  return Object.hasOwn(FNS, name) ? FNS[name].fn : undefined;
}

export function callExtension(name: string, args: unknown[]): ExtResult {
  if (!Object.hasOwn(FNS, name)) throw new CedarEvalError(`unknown extension function ${name}`);
  const f = FNS[name];
  if (args.length !== f.arity) throw new CedarEvalError(`wrong number of arguments to ${name}`);
  return f.fn(args);
}
