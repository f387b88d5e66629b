// Identity templates such as `workload:github/{repository}`: claims become parts of an identity
// id, so a claim value must not be able to change the id's structure (`..`, empty segments,
// spaces, control characters) — an issuer-controlled string would otherwise pick the identity.
import type { JWTPayload } from 'jose';
import { fail } from './reasons.ts';

const PLACEHOLDER = /\{([A-Za-z0-9_.-]+)\}/g;
const SAFE_VALUE = /^[A-Za-z0-9._@:+=-]+(\/[A-Za-z0-9._@:+=-]+)*$/;
const MAX_VALUE = 200;
const MAX_ID = 256;

export type IdentityTemplate = (claims: JWTPayload) => string;

export function isSafeClaimValue(v: string): boolean {
  if (v.length === 0 || v.length > MAX_VALUE || !SAFE_VALUE.test(v)) return false;
  return v.split('/').every((seg) => seg !== '.' && seg !== '..');
}

/** Compiles a template; throws TypeError on a bad template (a configuration error). */
export function compileIdentityTemplate(template: string): IdentityTemplate {
  const names = [...template.matchAll(PLACEHOLDER)].map((m) => m[1]!);
  const rest = template.replace(PLACEHOLDER, '');
  if (/[{}]/.test(rest)) throw new TypeError(`identity template "${template}" has an unbalanced or invalid placeholder`);
  if (/\s/.test(template)) throw new TypeError(`identity template "${template}" contains whitespace`);
  return (claims) => {
    for (const name of names) {
      const v = claims[name];
      if (v === undefined) throw fail('bad_identity_claim', `claim ${name} used by the identity template is missing`);
      if (typeof v !== 'string' || !isSafeClaimValue(v)) throw fail('bad_identity_claim', `claim ${name} is not a safe identity string`);
    }
    const id = template.replace(PLACEHOLDER, (_m, name: string) => claims[name] as string);
    if (id.length > MAX_ID) throw fail('bad_identity_claim', `identity id is longer than ${MAX_ID}`);
    return id;
  };
}
