// Config of an `oidc-human` trust (operators signing in through the organisation's OpenID
// provider). Raw unknown → typed, or InvalidInput naming the field. The client secret is never
// accepted inline: `client_secret_env` names an environment variable (public clients use PKCE only).
import { InvalidInput } from '../../../common/errors.ts';
import { bool, duration, int, join, obj, onlyKeys, optStr, str, strList } from '../../../access/validate.ts';

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

export const DEFAULT_MFA_AMR = ['mfa', 'otp', 'hwk', 'sc', 'swk'];
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

function redirectUri(v: unknown, path: string): string {
  const problem = redirectUriProblem(v);
  if (problem !== undefined) throw new InvalidInput(`${path}: ${problem}`, path);
  return v as string;
}

function url(v: unknown, path: string, allowHttpLoopback: boolean): string {
  const s = str(v, path, { max: 2048 });
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    throw new InvalidInput(`${path}: not a URL`, path);
  }
  if (u.protocol !== 'https:' && !(allowHttpLoopback && u.protocol === 'http:' && isLoopback(u))) {
    throw new InvalidInput(`${path}: must be https (http only on loopback)`, path);
  }
  if (u.hash || u.username || u.password) throw new InvalidInput(`${path}: no fragment or credentials allowed`, path);
  return s;
}

export function validateHumanOidcTrust(raw: unknown, env: NodeJS.ProcessEnv = process.env, path = 'trust'): HumanOidcTrustConfig {
  const o = obj(raw, path);
  onlyKeys(o, path, [
    'name', 'kind', 'issuer', 'client_id', 'client_secret_env', 'redirect_uris', 'scopes', 'algorithms', 'identity_claim',
    'require_verified_email', 'allowed_domains', 'groups_claim', 'mfa_amr', 'mfa_acr', 'step_up_acr', 'leeway_seconds',
    'login_ttl', 'boundary', 'environment', 'shared_namespace', 'max_token_lifetime', 'replay', 'max_age',
  ]);
  if ('client_secret' in o) throw new InvalidInput(`${path}.client_secret: secrets are not accepted inline; use client_secret_env`, `${path}.client_secret`);
  if (o.kind !== 'oidc-human') throw new InvalidInput(`${join(path, 'kind')}: expected oidc-human`, join(path, 'kind'));
  const cfg: HumanOidcTrustConfig = {
    name: str(o.name, join(path, 'name'), { re: /^[a-z0-9][a-z0-9._-]{0,62}$/, what: 'a trust name' }),
    kind: 'oidc-human',
    issuer: url(o.issuer, join(path, 'issuer'), true),
    client_id: str(o.client_id, join(path, 'client_id'), { max: 256 }),
    redirect_uris: [],
    scopes: strList(o.scopes, join(path, 'scopes'), ['openid', 'email', 'profile'], { re: /^[\x21\x23-\x5b\x5d-\x7e]+$/, what: 'a scope' }),
    algorithms: strList(o.algorithms, join(path, 'algorithms'), ['RS256', 'ES256', 'EdDSA']),
    identity_claim: 'email',
    require_verified_email: bool(o.require_verified_email, join(path, 'require_verified_email'), true),
    allowed_domains: strList(o.allowed_domains, join(path, 'allowed_domains'), [], { re: /^[a-z0-9.-]+$/, what: 'a lowercase domain' }),
    // Alternatives: configuring mfa_acr alone means acr decides, so the amr default does not linger.
    mfa_amr: strList(o.mfa_amr, join(path, 'mfa_amr'), o.mfa_acr === undefined ? DEFAULT_MFA_AMR : []),
    mfa_acr: strList(o.mfa_acr, join(path, 'mfa_acr'), []),
    leeway_seconds: int(o.leeway_seconds, join(path, 'leeway_seconds'), 30, 0, 300),
    max_token_lifetime_seconds: Math.floor(duration(o.max_token_lifetime, join(path, 'max_token_lifetime'), 24 * 3_600_000, 1000, 366 * 86_400_000) / 1000),
    replay: 'allow',
    login_ttl_ms: duration(o.login_ttl, join(path, 'login_ttl'), 10 * 60_000, 60_000, 60 * 60_000),
  };
  if (!cfg.scopes.includes('openid')) throw new InvalidInput(`${join(path, 'scopes')}: must include openid`, join(path, 'scopes'));
  cfg.algorithms.forEach((a, i) => {
    if (!SAFE_ALGS.includes(a)) throw new InvalidInput(`${join(join(path, 'algorithms'), i)}: ${a} is not an allowed asymmetric algorithm`, join(join(path, 'algorithms'), i));
  });
  if (cfg.algorithms.length === 0) throw new InvalidInput(`${join(path, 'algorithms')}: at least one algorithm`, join(path, 'algorithms'));
  if (!Array.isArray(o.redirect_uris) || o.redirect_uris.length === 0) {
    throw new InvalidInput(`${join(path, 'redirect_uris')}: give at least one redirect URI (e.g. http://127.0.0.1/callback for the CLI)`, join(path, 'redirect_uris'));
  }
  cfg.redirect_uris = o.redirect_uris.map((u, i) => redirectUri(u, join(join(path, 'redirect_uris'), i)));
  if (o.replay !== undefined) {
    if (o.replay !== 'allow' && o.replay !== 'reject') throw new InvalidInput(`${join(path, 'replay')}: expected allow or reject`, join(path, 'replay'));
    cfg.replay = o.replay;
  }
  if (o.max_age !== undefined) cfg.max_age = Math.floor(duration(o.max_age, join(path, 'max_age'), 0, 0, 30 * 86_400_000) / 1000);
  if (o.identity_claim !== undefined) {
    if (o.identity_claim !== 'email' && o.identity_claim !== 'sub') throw new InvalidInput(`${join(path, 'identity_claim')}: expected email or sub`, join(path, 'identity_claim'));
    cfg.identity_claim = o.identity_claim;
  }
  if (o.client_secret_env !== undefined) {
    const name = str(o.client_secret_env, join(path, 'client_secret_env'), { re: /^[A-Z_][A-Z0-9_]*$/, what: 'an environment variable name' });
    const secret = env[name];
    if (!secret) throw new InvalidInput(`${join(path, 'client_secret_env')}: environment variable ${name} is not set`, join(path, 'client_secret_env'));
    cfg.client_secret = secret;
  }
  const groups = optStr(o.groups_claim, join(path, 'groups_claim'), { max: 128 });
  if (groups !== undefined) cfg.groups_claim = groups;
  const acr = optStr(o.step_up_acr, join(path, 'step_up_acr'), { max: 256 });
  if (acr !== undefined) cfg.step_up_acr = acr;
  const boundary = optStr(o.boundary, join(path, 'boundary'), { max: 64 });
  if (boundary !== undefined) cfg.boundary = boundary;
  const environment = optStr(o.environment, join(path, 'environment'), { max: 64 });
  if (environment !== undefined) cfg.environment = environment;
  if (o.shared_namespace !== undefined) cfg.shared_namespace = bool(o.shared_namespace, join(path, 'shared_namespace'), false);
  return cfg;
}
