// Deterministic JSON (RFC 8785-like): object keys sorted by UTF-16 code units, no whitespace,
// numbers and strings as ECMAScript JSON.stringify writes them. The same value always gives the
// same bytes, so a hash over it can be recomputed by anyone, from the database or an export.
import { InvalidInput } from '../common/errors.ts';

/** Serialises `value` canonically; throws InvalidInput for values JSON cannot carry faithfully. */
export function canonicalJson(value: unknown): string {
  return write(value, '$', 0);
}

const MAX_DEPTH = 64;

function write(value: unknown, path: string, depth: number): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      // NaN/Infinity have no JSON form; silently writing null would change the meaning.
      if (!Number.isFinite(value)) throw new InvalidInput('non-finite number is not allowed', path);
      return JSON.stringify(value);
    case 'object':
      break;
    default:
      throw new InvalidInput(`${typeof value} is not a JSON value`, path);
  }
  if (depth >= MAX_DEPTH) throw new InvalidInput('value is nested too deeply', path);
  const toJSON = (value as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === 'function') return write((toJSON as () => unknown).call(value), path, depth + 1);
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ',';
      const v: unknown = value[i];
      out += v === undefined ? 'null' : write(v, `${path}[${i}]`, depth + 1);
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
    out += JSON.stringify(k) + ':' + write(v, `${path}.${k}`, depth + 1);
  }
  return out + '}';
}
