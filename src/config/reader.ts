// A small typed reader over untrusted parsed YAML/JSON: every accessor names the path of the
// value it rejects, and unknown keys are errors (a typo must not silently disable a control).
import { InvalidInput } from '../common/errors.ts';
import { parseDuration } from '../common/duration.ts';

export class ConfigError extends InvalidInput {
  constructor(path: string, message: string) {
    super(`${path}: ${message}`, path);
    this.name = 'ConfigError';
  }
}

export class Node {
  readonly path: string;
  readonly value: unknown;
  constructor(value: unknown, path: string) {
    this.value = value;
    this.path = path;
  }

  fail(message: string): never {
    throw new ConfigError(this.path, message);
  }

  /** A mapping; `allowed` lists the keys it may have. */
  object(allowed: readonly string[]): ObjectNode {
    const v = this.value;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(`must be a mapping, got ${describe(v)}`);
    for (const k of Object.keys(v)) {
      if (!allowed.includes(k)) throw new ConfigError(join(this.path, k), `unknown field (expected one of: ${allowed.join(', ')})`);
    }
    return new ObjectNode(v as Record<string, unknown>, this.path);
  }

  list(): Node[] {
    if (!Array.isArray(this.value)) this.fail(`must be a list, got ${describe(this.value)}`);
    return this.value.map((v, i) => new Node(v, `${this.path}[${i}]`));
  }

  string(opts: { pattern?: RegExp; hint?: string; max?: number } = {}): string {
    const v = this.value;
    if (typeof v !== 'string' || v.length === 0) this.fail(`must be a non-empty string, got ${describe(v)}`);
    if (v.length > (opts.max ?? 4096)) this.fail(`is longer than ${opts.max ?? 4096} characters`);
    if (opts.pattern && !opts.pattern.test(v)) this.fail(opts.hint ?? `"${v}" does not match ${opts.pattern.source}`);
    return v;
  }

  oneOf<T extends string>(choices: readonly T[]): T {
    const v = this.value;
    if (typeof v !== 'string' || !(choices as readonly string[]).includes(v)) this.fail(`must be one of ${choices.join(', ')}, got ${describe(v)}`);
    return v as T;
  }

  boolean(): boolean {
    if (typeof this.value !== 'boolean') this.fail(`must be true or false, got ${describe(this.value)}`);
    return this.value;
  }

  integer(min: number, max: number): number {
    const v = this.value;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) this.fail(`must be an integer from ${min} to ${max}, got ${describe(v)}`);
    return v;
  }

  /** `10m`, `1h`, or a number of seconds. */
  duration(): number {
    const v = this.value;
    if (typeof v === 'number' && Number.isInteger(v) && v > 0) return v * 1000;
    if (typeof v !== 'string') this.fail(`must be a duration like 10m or 1h, got ${describe(v)}`);
    try {
      return parseDuration(v, this.path);
    } catch {
      this.fail(`"${v}" is not a duration (use e.g. 90s, 10m, 1h)`);
    }
  }

  strings(opts: { pattern?: RegExp; hint?: string } = {}): string[] {
    return this.list().map((n) => n.string(opts));
  }
}

export class ObjectNode extends Node {
  readonly fields: Record<string, unknown>;
  constructor(value: Record<string, unknown>, path: string) {
    super(value, path);
    this.fields = value;
  }
  has(key: string): boolean {
    return this.fields[key] !== undefined && this.fields[key] !== null;
  }
  get(key: string): Node {
    return new Node(this.fields[key], join(this.path, key));
  }
  required(key: string): Node {
    if (!this.has(key)) throw new ConfigError(join(this.path, key), 'is required');
    return this.get(key);
  }
  optional(key: string): Node | undefined {
    return this.has(key) ? this.get(key) : undefined;
  }
}

function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

function describe(v: unknown): string {
  if (v === null || v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `"${v.length > 40 ? `${v.slice(0, 40)}…` : v}"`;
  return `${typeof v} ${String(v)}`;
}
