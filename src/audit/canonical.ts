// Deterministic JSON (RFC 8785-like): object keys sorted by UTF-16 code units, no whitespace,
// numbers and strings as ECMAScript JSON.stringify writes them. The same value always gives the
// same bytes, so a hash over it can be recomputed by anyone, from the database or an export.
//
// canonicalJson optionally redacts while it writes (one pass, no copy): audit payloads are
// scrubbed and serialised on every append, the hot path.
import { InvalidInput } from '../common/errors.ts';

export interface Redactor {
  /** True when the value under this key must not be written. */
  key(name: string): boolean;
  /** True when this string value must not be written. */
  value(s: string): boolean;
  /** Written in place of a redacted value. */
  readonly replacement: string;
}

/** Serialises `value` canonically; throws InvalidInput (naming the path) for values JSON cannot carry faithfully. */
export function canonicalJson(value: unknown, redact?: Redactor): string {
  try {
    return write(value, 0, redact);
  } catch (e) {
    if (e instanceof PathError) throw new InvalidInput(e.message, '$' + e.path.join(''));
    throw e;
  }
}

const MAX_DEPTH = 64;

// Paths are only built when something fails, keeping the success path allocation-free.
class PathError extends Error {
  readonly path: string[] = [];
}

function write(value: unknown, depth: number, redact: Redactor | undefined): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return redact !== undefined && redact.value(value) ? JSON.stringify(redact.replacement) : JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      // NaN/Infinity have no JSON form; silently writing null would change the meaning.
      if (!Number.isFinite(value)) throw new PathError('non-finite number is not allowed');
      return JSON.stringify(value);
    case 'object':
      break;
    default:
      throw new PathError(`${typeof value} is not a JSON value`);
  }
  if (depth >= MAX_DEPTH) throw new PathError('value is nested too deeply');
  if (redact !== undefined && (value instanceof Uint8Array || value instanceof ArrayBuffer)) {
    // Raw bytes in an audit payload are a key or a secret more often than not.
    return JSON.stringify(redact.replacement);
  }
  const toJSON = (value as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === 'function') return write((toJSON as () => unknown).call(value), depth + 1, redact);
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ',';
      const v: unknown = value[i];
      try {
        out += v === undefined ? 'null' : write(v, depth + 1, redact);
      } catch (e) {
        if (e instanceof PathError) e.path.unshift(`[${i}]`);
        throw e;
      }
    }
    return out + ']';
  }
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj).sort();
  let out = '{';
  let first = true;
  for (const k of keys) {
    const v = obj[k];
    if (v === undefined) continue; // as JSON.stringify: absent and undefined are the same
    if (!first) out += ',';
    first = false;
    if (redact !== undefined && v !== null && redact.key(k)) {
      out += JSON.stringify(k) + ':' + JSON.stringify(redact.replacement);
      continue;
    }
    try {
      out += JSON.stringify(k) + ':' + write(v, depth + 1, redact);
    } catch (e) {
      if (e instanceof PathError) e.path.unshift(`.${k}`);
      throw e;
    }
  }
  return out + '}';
}
