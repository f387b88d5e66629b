// Human sign-in through the organisation's OpenID provider (`oidc-human` trust): authorization
// code flow with PKCE (S256) and the device authorization grant (RFC 8628) for headless use.
// The broker keeps the per-login secrets (nonce, PKCE verifier, device code) in the store, sealed
// (identity/login-state.ts), so any replica completes a login, once; it hands the caller only the
// URL / user code and an opaque handle. The ID token is verified with jose against the provider's
// discovered JWKS: iss, aud, exp, nonce, algorithm allowlist, and auth_time when a max_age was
// asked (step-up). Users become `user:<email|sub>` with groups from
// a configured claim as Cedar parents `Team::"<group>"`.
import { outboundFetch } from '../../../common/outbound.ts';
import type { OutboundFetch } from '../../../common/outbound.ts';
import { createHash, randomBytes } from 'node:crypto';
import { createRemoteJWKSet, customFetch, errors as joseErrors } from 'jose';
import type { JWTPayload, JWTVerifyGetKey } from 'jose';
import type { Clock } from '../../../common/clock.ts';
import { nowSeconds, systemClock } from '../../../common/clock.ts';
import { AuthenticationFailed, InvalidInput, Unavailable } from '../../../common/errors.ts';
import type { EntityUid } from '../../../policy/engine/types.ts';
import type { HumanOidcTrustConfig } from './config.ts';
import { isLoopback, redirectUriProblem } from './config.ts';
import type { AuthnFacts, VerifiedProof } from '../../types.ts';
import { tokenFingerprint, validateJwt } from '../../jwt.ts';
import type { JwtPolicy, ReplayGuard } from '../../jwt.ts';
import { AUTH_TIME_UNKNOWN, authTime, federationTyp, trustTokenChecks } from '../oidc/oidc.ts';
import { memoryLoginStates } from '../../login-state.ts';
import type { LoginStates } from '../../login-state.ts';

export interface ProviderMetadata {
  issuer: string;
  authorization_endpoint: string;
  token_endpoint: string;
  jwks_uri: string;
  device_authorization_endpoint?: string;
  code_challenge_methods_supported?: string[];
  id_token_signing_alg_values_supported?: string[];
  claims_parameter_supported?: boolean;
}

/** Asked for explicitly where the provider takes a `claims` parameter: some only send them on request. */
const AUTHN_CLAIMS = JSON.stringify({ id_token: { amr: null, acr: null, auth_time: { essential: true } } });

/** What a step-up asks of the provider (from StepUpRequired.required). */
export interface StepUpAsk {
  mfa?: boolean;
  max_age?: number;
}

export interface StartLoginOptions {
  /** Where the provider sends the browser back (the CLI's loopback listener, or the web callback). */
  redirectUri: string;
  stepUp?: StepUpAsk;
  /** Force `prompt` (step-up always sends `login`). */
  prompt?: 'login' | 'consent' | 'select_account' | 'none';
  loginHint?: string;
}

export interface StartedLogin {
  /** Open this in a browser. */
  url: string;
  /** Echoed back by the provider on the redirect; also the handle of this login. */
  state: string;
  expires_at: string;
}

export interface StartedDeviceLogin {
  /** Opaque handle to poll with (the device code itself never leaves the broker). */
  handle: string;
  user_code: string;
  verification_uri: string;
  verification_uri_complete?: string;
  expires_at: string;
  interval: number;
}

/** A verified human login: the proof the broker admits, plus group memberships. */
export interface HumanLogin {
  proof: VerifiedProof;
  groups: string[];
  /** `Team::"<group>"` for each group: parents of the `User` principal. */
  parents: EntityUid[];
  email?: string;
}

export type DevicePoll = { status: 'pending'; interval: number } | { status: 'complete'; login: HumanLogin };

/** What a code login needs to complete (sealed at rest: the verifier and nonce are secrets). */
interface PendingCode {
  verifier: string;
  nonce: string;
  redirectUri: string;
  stepUp: StepUpAsk;
}

/** What a device login needs to poll (sealed at rest: the device code is a secret). */
interface PendingDevice {
  deviceCode: string;
  interval: number;
  stepUp: StepUpAsk;
}

export interface HumanOidcTrustOptions {
  clock?: Clock;
  /** Default: outboundFetch() — no private destinations (common/outbound.ts). */
  fetch?: typeof fetch | OutboundFetch;
  /** Discovery cache lifetime (default 1 h). */
  metadataTtlMs?: number;
  /** Where seen ID token ids are kept; required when the trust sets `replay: reject`. */
  replay?: ReplayGuard;
  /** Where pending logins are kept (the broker: its store, shared by every replica). Default: this process's memory. */
  loginStates?: LoginStates;
}

const MAX_GROUPS = 200;
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

const b64url = (b: Buffer): string => b.toString('base64url');
const random = (): string => b64url(randomBytes(32));

export class HumanOidcTrust {
  readonly name: string;
  readonly kind = 'oidc-human' as const;
  readonly config: HumanOidcTrustConfig;
  readonly #clock: Clock;
  readonly #fetch: typeof fetch | OutboundFetch;
  readonly #ttl: number;
  readonly #pending: LoginStates;
  readonly #checks: Pick<JwtPolicy, 'maxLifetimeSeconds' | 'replay'>;
  #meta: { value: ProviderMetadata; jwks: JWTVerifyGetKey; at: number } | undefined;

  constructor(config: HumanOidcTrustConfig, options: HumanOidcTrustOptions = {}) {
    this.name = config.name;
    this.config = config;
    this.#clock = options.clock ?? systemClock;
    this.#fetch = options.fetch ?? outboundFetch();
    this.#ttl = options.metadataTtlMs ?? 3_600_000;
    this.#checks = trustTokenChecks(config.name, config, options.replay);
    this.#pending = options.loginStates ?? memoryLoginStates();
  }

  /** Provider metadata from `.well-known/openid-configuration` (cached). */
  async discover(): Promise<ProviderMetadata> {
    return (await this.#metadata()).value;
  }

  async #metadata(): Promise<{ value: ProviderMetadata; jwks: JWTVerifyGetKey }> {
    const now = this.#clock.now();
    if (this.#meta && now - this.#meta.at < this.#ttl) return this.#meta;
    const url = `${this.config.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
    let doc: Record<string, unknown>;
    try {
      const res = await this.#fetch(url, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(5000), redirect: 'error' });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      doc = (await res.json()) as Record<string, unknown>;
    } catch (err) {
      throw new Unavailable(`trust ${this.name}: OpenID provider discovery failed (${(err as Error).message})`);
    }
    // The discovered issuer must be exactly the configured one (OIDC Discovery §4.3).
    if (doc.issuer !== this.config.issuer) throw new Unavailable(`trust ${this.name}: discovery returned a different issuer`);
    for (const k of ['authorization_endpoint', 'token_endpoint', 'jwks_uri'] as const) {
      if (typeof doc[k] !== 'string' || !endpointOk(doc[k] as string)) throw new Unavailable(`trust ${this.name}: discovery has no usable ${k}`);
    }
    const methods = doc.code_challenge_methods_supported;
    if (Array.isArray(methods) && !methods.includes('S256')) throw new Unavailable(`trust ${this.name}: the provider does not support PKCE S256`);
    const value = doc as unknown as ProviderMetadata;
    // jose fetches the keys itself (global fetch) unless told otherwise: the discovered jwks_uri
    // is an outbound destination like any other and goes through the same guarded fetch.
    const jwks = createRemoteJWKSet(new URL(value.jwks_uri), { [customFetch]: (url, options) => this.#fetch(url, { ...options, redirect: 'error' }), timeoutDuration: 5000 });
    this.#meta = { value, jwks, at: now };
    return this.#meta;
  }

  /** The redirect URI of a login obeys the rules of configured ones, then matches one exactly (any port on loopback). */
  #checkRedirect(uri: unknown): void {
    const problem = redirectUriProblem(uri);
    if (problem !== undefined) throw new InvalidInput(`redirect_uri: ${problem}`, 'redirect_uri');
    const u = new URL(uri as string);
    const ok = this.config.redirect_uris.some((allowed) => {
      if (allowed === uri) return true;
      const a = new URL(allowed);
      // RFC 8252 §7.3: a loopback redirect may use any port; everything else is compared as written.
      if (!(isLoopback(a) && a.protocol === 'http:')) return false;
      // Both are canonical (href as written), so dropping the port from the authority leaves the exact string.
      const portless = (x: URL, raw: string) => raw.replace(x.host, x.hostname);
      return u.protocol === 'http:' && u.port !== '0' && portless(u, uri as string) === portless(a, allowed);
    });
    if (!ok) throw new InvalidInput('redirect_uri is not one of the configured redirect URIs', 'redirect_uri');
  }

  /** A kept login that has not expired: its state (an expired one is dropped). */
  async #live<T>(kind: 'code' | 'device', handle: unknown, consume: boolean): Promise<T> {
    if (typeof handle !== 'string' || handle.length === 0 || handle.length > 256) throw new AuthenticationFailed('invalid_state', 'unknown or already used login state');
    const p = consume ? await this.#pending.take<T>(this.name, kind, handle) : await this.#pending.get<T>(this.name, kind, handle);
    if (!p) throw new AuthenticationFailed('invalid_state', 'unknown or already used login state');
    if (p.expiresAt <= this.#clock.now()) {
      if (!consume) await this.#pending.take(this.name, kind, handle);
      throw new AuthenticationFailed('login_expired', 'the login took too long; start again');
    }
    return p.state;
  }

  /** Builds the authorization URL (code + PKCE S256, state, nonce; prompt/max_age for step-up). */
  async startLogin(opts: StartLoginOptions): Promise<StartedLogin> {
    this.#checkRedirect(opts.redirectUri);
    const meta = (await this.#metadata()).value;
    const state = random();
    const nonce = random();
    const verifier = random();
    const challenge = b64url(createHash('sha256').update(verifier).digest());
    const stepUp = opts.stepUp ?? {};
    const u = new URL(meta.authorization_endpoint);
    const q = u.searchParams;
    q.set('response_type', 'code');
    q.set('client_id', this.config.client_id);
    q.set('redirect_uri', opts.redirectUri);
    q.set('scope', this.config.scopes.join(' '));
    q.set('state', state);
    q.set('nonce', nonce);
    q.set('code_challenge', challenge);
    q.set('code_challenge_method', 'S256');
    const stepping = stepUp.mfa === true || stepUp.max_age !== undefined;
    const prompt = stepping ? 'login' : opts.prompt;
    if (prompt) q.set('prompt', prompt);
    const maxAge = stepUp.max_age ?? this.config.max_age;
    if (maxAge !== undefined) q.set('max_age', String(maxAge));
    if (stepUp.mfa && this.config.step_up_acr) q.set('acr_values', this.config.step_up_acr);
    if (opts.loginHint) q.set('login_hint', opts.loginHint);
    if (meta.claims_parameter_supported === true) q.set('claims', AUTHN_CLAIMS);
    const now = this.#clock.now();
    const expiresAt = now + this.config.login_ttl_ms;
    const pending: PendingCode = { verifier, nonce, redirectUri: opts.redirectUri, stepUp: { ...stepUp, ...(maxAge !== undefined && { max_age: maxAge }) } };
    await this.#pending.put(this.name, 'code', state, pending, expiresAt, now);
    return { url: u.toString(), state, expires_at: new Date(expiresAt).toISOString() };
  }

  /** Exchanges the code from the redirect (single use of `state`) and verifies the ID token. */
  async completeLogin(params: { state: string; code?: string; iss?: string; error?: string; error_description?: string }): Promise<HumanLogin> {
    // Taken (deleted) before anything else: a state completes one login, on whichever replica.
    const p = await this.#live<PendingCode>('code', params.state, true);
    if (params.error) throw new AuthenticationFailed('provider_error', `provider answered ${params.error.slice(0, 64)}`);
    // RFC 9207: when the provider names itself, it must be our issuer (mix-up defence).
    if (params.iss !== undefined && params.iss !== this.config.issuer) throw new AuthenticationFailed('unknown_issuer', 'authorization response from another issuer');
    if (!params.code) throw new AuthenticationFailed('malformed', 'no authorization code');
    const tokens = await this.#token({ grant_type: 'authorization_code', code: params.code, redirect_uri: p.redirectUri, code_verifier: p.verifier });
    if (tokens.error) throw new AuthenticationFailed('token_exchange_failed', `token endpoint answered ${String(tokens.error).slice(0, 64)}`);
    return this.verifyIdToken(String(tokens.id_token ?? ''), { nonce: p.nonce, stepUp: p.stepUp });
  }

  /** Starts a device authorization (RFC 8628) if the provider supports it. */
  async startDeviceLogin(opts: { stepUp?: StepUpAsk } = {}): Promise<StartedDeviceLogin> {
    const meta = (await this.#metadata()).value;
    if (!meta.device_authorization_endpoint) throw new InvalidInput(`trust ${this.name}: the provider does not support the device flow`, 'trust');
    const stepUp: StepUpAsk = { ...opts.stepUp };
    if (stepUp.max_age === undefined && this.config.max_age !== undefined) stepUp.max_age = this.config.max_age;
    const body: Record<string, string> = { scope: this.config.scopes.join(' ') };
    if (stepUp.max_age !== undefined) body.max_age = String(stepUp.max_age);
    if (stepUp.mfa || opts.stepUp?.max_age !== undefined) body.prompt = 'login';
    if (stepUp.mfa && this.config.step_up_acr) body.acr_values = this.config.step_up_acr;
    if (meta.claims_parameter_supported === true) body.claims = AUTHN_CLAIMS;
    const r = await this.#post(meta.device_authorization_endpoint, body);
    if (typeof r.device_code !== 'string' || typeof r.user_code !== 'string' || typeof r.verification_uri !== 'string') {
      throw new Unavailable(`trust ${this.name}: device authorization failed${r.error ? ` (${String(r.error).slice(0, 64)})` : ''}`);
    }
    const handle = random();
    const interval = typeof r.interval === 'number' ? r.interval : 5;
    const now = this.#clock.now();
    const expiresIn = Number(r.expires_in ?? 600);
    const expiresAt = now + Math.min(Number.isFinite(expiresIn) && expiresIn > 0 ? expiresIn : 600, 1800) * 1000;
    const pending: PendingDevice = { deviceCode: r.device_code, interval, stepUp };
    await this.#pending.put(this.name, 'device', handle, pending, expiresAt, now);
    return {
      handle,
      user_code: r.user_code,
      verification_uri: r.verification_uri,
      ...(typeof r.verification_uri_complete === 'string' && { verification_uri_complete: r.verification_uri_complete }),
      expires_at: new Date(expiresAt).toISOString(),
      interval,
    };
  }

  /** One poll of the token endpoint; the caller waits `interval` seconds between polls. */
  async pollDeviceLogin(handle: string): Promise<DevicePoll> {
    // Read, not consumed: polls go on (from any replica) until the provider answers for good.
    const p = await this.#live<PendingDevice>('device', handle, false);
    const tokens = await this.#token({ grant_type: DEVICE_GRANT, device_code: p.deviceCode });
    if (tokens.error === 'authorization_pending') return { status: 'pending', interval: p.interval };
    if (tokens.error === 'slow_down') {
      const slower: PendingDevice = { ...p, interval: p.interval + 5 };
      if (!(await this.#pending.update(this.name, 'device', handle, slower))) throw new AuthenticationFailed('invalid_state', 'unknown or already used login state');
      return { status: 'pending', interval: slower.interval };
    }
    // The provider answered for good: the login is consumed here, and only the replica that
    // takes it may go on with the tokens (one login per device code, whoever polled).
    if (!(await this.#pending.take(this.name, 'device', handle))) throw new AuthenticationFailed('invalid_state', 'unknown or already used login state');
    if (tokens.error === 'access_denied') throw new AuthenticationFailed('provider_error', 'the user denied the device login');
    if (tokens.error === 'expired_token') throw new AuthenticationFailed('login_expired', 'the device code expired');
    if (tokens.error) throw new AuthenticationFailed('token_exchange_failed', `token endpoint answered ${String(tokens.error).slice(0, 64)}`);
    return { status: 'complete', login: await this.verifyIdToken(String(tokens.id_token ?? ''), { stepUp: p.stepUp }) };
  }

  async #token(body: Record<string, string>): Promise<Record<string, unknown>> {
    const meta = (await this.#metadata()).value;
    return this.#post(meta.token_endpoint, body);
  }

  /** Form POST with client authentication (client_secret_basic, or client_id only for public clients). */
  async #post(url: string, body: Record<string, string>): Promise<Record<string, unknown>> {
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
    const form = new URLSearchParams(body);
    if (this.config.client_secret !== undefined) {
      const enc = (s: string) => encodeURIComponent(s).replace(/%20/g, '+');
      headers.authorization = `Basic ${Buffer.from(`${enc(this.config.client_id)}:${enc(this.config.client_secret)}`).toString('base64')}`;
    } else {
      form.set('client_id', this.config.client_id);
    }
    let res: Response;
    try {
      res = await this.#fetch(url, { method: 'POST', headers, body: form.toString(), signal: AbortSignal.timeout(10_000), redirect: 'error' });
    } catch (err) {
      throw new Unavailable(`trust ${this.name}: the OpenID provider is unreachable (${(err as Error).name})`);
    }
    const json = (await res.json().catch(() => ({}))) as Record<string, unknown>;
    if (!res.ok && typeof json.error !== 'string') json.error = `http_${res.status}`;
    return json;
  }

  /** Verifies an ID token from this provider and maps it to a human login. */
  async verifyIdToken(idToken: string, expect: { nonce?: string; stepUp?: StepUpAsk } = {}): Promise<HumanLogin> {
    if (idToken === '') throw new AuthenticationFailed('missing_claim', 'the token response has no id_token');
    const { jwks } = await this.#metadata();
    const now = nowSeconds(this.#clock);
    // The same checks as every other trust (identity/jwt.ts validateJwt), iat-not-in-future included.
    const { header, claims } = await validateJwt(idToken, {
      algorithms: this.config.algorithms,
      issuer: this.config.issuer,
      audiences: [this.config.client_id],
      leewaySeconds: this.config.leeway_seconds,
      nowSeconds: now,
      typ: federationTyp,
      requiredClaims: ['sub', 'iat'],
      ...this.#checks,
    }, async (h, t) => {
      try {
        return await jwks(h, t);
      } catch (err) {
        if (err instanceof AuthenticationFailed || err instanceof joseErrors.JWKSNoMatchingKey || err instanceof joseErrors.JWKSMultipleMatchingKeys) throw err;
        throw new AuthenticationFailed('jwks_unavailable', `the provider's key set could not be read (${(err as Error).name})`);
      }
    });
    // Multiple audiences need azp == our client (OIDC Core §3.1.3.7).
    if (Array.isArray(claims.aud) && claims.aud.length > 1 && claims.azp !== this.config.client_id) throw new AuthenticationFailed('wrong_audience', 'azp is not this client');
    if (expect.nonce !== undefined && claims.nonce !== expect.nonce) throw new AuthenticationFailed('nonce_mismatch', 'nonce does not match the login');
    // Never derived from iat: without auth_time the auth age is unknown (too old for any @maxAuthAge).
    const authAt = authTime(claims, now, this.config.leeway_seconds);
    const known = authAt !== AUTH_TIME_UNKNOWN;
    const stepUp = expect.stepUp ?? {};
    if (stepUp.max_age !== undefined) {
      if (!known) throw new AuthenticationFailed('missing_claim', 'auth_time is required when max_age was requested');
      if (now - authAt > stepUp.max_age + this.config.leeway_seconds) throw new AuthenticationFailed('step_up_not_satisfied', 'the provider did not re-authenticate recently enough');
    }
    const amr = Array.isArray(claims.amr) ? claims.amr.filter((x): x is string => typeof x === 'string') : [];
    const acr = typeof claims.acr === 'string' ? claims.acr : undefined;
    const mfa = amr.some((m) => this.config.mfa_amr.includes(m)) || (acr !== undefined && this.config.mfa_acr.includes(acr));
    if (stepUp.mfa && !mfa) throw new AuthenticationFailed('step_up_not_satisfied', 'multi-factor authentication was required but not performed');
    const { identityId, email } = this.#identity(claims);
    const groups = this.#groups(claims);
    const facts: AuthnFacts = { method: 'oidc', trust: this.name, mfa, assurance: mfa ? 'high' : 'medium', auth_time: authAt };
    const defaults: VerifiedProof['defaults'] = {
      ...(this.config.boundary !== undefined && { boundary: this.config.boundary }),
      ...(this.config.environment !== undefined && { environment: this.config.environment }),
      owner: identityId,
    };
    return {
      proof: {
        identityId,
        kind: 'user',
        facts,
        attributes: { ...(email !== undefined && { email }), ...(acr !== undefined && { acr }) },
        defaults,
        evidence: {
          trust: this.name,
          issuer: this.config.issuer,
          alg: header.alg,
          ...(header.kid !== undefined && { kid: header.kid }),
          subject: String(claims.sub).slice(0, 256),
          amr,
          ...(acr !== undefined && { acr }),
          mfa,
          groups: groups.length,
          ...(!known && { auth_time: 'unknown' }),
          token_sha256: tokenFingerprint(idToken),
        },
      },
      groups,
      parents: groups.map((g) => ({ type: 'Team', id: g })),
      ...(email !== undefined && { email }),
    };
  }

  #identity(claims: JWTPayload): { identityId: string; email?: string } {
    const raw = claims.email;
    const problem = typeof raw === 'string' ? emailProblem(raw) : 'no email claim';
    if (this.config.identity_claim === 'sub') {
      const sub = String(claims.sub);
      if (!/^[\x21-\x7e]{1,255}$/.test(sub)) throw new AuthenticationFailed('bad_identity_claim', 'sub is not usable as an identity');
      // The email is only an attribute here: kept when canonical, dropped otherwise.
      return { identityId: `user:${sub}`, ...(problem === undefined && { email: raw as string }) };
    }
    // A differently written address is never folded into an existing account: refused instead.
    if (problem !== undefined) throw new AuthenticationFailed(typeof raw === 'string' ? 'non_canonical_identity' : 'bad_identity_claim', `email: ${problem}`);
    const email = raw as string;
    if (this.config.require_verified_email && claims.email_verified !== true) throw new AuthenticationFailed('claim_mismatch', 'email is not verified by the provider');
    const domain = email.slice(email.lastIndexOf('@') + 1);
    if (this.config.allowed_domains.length > 0 && !this.config.allowed_domains.includes(domain)) throw new AuthenticationFailed('claim_mismatch', 'email domain is not allowed');
    return { identityId: `user:${email}`, email };
  }

  #groups(claims: JWTPayload): string[] {
    if (!this.config.groups_claim) return [];
    const raw = claims[this.config.groups_claim];
    const list = typeof raw === 'string' ? [raw] : Array.isArray(raw) ? raw : [];
    const out = new Set<string>();
    for (const g of list) {
      // eslint-disable-next-line no-control-regex -- control characters are exactly what a group name may not hold
      if (typeof g !== 'string' || g.length === 0 || g.length > 128 || /[\x00-\x1f"\\]/.test(g)) continue;
      out.add(g);
      if (out.size >= MAX_GROUPS) break;
    }
    return [...out].sort();
  }
}

/**
 * Why an e-mail address cannot name an identity, or undefined. It must already be in the one form
 * every spelling of it folds to — NFKC-normalized and case-folded (lower case that survives an
 * upper/lower round trip per character: no `ß`, final sigma, dotless i) — so `\u212A` (KELVIN SIGN), fullwidth
 * letters, ligatures or capitals never reach an account spelled the plain way.
 */
export function emailProblem(email: string): string | undefined {
  if (email.length === 0 || email.length > 320) return 'empty or longer than 320 characters';
  if (email !== email.normalize('NFKC')) return 'changes under Unicode NFKC normalization';
  // Per code point, so no context rule (final sigma) hides a fold.
  if (email !== email.toLowerCase() || [...email].some((ch) => ch.toUpperCase().toLowerCase() !== ch)) return 'changes under case folding';
  if (/[\p{C}\p{Z}\s]/u.test(email)) return 'contains space, control or invisible characters';
  if (!/^[^@]{1,64}@[a-z0-9.-]{1,253}$/.test(email)) return 'not an address of the form local@domain (domain in ASCII)';
  return undefined;
}

function endpointOk(s: string): boolean {
  try {
    const u = new URL(s);
    return u.protocol === 'https:' || (u.protocol === 'http:' && isLoopback(u));
  } catch {
    return false;
  }
}
