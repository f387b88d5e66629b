// Payload hygiene: audit events carry fingerprints, never secret values. This scrubber is the
// last line of defence when a caller forgets: values under secret-looking keys, and strings that
// look like credentials wherever they appear, are replaced by REDACTED before hashing.

import type { Redactor } from './canonical.ts';

export const REDACTED = '[redacted]';

// Key names that announce a secret value. Long words match anywhere (camelCase too); short ones
// only as the whole key, so `spinner` or `footprint` are not redacted.
const SECRET_KEY =
  /pass(word|wd|phrase)|secret|token|api[-_]?key|private[-_]?key|priv[-_]?key|credential|authorization|cookie|bearer|session[-_]?key|signing[-_]?key|master[-_]?key|connection[-_]?string|^(pass|pwd|otp|pin|dsn|seed|key)$/i;
// Names that describe a secret without holding it (an id, a fingerprint, a kind, a count, a time).
const SAFE_SUFFIX =
  /(fingerprint|[-_]fp|[-_]?ids?|[-_]?kid|[-_]?type|[-_]?kind|[-_]?name|[-_]?path|[-_]?ref|[-_]?count|[-_]at|[-_]?expires|[-_]?ttl|[-_]?hint|[-_]?prefix)$/i;

// Values that are credentials whatever key they sit under, as one alternation so each string is
// tested once: Portcullis API keys, JWS compact (JWT), PEM private keys, bearer/basic headers,
// well-known vendor token prefixes, URLs with user:password@.
const SECRET_VALUE =
  /^pcx_[A-Za-z0-9_-]{8,}|^eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*|-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----|^[Bb][Ee][Aa][Rr][Ee][Rr]\s+\S{8,}|^[Bb][Aa][Ss][Ii][Cc]\s+[A-Za-z0-9+/=]{8,}$|^(ghp|gho|ghs|ghu|github_pat|glpat|xox[abposr]|sk_live|sk-|AKIA)[A-Za-z0-9_-]{8,}|^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^\s/:@]+:[^\s/@]+@/;

// Payloads repeat the same few keys: remember verdicts (bounded, so hostile keys cannot grow it).
const keyVerdicts = new Map<string, boolean>();

export function isSecretKey(key: string): boolean {
  let v = keyVerdicts.get(key);
  if (v === undefined) {
    v = SECRET_KEY.test(key) && !SAFE_SUFFIX.test(key);
    if (keyVerdicts.size < 10_000) keyVerdicts.set(key, v);
  }
  return v;
}

export function looksLikeSecret(value: string): boolean {
  return value.length >= 8 && SECRET_VALUE.test(value); // every pattern needs 8+ characters
}

export interface ScrubResult<T> {
  value: T;
  /** JSON paths whose values were replaced. */
  redacted: string[];
}

/** Returns a scrubbed deep copy of `value`; the input is not modified. */
export function scrub<T>(value: T): ScrubResult<T> {
  const redacted: string[] = [];
  const out = walk(value, '$', redacted, 0) as T;
  return { value: out, redacted };
}

/** Scrubs a standalone string field (actor, subject, …): only the value patterns apply. */
export function scrubString(value: string): string {
  return looksLikeSecret(value) ? REDACTED : value;
}

function walk(value: unknown, path: string, redacted: string[], depth: number): unknown {
  if (typeof value === 'string') {
    if (looksLikeSecret(value)) {
      redacted.push(path);
      return REDACTED;
    }
    return value;
  }
  if (value === null || typeof value !== 'object' || depth > 64) return value; // canonicalJson rejects depth
  if (value instanceof Uint8Array || value instanceof ArrayBuffer) {
    // Raw bytes in an audit payload are a key or a secret more often than not.
    redacted.push(path);
    return REDACTED;
  }
  if (Array.isArray(value)) return value.map((v, i) => walk(v, `${path}[${i}]`, redacted, depth + 1));
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return value; // Date and friends
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const p = `${path}.${k}`;
    if (v !== undefined && v !== null && isSecretKey(k)) {
      redacted.push(p);
      out[k] = REDACTED;
    } else {
      out[k] = walk(v, p, redacted, depth + 1);
    }
  }
  return out;
}

/** The scrubber as a Redactor, for canonicalJson's one-pass scrub-and-serialise. */
export const SECRET_REDACTOR: Redactor = { key: isSecretKey, value: looksLikeSecret, replacement: REDACTED };
