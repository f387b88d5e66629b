// Identity templates such as `workload:github/{repository}`: claims become parts of an identity
// id, so a claim value must not be able to change the id's structure (`..`, empty segments,
// spaces, control characters) — an issuer-controlled string would otherwise pick the identity.
//
// So that "which trust can produce this id" is decidable (docs/identity.md, binding), a value
// never contains `:` and only the LAST placeholder may contain `/`: `{org}/{repo}` with org
// `a/b` + repo `c` would otherwise equal org `a` + repo `b/c`.
import type { JWTPayload } from 'jose';
import { fail } from './reasons.ts';

const PLACEHOLDER = /\{([A-Za-z0-9_.-]+)\}/g;
const SEGMENT = '[A-Za-z0-9._@+=-]+';
const SAFE_SEGMENT = new RegExp(`^${SEGMENT}$`);
const SAFE_PATH = new RegExp(`^${SEGMENT}(/${SEGMENT})*$`);
const MAX_VALUE = 200;
const MAX_ID = 256;

export type IdentityTemplate = (claims: JWTPayload) => string;

/** A claim value usable in an identity: no `:`; `/` only when it fills the last placeholder. */
export function isSafeClaimValue(v: string, opts: { last?: boolean } = { last: true }): boolean {
  if (v.length === 0 || v.length > MAX_VALUE || !(opts.last ? SAFE_PATH : SAFE_SEGMENT).test(v)) return false;
  return v.split('/').every((seg) => seg !== '.' && seg !== '..');
}

/** The literal text before the first placeholder (the whole template when it has none). */
export function templatePrefix(template: string): string {
  const i = template.search(/\{/);
  return i < 0 ? template : template.slice(0, i);
}

/**
 * Can two templates yield the same id? Decidable because of the value rules above: they are
 * disjoint only when their literal prefixes differ and neither is a prefix of the other.
 */
export function templatesOverlap(a: string, b: string): boolean {
  const pa = templatePrefix(a);
  const pb = templatePrefix(b);
  return pa.startsWith(pb) || pb.startsWith(pa);
}

/** Does some set of claim values make `template` yield exactly `id`? (`value` narrows what a value may be.) */
export function templateCanProduce(template: string, id: string, value: (v: string, last: boolean) => boolean = (v, last) => isSafeClaimValue(v, { last })): boolean {
  const parts = template.split(PLACEHOLDER); // literal, name, literal, name, …, literal
  const n = (parts.length - 1) / 2;
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  let re = '^';
  for (let i = 0; i < parts.length; i++) {
    if (i % 2 === 0) re += esc(parts[i]!);
    else re += (i - 1) / 2 === n - 1 ? '(.+)' : '([^/:]+)';
  }
  const m = new RegExp(`${re}$`).exec(id);
  if (!m) return false;
  return m.slice(1).every((v, i) => value(v, i === n - 1));
}

/**
 * The literal between two placeholders that does not delimit them, or undefined. A value never
 * contains `:` and only the last one contains `/`, so a separator with `/` or `:` splits an id in
 * one way only; `{org}-{repo}` does not (org `a-b` + repo `c` = org `a` + repo `b-c`: two
 * subjects of one issuer would share an identity).
 */
export function ambiguousSeparator(template: string): string | undefined {
  const parts = template.split(PLACEHOLDER);
  for (let i = 2; i < parts.length - 1; i += 2) if (!/[/:]/.test(parts[i]!)) return parts[i]!;
  return undefined;
}

/** Compiles a template; throws TypeError on a bad template (a configuration error). */
export function compileIdentityTemplate(template: string): IdentityTemplate {
  const names = [...template.matchAll(PLACEHOLDER)].map((m) => m[1]!);
  const rest = template.replace(PLACEHOLDER, '');
  if (/[{}]/.test(rest)) throw new TypeError(`identity template "${template}" has an unbalanced or invalid placeholder`);
  if (/\s/.test(template)) throw new TypeError(`identity template "${template}" contains whitespace`);
  if (/\}\{/.test(template)) throw new TypeError(`identity template "${template}" has adjacent placeholders (their values could not be told apart)`);
  const sep = ambiguousSeparator(template);
  if (sep !== undefined) throw new TypeError(`identity template "${template}": placeholders separated by "${sep}" could not be told apart; separate them with "/" or ":"`);
  return (claims) => {
    names.forEach((name, i) => {
      const v = claims[name];
      if (v === undefined) throw fail('bad_identity_claim', `claim ${name} used by the identity template is missing`);
      if (typeof v !== 'string' || !isSafeClaimValue(v, { last: i === names.length - 1 })) {
        throw fail('bad_identity_claim', `claim ${name} is not a safe identity string (no ":"; "/" only in the last placeholder)`);
      }
    });
    const id = template.replace(PLACEHOLDER, (_m, name: string) => claims[name] as string);
    if (id.length > MAX_ID) throw fail('bad_identity_claim', `identity id is longer than ${MAX_ID}`);
    return id;
  };
}
