// The one input validation library (zod 4) and its one error formatter: config sections, plug-in
// configs and request bodies are zod schemas (so z.toJSONSchema documents them), and every
// refusal becomes an InvalidInput naming the path of the bad value and what is wrong with it.
import { z } from 'zod';
import { InvalidInput } from './errors.ts';
import { parseDuration } from './duration.ts';

export { z };

/** A refused configuration file: `field` is the path of the bad value (`targets[0].port`). */
export class ConfigError extends InvalidInput {
  constructor(path: string, message: string) {
    super(path === '' ? message : `${path}: ${message}`, path);
    this.name = 'ConfigError';
  }
}

type PathKey = PropertyKey;

/** `a.b[0].c`; a key is appended as written (`principals.user:*`). */
function joinPath(base: string, path: readonly PathKey[]): string {
  let out = base;
  for (const k of path) {
    if (typeof k === 'number') out += `[${k}]`;
    else out = out === '' ? String(k) : `${out}.${String(k)}`;
  }
  return out;
}

/** How a refused value is shown in a message: short, never a whole document. */
export function describe(v: unknown): string {
  if (v === null || v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `"${v.length > 40 ? `${v.slice(0, 40)}…` : v}"`;
  return `${typeof v} ${String(v)}`;
}

const TYPE_NAMES: Record<string, string> = {
  object: 'a mapping',
  array: 'a list',
  string: 'a string',
  boolean: 'true or false',
  number: 'a number',
  int: 'an integer',
  bigint: 'an integer',
};

/**
 * The house wording of zod's issue codes, used wherever a schema did not word its own message.
 * Passed to every parse (`error`), so schemas stay free of message boilerplate.
 */
function houseMessage(iss: z.core.$ZodRawIssue): string | undefined {
  switch (iss.code) {
    case 'invalid_type':
      if (iss.input === undefined) return 'is required';
      if (iss.expected === 'never') return 'is not accepted here';
      return `must be ${TYPE_NAMES[iss.expected] ?? iss.expected}, got ${describe(iss.input)}`;
    case 'too_small': {
      const n = Number(iss.minimum);
      if (iss.origin === 'string') return n <= 1 ? 'must be a non-empty string' : `must be at least ${n} characters`;
      if (iss.origin === 'array' || iss.origin === 'set') return n <= 1 ? 'must not be empty' : `must have at least ${n} items`;
      return `must be ${iss.inclusive ? 'at least' : 'more than'} ${n}, got ${describe(iss.input)}`;
    }
    case 'too_big': {
      const n = Number(iss.maximum);
      if (iss.origin === 'string') return `is longer than ${n} characters`;
      if (iss.origin === 'array' || iss.origin === 'set') return `must have at most ${n} items`;
      return `must be ${iss.inclusive ? 'at most' : 'less than'} ${n}, got ${describe(iss.input)}`;
    }
    case 'invalid_format':
      if (iss.format === 'regex') return `${describe(iss.input)} does not match ${(iss as { pattern?: string }).pattern ?? 'the expected form'}`;
      return `${describe(iss.input)} is not a valid ${iss.format}`;
    case 'invalid_value':
      if (iss.values.length === 1) return `must be ${JSON.stringify(iss.values[0])}, got ${describe(iss.input)}`;
      return `must be one of ${iss.values.map(String).join(', ')}, got ${describe(iss.input)}`;
    case 'unrecognized_keys': {
      const shape = (iss.inst as { shape?: Record<string, unknown> } | undefined)?.shape;
      const known = shape ? Object.keys(shape) : [];
      const also = iss.keys.length > 1 ? ` (so are ${iss.keys.slice(1).join(', ')})` : '';
      return `unknown field${also}${known.length ? ` (expected one of: ${known.join(', ')})` : ''}`;
    }
    case 'invalid_union': {
      const d = iss as { discriminator?: string; options?: unknown[] };
      if (d.discriminator !== undefined) {
        const got = (iss.input as Record<string, unknown> | undefined)?.[d.discriminator];
        return `must be one of ${(d.options ?? []).map(String).join(', ')}, got ${describe(got)}`;
      }
      return `${describe(iss.input)} is none of the accepted forms`;
    }
    case 'invalid_key':
      return `has an invalid key ${describe(iss.input)}`;
    case 'not_multiple_of':
      return `must be a multiple of ${String(iss.divisor)}`;
    default:
      return undefined;
  }
}

interface Flat {
  path: PathKey[];
  message: string;
  /** 0: a key that must not be there (unknown or forbidden) — the likeliest cause of what else fails. */
  rank: number;
}

/**
 * Issues flattened: a union that failed in one branch deeper than the others reports that
 * branch (what the writer most likely meant), an unknown key is reported at its own path.
 */
function flatten(issues: readonly z.core.$ZodIssue[], prefix: PathKey[] = []): Flat[] {
  const out: Flat[] = [];
  for (const iss of issues) {
    const path = [...prefix, ...iss.path];
    if (iss.code === 'unrecognized_keys') {
      out.push({ path: [...path, iss.keys[0]!], message: iss.message, rank: 0 });
      continue;
    }
    if (iss.code === 'invalid_key' && iss.issues.length > 0) {
      out.push({ path, message: iss.issues[0]!.message, rank: 1 }); // what is wrong with the key itself
      continue;
    }
    if (iss.code === 'invalid_union' && iss.errors.length > 0 && !('discriminator' in iss)) {
      const depth = (branch: readonly z.core.$ZodIssue[]) => Math.max(...branch.map((b) => b.path.length));
      const best = [...iss.errors].sort((a, b) => depth(b) - depth(a))[0]!;
      if (depth(best) > 0) {
        out.push(...flatten(best, path));
        continue;
      }
    }
    out.push({ path, message: iss.message, rank: iss.code === 'invalid_type' && iss.expected === 'never' ? 0 : 1 });
  }
  return out;
}

/** The issues of a failed parse as one error: the first names `field`, up to three more follow. */
function issuesError(error: z.ZodError, base: string, as: 'config' | 'input'): InvalidInput {
  const flat = flatten(error.issues);
  // A misspelt key is the likeliest cause of the "is required" next to it: report it first.
  flat.sort((a, b) => a.rank - b.rank);
  const [first, ...rest] = flat;
  const field = joinPath(base, first!.path);
  const more = rest.slice(0, 3).map((f) => `${joinPath(base, f.path)}: ${f.message}`);
  const message = `${first!.message}${more.length ? ` (also ${more.join('; ')}${rest.length > 3 ? '; …' : ''})` : ''}`;
  return as === 'config' ? new ConfigError(field, message) : new InvalidInput(field === '' ? message : `${field}: ${message}`, field);
}

/**
 * Parses untrusted input with a schema, or throws InvalidInput (ConfigError for `as: 'config'`)
 * whose `field` is `path` joined with the issue's path.
 */
export function validate<S extends z.ZodType>(schema: S, raw: unknown, opts: { path?: string; as?: 'config' | 'input' } = {}): z.output<S> {
  const r = schema.safeParse(raw, { error: houseMessage, reportInput: true });
  if (r.success) return r.data;
  throw issuesError(r.error, opts.path ?? '', opts.as ?? 'input');
}

/** Parses a config section: `validate` with ConfigError. */
export function validateConfig<S extends z.ZodType>(schema: S, raw: unknown, path: string): z.output<S> {
  return validate(schema, raw, { path, as: 'config' });
}

// ── Building blocks shared by every schema ───────────────────────────────────────────────────

/** A mapping whose keys are all known: an unknown key is an error (a typo must not silently disable a control). */
export function mapping<S extends z.core.$ZodLooseShape>(shape: S) {
  return z.strictObject(shape);
}

function dropNulls(v: unknown): unknown {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return v;
  return Object.fromEntries(Object.entries(v).filter(([, x]) => x !== null));
}

/**
 * A `mapping` where `key:` with no value counts as left out (the top-level sections of
 * portcullis.yaml and the workload trusts read YAML that way). Not usable as a discriminated
 * union option; the plug-in sections (targets, access, oidc-human) use `mapping`, where an empty
 * value is refused.
 */
export function section<S extends z.core.$ZodLooseShape>(shape: S) {
  return z.preprocess(dropNulls, z.strictObject(shape));
}

/** A key that is refused whatever its value, with the reason (e.g. inline secrets). */
export function forbidden(reason: string) {
  return z.never({ error: reason }).optional();
}

/** A non-empty string (not only blanks), at most `max` characters, optionally matching `pattern` (`hint` says what it should be). */
export function text(opts: { max?: number; pattern?: RegExp; hint?: string } = {}) {
  const s = z.string().min(1, { abort: true }).max(opts.max ?? 4096, { abort: true }).refine((v) => v.trim() !== '', { error: 'must be a non-empty string', abort: true });
  return opts.pattern ? s.regex(opts.pattern, opts.hint !== undefined ? { error: opts.hint } : undefined) : s;
}

/** A list of `text`s. */
export function texts(opts: { max?: number; pattern?: RegExp; hint?: string; nonEmpty?: boolean } = {}) {
  const list = z.array(text(opts));
  return opts.nonEmpty ? list.min(1) : list;
}

/** An integer in [min, max]. */
export function integer(min: number, max: number) {
  const msg = (iss: { input?: unknown }) => `must be an integer from ${min} to ${max}, got ${describe(iss.input)}`;
  return z.number({ error: (iss) => (iss.input === undefined ? undefined : msg(iss)) }).int({ error: msg }).min(min, { error: msg }).max(max, { error: msg });
}

/** One of a fixed set of strings. */
export function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, { error: (iss) => (iss.input === undefined ? undefined : `must be one of ${values.join(', ')}, got ${describe(iss.input)}`) });
}

/** `true` or `false`. */
export function flag() {
  return z.boolean();
}

function fmtMs(ms: number): string {
  if (ms % 86_400_000 === 0) return `${ms / 86_400_000}d`;
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/**
 * A duration (`90s`, `10m`, `1h30m`) → milliseconds, within [min, max] when given. A bare number
 * is read in `numbers` (seconds in the top-level sections, milliseconds under `access`), or refused.
 */
export function duration(opts: { numbers?: 'seconds' | 'ms' | 'refused'; min?: number; max?: number; range?: string } = {}) {
  const numbers = opts.numbers ?? 'refused';
  const wrong = (iss: { input?: unknown }) => (iss.input === undefined ? undefined : `must be a duration like 10m or 1h, got ${describe(iss.input)}`);
  const input = numbers === 'refused' ? z.string({ error: wrong }) : z.union([z.string(), z.number()], { error: wrong });
  return input
    .transform((v, ctx) => {
      let ms: number;
      if (typeof v === 'number') {
        const ok = Number.isInteger(v) && (numbers === 'ms' ? v >= 0 : v > 0);
        if (!ok) {
          ctx.addIssue({ code: 'custom', message: `must be a duration like 10m or 1h, got ${describe(v)}` });
          return z.NEVER;
        }
        ms = numbers === 'seconds' ? v * 1000 : v;
      } else {
        try {
          ms = parseDuration(v);
        } catch {
          ctx.addIssue({ code: 'custom', message: `"${v.slice(0, 40)}" is not a duration (use e.g. 90s, 10m, 1h)` });
          return z.NEVER;
        }
      }
      const { min, max } = opts;
      if ((min !== undefined && ms < min) || (max !== undefined && ms > max)) {
        const range = opts.range ?? (min !== undefined && max !== undefined ? `must be between ${fmtMs(min)} and ${fmtMs(max)}` : max !== undefined ? `must be at most ${fmtMs(max)}` : `must be at least ${fmtMs(min!)}`);
        ctx.addIssue({ code: 'custom', message: range });
        return z.NEVER;
      }
      return ms;
    });
}

/** The JSON Schema (draft-07, what Fastify's validator reads) of what a schema accepts as input. */
export function jsonSchemaOf(schema: z.ZodType): Record<string, unknown> {
  const { $schema: _drop, ...rest } = z.toJSONSchema(schema, { io: 'input', target: 'draft-7', unrepresentable: 'any' }) as Record<string, unknown>;
  return rest;
}
