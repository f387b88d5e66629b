// Config of an `oidc-human` trust (operators signing in through the organisation's OpenID
// provider): a zod schema, then the client secret read from `client_secret_env` (never inline;
// public clients use PKCE only). Errors are ConfigErrors naming the field.
import { ConfigError, describe, duration, flag, forbidden, integer, mapping, oneOf, text, texts, validateConfig, z } from '../../../common/validation.ts';
import type { TrustConfigContext } from '../plugin.ts';

export interface HumanOidcTrustConfig {
  name: string;
  kind: 'oidc-human';
  /** Exact `iss`; discovery is `<issuer>/.well-known/openid-configuration`. */
  issuer: string;
  client_id: string;
  /** Resolved from `client_secret_env`; absent for a public client. */
  client_secret?: string;
  /** Allowed redirect URIs; loopback ones (127.0.0.1, [::1]) match any port (RFC 8252 §7.3). */
  redirect_uris: string[];
  scopes: string[];
  algorithms: string[];
  /** `email` (default; requires `email_verified` unless turned off) or `sub`. */
  identity_claim: 'email' | 'sub';
  require_verified_email: boolean;
  /** If set, only these email domains may sign in. */
  allowed_domains: string[];
  /** Claim holding group names (→ Cedar parents `Team::"<group>"`). */
  groups_claim?: string;
  /** `amr` values that count as multi-factor (RFC 8176). */
  mfa_amr: string[];
  /** `acr` values that count as multi-factor. */
  mfa_acr: string[];
  /** `acr_values` to send when stepping up to MFA (optional; `prompt=login` is always sent). */
  step_up_acr?: string;
  leeway_seconds: number;
  /** ID tokens whose `exp - iat` exceeds this are refused (`max_token_lifetime`, default 24 h). */
  max_token_lifetime_seconds: number;
  /** `reject`: an ID token whose `jti` was seen before is refused (and one without `jti`). */
  replay: 'allow' | 'reject';
  /**
   * `max_age` sent with every login (seconds): the provider must then return `auth_time` and
   * re-authenticate users whose sign-in is older. Without it, an ID token without `auth_time`
   * has an unknown auth age, which any `@maxAuthAge` policy treats as too old (step-up asks again
   * with its own max_age).
   */
  max_age?: number;
  /** How long a started login (state, nonce, PKCE verifier) stays usable. */
  login_ttl_ms: number;
  boundary?: string;
  environment?: string;
  /** Declares that `user:` ids may overlap another trust's (both must say so; binding still holds). */
  shared_namespace?: boolean;
}

const DEFAULT_MFA_AMR = ['mfa', 'otp', 'hwk', 'sc', 'swk'];
const SAFE_ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];

export function isLoopback(u: URL): boolean {
  return u.hostname === '127.0.0.1' || u.hostname === '[::1]' || u.hostname === 'localhost';
}

/**
 * Why a redirect URI is refused, or undefined. The same rules hold for configured redirect URIs
 * and for the one given when a login starts: https (http only on loopback), no userinfo, no
 * fragment (not even an empty `#`), and written in canonical form (what `new URL` prints, so
 * `127.1`, `0x7f.1`, `..` segments, upper-case hosts or backslashes cannot dress up as another
 * address).
 */
export function redirectUriProblem(s: unknown): string | undefined {
  if (typeof s !== 'string' || s.length === 0) return 'not a non-empty string';
  if (s.length > 2048) return 'longer than 2048 characters';
  if (s.includes('#')) return 'no fragment allowed';
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    return 'not a URL';
  }
  if (u.username !== '' || u.password !== '' || /^[^:]+:\/\/[^/?]*@/.test(s)) return 'no credentials (userinfo) allowed';
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && isLoopback(u))) return 'must be https (http only on loopback)';
  if (u.href !== s && !(u.pathname === '/' && u.search === '' && `${s}/` === u.href)) return `not in canonical form (would be read as ${u.href.slice(0, 256)})`;
  return undefined;
}

/** An issuer URL: https (http only on loopback), no fragment or credentials. */
const issuerUrl = text({ max: 2048 }).superRefine((s, ctx) => {
  if (!URL.canParse(s)) return void ctx.addIssue({ code: 'custom', message: 'not a URL' });
  const u = new URL(s);
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && isLoopback(u))) ctx.addIssue({ code: 'custom', message: 'must be https (http only on loopback)' });
  if (u.hash || u.username || u.password) ctx.addIssue({ code: 'custom', message: 'no fragment or credentials allowed' });
});

/** Durations here read a bare number as milliseconds. */
const ms = (min: number, max: number) => duration({ numbers: 'ms', min, max });
const opt = (max: number) => text({ max: Math.min(max, 512) }).optional();

export const humanOidcConfig = mapping({
  name: text({ pattern: /^[a-z0-9][a-z0-9._-]{0,62}$/, hint: 'must be a trust name (lowercase letters, digits, . _ -)' }),
  kind: z.literal('oidc-human'),
  issuer: issuerUrl,
  client_id: text({ max: 256 }),
  client_secret_env: text({ max: 512, pattern: /^[A-Z_][A-Z0-9_]*$/, hint: 'must be an environment variable name' }).optional(),
  client_secret: forbidden('secrets are not accepted inline; use client_secret_env'),
  redirect_uris: z
    .array(z.string().superRefine((v, ctx) => {
      const problem = redirectUriProblem(v);
      if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
    }))
    .min(1, 'give at least one redirect URI (e.g. http://127.0.0.1/callback for the CLI)'),
  scopes: texts({ max: 512, pattern: /^[\x21\x23-\x5b\x5d-\x7e]+$/, hint: 'must be a scope' })
    .default(['openid', 'email', 'profile'])
    .refine((l) => l.includes('openid'), 'must include openid'),
  algorithms: z
    .array(text().refine((a) => SAFE_ALGS.includes(a), { error: (iss) => `${describe(iss.input)} is not an allowed asymmetric algorithm` }))
    .min(1, 'at least one algorithm')
    .default(['RS256', 'ES256', 'EdDSA']),
  identity_claim: oneOf(['email', 'sub']).default('email'),
  require_verified_email: flag().default(true),
  allowed_domains: texts({ max: 512, pattern: /^[a-z0-9.-]+$/, hint: 'must be a lowercase domain' }).default([]),
  groups_claim: opt(128),
  mfa_amr: texts({ max: 512 }).optional(),
  mfa_acr: texts({ max: 512 }).optional(),
  step_up_acr: opt(256),
  leeway_seconds: integer(0, 300).default(30),
  max_token_lifetime: ms(1000, 366 * 86_400_000).default(24 * 3_600_000),
  replay: oneOf(['allow', 'reject']).default('allow'),
  max_age: ms(0, 30 * 86_400_000).optional(),
  login_ttl: ms(60_000, 60 * 60_000).default(10 * 60_000),
  boundary: opt(64),
  environment: opt(64),
  shared_namespace: flag().optional(),
});

/** One `oidc-human` trust entry → its config, the client secret read from `client_secret_env`. */
export function validateHumanOidcTrust(raw: unknown, env: NodeJS.ProcessEnv = process.env, path = 'trust'): HumanOidcTrustConfig {
  const o = validateConfig(humanOidcConfig, raw, path);
  let client_secret: string | undefined;
  if (o.client_secret_env !== undefined) {
    client_secret = env[o.client_secret_env];
    if (!client_secret) throw new ConfigError(`${path}.client_secret_env`, `environment variable ${o.client_secret_env} is not set`);
  }
  return {
    name: o.name,
    kind: 'oidc-human',
    issuer: o.issuer,
    client_id: o.client_id,
    ...(client_secret !== undefined && { client_secret }),
    redirect_uris: o.redirect_uris,
    scopes: o.scopes,
    algorithms: o.algorithms,
    identity_claim: o.identity_claim,
    require_verified_email: o.require_verified_email,
    allowed_domains: o.allowed_domains,
    ...(o.groups_claim !== undefined && { groups_claim: o.groups_claim }),
    // Alternatives: configuring mfa_acr alone means acr decides, so the amr default does not linger.
    mfa_amr: o.mfa_amr ?? (o.mfa_acr === undefined ? DEFAULT_MFA_AMR : []),
    mfa_acr: o.mfa_acr ?? [],
    ...(o.step_up_acr !== undefined && { step_up_acr: o.step_up_acr }),
    leeway_seconds: o.leeway_seconds,
    max_token_lifetime_seconds: Math.floor(o.max_token_lifetime / 1000),
    replay: o.replay,
    ...(o.max_age !== undefined && { max_age: Math.floor(o.max_age / 1000) }),
    login_ttl_ms: o.login_ttl,
    ...(o.boundary !== undefined && { boundary: o.boundary }),
    ...(o.environment !== undefined && { environment: o.environment }),
    ...(o.shared_namespace !== undefined && { shared_namespace: o.shared_namespace }),
  };
}

/** One `trusts[i]` entry of kind oidc-human (the plug-in's parser). */
export function parseHumanOidcTrust(raw: unknown, ctx: TrustConfigContext, path: string): HumanOidcTrustConfig {
  return validateHumanOidcTrust(raw, ctx.env, path);
}
