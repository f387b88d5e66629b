// The trust kinds. Adding a kind is one folder beside these (see plugin.ts for what it exports)
// and one line in TRUSTS; config loading, identity binding, AuthnMethod and the broker read
// everything else from here. API keys and the bootstrap secret are built in, not configured.
import { z } from '../../common/validation.ts';
import type { TrustBase, TrustPlugin } from './plugin.ts';
import { oidc } from './oidc/index.ts';
import { oidcHuman } from './oidc-human/index.ts';
import { spiffe } from './spiffe/index.ts';

export const TRUSTS = [oidc, spiffe, oidcHuman] as const;

export type { TrustPlugin } from './plugin.ts';

/** A validated trust of any registered kind. */
export type TrustConfig = ReturnType<(typeof TRUSTS)[number]['parse']>;
export type TrustKind = TrustConfig['kind'];

/**
 * Methods of the built-in proofs: API keys (always on), the first administrator's bootstrap
 * secret, and a Portcullis-issued SSH user certificate presented to a session gateway.
 */
const BUILTIN_AUTHN_METHODS = ['api-key', 'bootstrap', 'ssh-certificate'] as const;

/** `context.authn.method`: how an identity was proved. */
export type AuthnMethod = (typeof TRUSTS)[number]['methods'][number] | (typeof BUILTIN_AUTHN_METHODS)[number];
export const AUTHN_METHODS: readonly AuthnMethod[] = [...new Set<AuthnMethod>([...TRUSTS.flatMap((t) => t.methods), ...BUILTIN_AUTHN_METHODS])];

/**
 * What a `trusts[i]` entry may be, for documentation (z.toJSONSchema). The config loader routes
 * each entry to its kind's `parse` instead, so errors name the fields of that kind only.
 */
export const TRUST_ENTRY = z.union(TRUSTS.map((t) => t.config) as unknown as [z.ZodType, z.ZodType, ...z.ZodType[]]);

const BY_KIND = new Map<string, TrustPlugin>(TRUSTS.map((t) => [t.kind, t as unknown as TrustPlugin]));

/** The plug-in of a kind, or undefined. */
export function trustKind(kind: string): TrustPlugin<TrustBase> | undefined {
  return BY_KIND.get(kind);
}
