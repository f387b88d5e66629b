// Small helpers for validating raw config/API input; every error names the offending path.
import { InvalidInput } from '../common/errors.ts';
import { parseDuration } from '../common/duration.ts';

export type Obj = Record<string, unknown>;

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function obj(v: unknown, path: string): Obj {
  if (!isObj(v)) throw new InvalidInput(`${path}: expected an object`, path);
  return v;
}

export function onlyKeys(o: Obj, path: string, allowed: readonly string[]): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) throw new InvalidInput(`${join(path, k)}: unknown field (expected one of ${allowed.join(', ')})`, join(path, k));
  }
}

export function join(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  return path === '' ? key : `${path}.${key}`;
}

export function str(v: unknown, path: string, opts: { max?: number; re?: RegExp; what?: string } = {}): string {
  if (typeof v !== 'string' || v.trim() === '') throw new InvalidInput(`${path}: expected a non-empty string`, path);
  if (v.length > (opts.max ?? 512)) throw new InvalidInput(`${path}: too long (at most ${opts.max ?? 512} characters)`, path);
  if (opts.re && !opts.re.test(v)) throw new InvalidInput(`${path}: "${v.slice(0, 80)}" is not ${opts.what ?? 'valid'}`, path);
  return v;
}

export function optStr(v: unknown, path: string, opts: { max?: number; re?: RegExp; what?: string } = {}): string | undefined {
  return v === undefined ? undefined : str(v, path, opts);
}

export function bool(v: unknown, path: string, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') throw new InvalidInput(`${path}: expected true or false`, path);
  return v;
}

export function int(v: unknown, path: string, dflt: number, min: number, max: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new InvalidInput(`${path}: expected an integer from ${min} to ${max}`, path);
  }
  return v;
}

export function strList(v: unknown, path: string, dflt: string[] = [], opts: { re?: RegExp; what?: string } = {}): string[] {
  if (v === undefined) return dflt;
  if (!Array.isArray(v)) throw new InvalidInput(`${path}: expected a list of strings`, path);
  return v.map((x, i) => str(x, join(path, i), opts));
}

/** A duration (`30m`, `1h`) or milliseconds, within [min, max]. */
export function duration(v: unknown, path: string, dflt: number, minMs: number, maxMs: number): number {
  if (v === undefined) return dflt;
  let ms: number;
  if (typeof v === 'number' && Number.isInteger(v)) ms = v;
  else if (typeof v === 'string') ms = parseDuration(v, path);
  else throw new InvalidInput(`${path}: expected a duration such as 30m or 1h`, path);
  if (ms < minMs || ms > maxMs) throw new InvalidInput(`${path}: must be between ${fmt(minMs)} and ${fmt(maxMs)}`, path);
  return ms;
}

function fmt(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  return `${ms / 1000}s`;
}

/** `Type::"id"` or `Type::id` → uid. */
export function entityRef(v: unknown, path: string): { type: string; id: string } {
  const s = str(v, path);
  const m = /^([A-Z][A-Za-z0-9_]*)::(?:"((?:[^"\\]|\\.)*)"|([^"]+))$/.exec(s);
  if (!m) throw new InvalidInput(`${path}: expected an entity like Database::"orders"`, path);
  return { type: m[1]!, id: m[2] ?? m[3]! };
}

export const IDENTITY_ID_RE = /^[a-z][a-z0-9-]*:[^\s]{1,300}$/;
export const ACTION_RE = /^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)*$/;
export const NAME_RE = /^[a-z0-9][a-z0-9._-]{0,62}$/;
