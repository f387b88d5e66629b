// Tool-call arguments → Cedar: each JSON path of the arguments becomes one tag of the call's
// `McpCall` entity (an `McpArg` record), and the redaction applied to what is recorded.
// The mapping is total or refused: an argument that cannot be mapped faithfully is an error.
import type { CedarValue } from '../../policy/engine/types.ts';

/** Limits on what is mapped (config `arguments`). */
export interface ArgLimits {
  /** Deepest nesting mapped (the top-level keys are depth 1). */
  maxDepth: number;
  /** Most tags one call may produce (every object, array and leaf counts). */
  maxTags: number;
  /** Longest string value mapped, in characters. */
  maxString: number;
}

export class UnmappableArgument extends Error {
  readonly path: string;
  constructor(path: string, why: string) {
    super(`argument ${path || '(root)'} cannot be mapped to a Cedar value: ${why}`);
    this.path = path;
  }
}

/** Cedar decimal: at most 4 fractional digits, within ±922337203685477.5807. */
const DECIMAL_RE = /^-?\d{1,15}(\.\d{1,4})?$/;
const KEY_RE = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * The tags of `McpCall` for these arguments. Paths join keys and array indexes with `.`
 * (`opts.mode`, `paths.0`). Values: a string → `{kind:"string", str}`; an integer within
 * 2^53 → `{kind:"long", long}`; another number → `{kind:"decimal", decimal}` when it has at most 4
 * fractional digits and fits, else `{kind:"number", str: its JSON text}`; a bool → `{kind:"bool", bool}`;
 * null → `{kind:"null"}`; an array or object → `{kind, size}` and its members under their paths.
 * Refused: an integer beyond 2^53 (JSON parsing lost its value), nesting deeper than `maxDepth`,
 * more than `maxTags` tags, a string longer than `maxString`, a key outside `[A-Za-z0-9_-]{1,64}`.
 */
export function argumentTags(args: unknown, limits: ArgLimits): Record<string, CedarValue> {
  const tags: Record<string, CedarValue> = {};
  if (args === undefined || args === null) return tags;
  if (typeof args !== 'object' || Array.isArray(args)) throw new UnmappableArgument('', 'the arguments must be an object');
  let count = 0;
  const put = (path: string, v: Record<string, CedarValue>) => {
    if (++count > limits.maxTags) throw new UnmappableArgument(path, `more than ${limits.maxTags} values`);
    tags[path] = v;
  };
  const walk = (path: string, v: unknown, depth: number): void => {
    if (depth > limits.maxDepth) throw new UnmappableArgument(path, `nested deeper than ${limits.maxDepth} levels`);
    if (v === null) return put(path, { kind: 'null' });
    switch (typeof v) {
      case 'string':
        if (v.length > limits.maxString) throw new UnmappableArgument(path, `a string longer than ${limits.maxString} characters`);
        return put(path, { kind: 'string', str: v });
      case 'boolean':
        return put(path, { kind: 'bool', bool: v });
      case 'number':
        return put(path, mapNumber(path, v));
      case 'object': {
        const entries = Array.isArray(v) ? v.map((x, i) => [String(i), x] as const) : Object.entries(v as Record<string, unknown>);
        put(path, { kind: Array.isArray(v) ? 'array' : 'object', size: entries.length });
        for (const [k, x] of entries) {
          if (!KEY_RE.test(k)) throw new UnmappableArgument(path, `a key that is not 1-64 of [A-Za-z0-9_-]: ${JSON.stringify(k.slice(0, 40))}`);
          walk(path === '' ? k : `${path}.${k}`, x, depth + 1);
        }
        return;
      }
      default:
        throw new UnmappableArgument(path, `a ${typeof v} is not JSON`);
    }
  };
  for (const [k, x] of Object.entries(args as Record<string, unknown>)) {
    if (!KEY_RE.test(k)) throw new UnmappableArgument('', `a key that is not 1-64 of [A-Za-z0-9_-]: ${JSON.stringify(k.slice(0, 40))}`);
    walk(k, x, 1);
  }
  return tags;
}

function mapNumber(path: string, n: number): Record<string, CedarValue> {
  if (!Number.isFinite(n)) throw new UnmappableArgument(path, 'not a finite number');
  if (Number.isInteger(n)) {
    if (!Number.isSafeInteger(n)) throw new UnmappableArgument(path, 'an integer beyond ±2^53 (its exact value was lost when the JSON was parsed)');
    return { kind: 'long', long: n };
  }
  const text = String(n);
  if (DECIMAL_RE.test(text)) return { kind: 'decimal', decimal: { __extn: { fn: 'decimal', arg: text.includes('.') ? text : `${text}.0` } } };
  return { kind: 'number', str: text };
}

/** What recording shows for a redacted value. */
export const REDACTED = '[redacted]';

/**
 * A copy of `v` for the recording: values under a key named in `keys` (case-insensitive, any depth)
 * become `[redacted]`, strings matching a pattern are replaced, and the result is cut to `maxBytes`
 * of JSON (then it is `{truncated: true, bytes, head}`).
 */
export function redact(v: unknown, rules: { keys: ReadonlySet<string>; patterns: readonly RegExp[] }, maxBytes: number): unknown {
  const walk = (x: unknown, depth: number): unknown => {
    if (depth > 32) return '[too deep]';
    if (typeof x === 'string') return rules.patterns.reduce((s, p) => s.replace(p, REDACTED), x);
    if (Array.isArray(x)) return x.map((y) => walk(y, depth + 1));
    if (x !== null && typeof x === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, y] of Object.entries(x as Record<string, unknown>)) out[k] = rules.keys.has(k.toLowerCase()) ? REDACTED : walk(y, depth + 1);
      return out;
    }
    return x;
  };
  const clean = walk(v, 0);
  const json = JSON.stringify(clean) ?? 'null';
  if (json.length <= maxBytes) return clean;
  return { truncated: true, bytes: json.length, head: json.slice(0, maxBytes) };
}
