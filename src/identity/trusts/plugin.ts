// What one trust kind is: its kind name, the authentication methods its proofs yield, its config
// schema and parser, which identities it can produce (binding), cross-checks against the rest of
// the configuration, and a factory. registry.ts lists the kinds; nothing else names them.
import type { Clock } from '../../common/clock.ts';
import type { OutboundFetch } from '../../common/outbound.ts';
import { duration, flag, oneOf, text, z } from '../../common/validation.ts';
import type { Producer, ProducerTrust } from '../binding.ts';
import type { ReplayGuard } from '../jwt.ts';
import type { LoginStates } from '../login-state.ts';
import type { SpiffeId } from '../spiffe-id.ts';
import type { IdentityKind, TrustVerifier } from '../types.ts';
import { IDENTITY_KINDS } from '../types.ts';
import type { HumanOidcTrust } from './oidc-human/oidc-human.ts';

/** What every trust has, whatever its kind. */
export interface TrustBase {
  name: string;
  kind: string;
  /** Defaults for identities registered on their first login (boundary is checked against `boundaries`). */
  boundary?: string;
  environment?: string;
  owner?: string;
  /** Declares that this trust's identity template may overlap another's (both must say so; binding still holds). */
  shared_namespace?: boolean;
}

/** Checks every JWT trust applies to the tokens it accepts (identity/jwt.ts validateJwt). */
export interface TokenChecks {
  /** A token whose `exp - iat` exceeds this is refused (`max_token_lifetime`; default 24 h when left out). */
  max_token_lifetime_seconds?: number;
  /** `reject`: a `jti` seen before within its lifetime is refused (and a token without one). Default `allow`. */
  replay?: 'allow' | 'reject';
}

/** Where a trust entry's files and secrets come from. */
export interface TrustConfigContext {
  /** Relative paths in the entry resolve against this folder (the config file's). */
  baseDir: string;
  /** `*_env` secrets are read from here. */
  env: NodeJS.ProcessEnv;
}

/** What the rest of the configuration looks like to a trust's cross-checks. */
export interface ConfigView {
  trusts: readonly TrustBase[];
  targets: readonly { name: string; kind: string; trust_domain?: string }[];
}

/** Portcullis' own SPIFFE CA, for trusts with `bundle: portcullis` (provided by the broker). */
export interface OwnSpiffeCa {
  /** The bundle (JWKS) of a trust domain Portcullis issues SVIDs for, or undefined. */
  bundle(trustDomain: string): unknown;
  /** The identity an SVID Portcullis issued was issued for, while its lease is active; throws AuthenticationFailed otherwise. */
  issuedBy(trustDomain: string, id: SpiffeId, serial: string): Promise<string>;
}

/** What the broker gives a trust it builds. */
export interface TrustDeps {
  clock: Clock;
  /** Keeps the token ids of trusts with `replay: reject` (across restarts). */
  replay: ReplayGuard;
  /** How jwks_uri and OIDC endpoints are fetched (the outbound policy). */
  fetch?: OutboundFetch;
  ownCa?: OwnSpiffeCa;
  /** Where human trusts keep their pending logins (the store: any replica completes them). */
  loginStates?: LoginStates;
}

/** A built trust: a proof verifier behind the Authenticator, or an interactive (human) sign-in. */
export type BuiltTrust = { verifier: TrustVerifier } | { human: HumanOidcTrust };

export interface TrustPlugin<C extends TrustBase = TrustBase, M extends string = string> {
  /** `kind:` of a trust in portcullis.yaml. */
  readonly kind: C['kind'];
  /** `context.authn.method` of the proofs it verifies (AuthnMethod is derived from these). */
  readonly methods: readonly M[];
  /** One `trusts[i]` entry as written (zod; z.toJSONSchema documents it). */
  readonly config: z.ZodType;
  /** One entry → its typed config, reading the files and environment variables it names; ConfigError naming the field. */
  parse(raw: unknown, ctx: TrustConfigContext, path: string): C;
  /** Checks against the other trusts and the targets, once all are read (ConfigError naming the field). */
  check?(t: C, path: string, config: ConfigView): void;
  /** The ids it can produce (identity binding), or undefined when its credentials name their identity. */
  producer(t: ProducerTrust, ownBundle: string): Producer | undefined;
  /** Builds it. */
  create(t: C, deps: TrustDeps): BuiltTrust;
}

// ── Config parts shared by the trust kinds ───────────────────────────────────────────────────

/** `name:` of a workload trust. */
export const TRUST_NAME = text({ pattern: /^[a-z][a-z0-9-]{0,62}$/, hint: 'must be a lowercase name like "platform" or "ci"' });

/** The identity defaults and namespace declaration of a trust entry. */
export const trustDefaults = {
  boundary: text({ pattern: /^[a-z][a-z0-9-]{0,62}$/, hint: 'must be a lowercase name like "platform" or "ci"' }).optional(),
  environment: text({ pattern: /^[a-z0-9][a-z0-9-]{0,63}$/ }).optional(),
  owner: text({ max: 256 }).optional(),
  shared_namespace: flag().optional(),
};

/** `identity_kind:` (default workload). */
export const identityKind = oneOf(IDENTITY_KINDS as [IdentityKind, ...IdentityKind[]]).default('workload');

/** `leeway:` allowed clock skew (default 30s, at most 5m) → seconds. */
export const leeway = duration({ numbers: 'seconds', max: 300_000, range: 'must be at most 5m' })
  .transform((ms) => Math.floor(ms / 1000))
  .default(30);

/** `max_token_lifetime` (default 24h, at most 366d: Kubernetes may extend projected tokens to a year) and `replay`. */
export const tokenCheckFields = {
  max_token_lifetime: duration({ numbers: 'seconds', min: 1000, max: 366 * 86_400_000, range: 'must be between 1s and 366d' }).optional(),
  replay: oneOf(['allow', 'reject']).default('allow'),
};

/** The TokenChecks of a parsed entry (24h = identity/jwt.ts DEFAULT_MAX_TOKEN_LIFETIME_SECONDS, not imported: keeps jose out of config loading). */
export function tokenChecks(o: { max_token_lifetime?: number | undefined; replay: 'allow' | 'reject' }): Required<TokenChecks> {
  return { max_token_lifetime_seconds: o.max_token_lifetime === undefined ? 24 * 3600 : Math.floor(o.max_token_lifetime / 1000), replay: o.replay };
}

/** The defaults of a parsed entry, leaving out what was not given. */
export function defaultsOf(o: { boundary?: string | undefined; environment?: string | undefined; owner?: string | undefined; shared_namespace?: boolean | undefined }): Omit<TrustBase, 'name' | 'kind'> {
  return {
    ...(o.boundary !== undefined && { boundary: o.boundary }),
    ...(o.environment !== undefined && { environment: o.environment }),
    ...(o.owner !== undefined && { owner: o.owner }),
    ...(o.shared_namespace !== undefined && { shared_namespace: o.shared_namespace }),
  };
}
