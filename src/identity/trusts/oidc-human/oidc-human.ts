// Human sign-in through the organisation's OpenID provider (`oidc-human`): code + PKCE and the device
// flow on openid-client over the outbound-guarded fetch, then every trust's ID token checks (docs/identity.md).
import * as oidc from 'openid-client';
import { outboundFetch } from '../../../common/outbound.ts';
import type { OutboundFetch } from '../../../common/outbound.ts';
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

/** The provider's discovered metadata (openid-client's view of it). */
export type ProviderMetadata = oidc.ServerMetadata;

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

/** openid-client's error codes for an answer that came but is wrong (not an unreachable provider). */
const ANSWER_ERRORS = new Set(['OAUTH_JWT_CLAIM_COMPARISON_FAILED', 'OAUTH_JWT_TIMESTAMP_CHECK_FAILED', 'OAUTH_INVALID_RESPONSE', 'OAUTH_PARSE_ERROR', 'OAUTH_RESPONSE_IS_NOT_JSON', 'OAUTH_RESPONSE_IS_NOT_CONFORM', 'OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED', 'OAUTH_UNSUPPORTED_OPERATION']);

/**
 * One `oidc-human` trust. The broker keeps the per-login secrets (nonce, PKCE verifier, device
 * code) in the store, sealed (identity/login-state.ts), so any replica completes a login, once; the
 * caller gets only the URL / user code and an opaque handle. openid-client checks the token
 * response (iss, aud, azp, exp, nonce, auth_time against max_age); verifyIdToken then applies what
 * every trust applies (identity/jwt.ts: signature against the discovered JWKS, algorithms, typ,
 * lifetime, replay) and the human rules (step-up, MFA, e-mail). Users become `user:<email|sub>`,
 * groups from a configured claim their Cedar parents `Team::"<group>"`.
 */
export class HumanOidcTrust {
  readonly name: string;
  readonly kind = 'oidc-human' as const;
  readonly config: HumanOidcTrustConfig;
  readonly #clock: Clock;
  readonly #fetch: typeof fetch | OutboundFetch;
  readonly #ttl: number;
  readonly #pending: LoginStates;
  readonly #checks: Pick<JwtPolicy, 'maxLifetimeSeconds' | 'replay'>;
  /** http is accepted only for a loopback issuer (config.ts); openid-client is told so. */
  readonly #insecure: boolean;
  #meta: { value: ProviderMetadata; jwks: JWTVerifyGetKey; at: number } | undefined;

  constructor(config: HumanOidcTrustConfig, options: HumanOidcTrustOptions = {}) {
    this.name = config.name;
    this.config = config;
    this.#clock = options.clock ?? systemClock;
    this.#fetch = options.fetch ?? outboundFetch();
    this.#ttl = options.metadataTtlMs ?? 3_600_000;
    this.#checks = trustTokenChecks(config.name, config, options.replay);
    this.#pending = options.loginStates ?? memoryLoginStates();
    this.#insecure = new URL(config.issuer).protocol === 'http:';
  }

  /** Every request openid-client makes goes through the trust's guarded fetch; redirects are refused. */
  readonly #guardedFetch: oidc.CustomFetch = (url, options) => this.#fetch(url, { ...options, redirect: 'error' } as RequestInit);

  /** Provider metadata from `.well-known/openid-configuration` (cached). */
  async discover(): Promise<ProviderMetadata> {
    return (await this.#metadata()).value;
  }

  async #metadata(): Promise<{ value: ProviderMetadata; jwks: JWTVerifyGetKey }> {
    const now = this.#clock.now();
    if (this.#meta && now - this.#meta.at < this.#ttl) return this.#meta;
    let value: ProviderMetadata;
    try {
      const found = await oidc.discovery(new URL(this.config.issuer), this.config.client_id, undefined, undefined, {
        [oidc.customFetch]: this.#guardedFetch,
        timeout: 5,
        ...(this.#insecure && { execute: [oidc.allowInsecureRequests] }),
      });
      value = found.serverMetadata();
    } catch (err) {
      throw new Unavailable(`trust ${this.name}: OpenID provider discovery failed (${errorText(err)})`);
    }
    // The discovered issuer must be exactly the configured one, as written (OIDC Discovery §4.3):
    // ID tokens are compared with it.
    if (value.issuer !== this.config.issuer) throw new Unavailable(`trust ${this.name}: discovery returned a different issuer`);
    for (const k of ['authorization_endpoint', 'token_endpoint', 'jwks_uri'] as const) {
      const v = value[k];
      if (typeof v !== 'string' || !endpointOk(v)) throw new Unavailable(`trust ${this.name}: discovery has no usable ${k}`);
    }
    const methods = value.code_challenge_methods_supported;
    if (Array.isArray(methods) && !methods.includes('S256')) throw new Unavailable(`trust ${this.name}: the provider does not support PKCE S256`);
    // jose fetches the keys itself (global fetch) unless told otherwise: the discovered jwks_uri
    // is an outbound destination like any other and goes through the same guarded fetch.
    const jwks = createRemoteJWKSet(new URL(value.jwks_uri!), { [customFetch]: (url, options) => this.#fetch(url, { ...options, redirect: 'error' }), timeoutDuration: 5000 });
    this.#meta = { value, jwks, at: now };
    return this.#meta;
  }

  /**
   * openid-client's view of this trust's client for one call: the discovered metadata, client
   * authentication (client_secret_basic, or none for a public client: PKCE only), the guarded
   * fetch, and the broker's clock and leeway for its claim checks.
   */
  #client(meta: ProviderMetadata): oidc.Configuration {
    const auth = this.config.client_secret !== undefined ? oidc.ClientSecretBasic(this.config.client_secret) : oidc.None();
    const skew = nowSeconds(this.#clock) - Math.floor(Date.now() / 1000);
    // A provider that does not list its ID token algorithms (the field is required by OIDC
    // Discovery) is held to the trust's own list, which verifyIdToken enforces in any case.
    const server = { ...meta, id_token_signing_alg_values_supported: meta.id_token_signing_alg_values_supported ?? this.config.algorithms };
    const c = new oidc.Configuration(server, this.config.client_id, { [oidc.clockSkew]: skew, [oidc.clockTolerance]: this.config.leeway_seconds }, auth);
    c[oidc.customFetch] = this.#guardedFetch;
    c.timeout = 10;
    if (this.#insecure) oidc.allowInsecureRequests(c);
    return c;
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
    const state = oidc.randomState();
    const nonce = oidc.randomNonce();
    const verifier = oidc.randomPKCECodeVerifier();
    const stepUp = opts.stepUp ?? {};
    const q: Record<string, string> = {
      redirect_uri: opts.redirectUri,
      scope: this.config.scopes.join(' '),
      state,
      nonce,
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
    };
    const stepping = stepUp.mfa === true || stepUp.max_age !== undefined;
    const prompt = stepping ? 'login' : opts.prompt;
    if (prompt) q.prompt = prompt;
    const maxAge = stepUp.max_age ?? this.config.max_age;
    if (maxAge !== undefined) q.max_age = String(maxAge);
    if (stepUp.mfa && this.config.step_up_acr) q.acr_values = this.config.step_up_acr;
    if (opts.loginHint) q.login_hint = opts.loginHint;
    if (meta.claims_parameter_supported === true) q.claims = AUTHN_CLAIMS;
    const url = oidc.buildAuthorizationUrl(this.#client(meta), q);
    const now = this.#clock.now();
    const expiresAt = now + this.config.login_ttl_ms;
    const pending: PendingCode = { verifier, nonce, redirectUri: opts.redirectUri, stepUp: { ...stepUp, ...(maxAge !== undefined && { max_age: maxAge }) } };
    await this.#pending.put(this.name, 'code', state, pending, expiresAt, now);
    return { url: url.toString(), state, expires_at: new Date(expiresAt).toISOString() };
  }

  /** Exchanges the code from the redirect (single use of `state`) and verifies the ID token. */
  async completeLogin(params: { state: string; code?: string; iss?: string; error?: string; error_description?: string }): Promise<HumanLogin> {
    // Taken (deleted) before anything else: a state completes one login, on whichever replica.
    const p = await this.#live<PendingCode>('code', params.state, true);
    if (params.error) throw new AuthenticationFailed('provider_error', `provider answered ${params.error.slice(0, 64)}`);
    // RFC 9207: when the provider names itself, it must be our issuer (mix-up defence). A redirect
    // without `iss` is taken as from this trust's provider: the state names one trust already.
    if (params.iss !== undefined && params.iss !== this.config.issuer) throw new AuthenticationFailed('unknown_issuer', 'authorization response from another issuer');
    if (!params.code) throw new AuthenticationFailed('malformed', 'no authorization code');
    const meta = (await this.#metadata()).value;
    const back = new URL(p.redirectUri);
    back.searchParams.set('code', params.code);
    back.searchParams.set('state', params.state);
    back.searchParams.set('iss', this.config.issuer);
    let tokens: oidc.TokenEndpointResponse;
    try {
      // The redirect URI, the PKCE verifier and the nonce are the ones this login started with.
      tokens = await oidc.authorizationCodeGrant(this.#client(meta), back, {
        pkceCodeVerifier: p.verifier,
        expectedState: params.state,
        expectedNonce: p.nonce,
        ...(p.stepUp.max_age !== undefined && { maxAge: p.stepUp.max_age }),
      });
    } catch (err) {
      throw this.#failure(err);
    }
    return this.verifyIdToken(tokens.id_token ?? '', { stepUp: p.stepUp });
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
    let r: oidc.DeviceAuthorizationResponse;
    try {
      r = await oidc.initiateDeviceAuthorization(this.#client(meta), body);
    } catch (err) {
      throw new Unavailable(`trust ${this.name}: device authorization failed (${errorText(err)})`);
    }
    const handle = oidc.randomState();
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
    const meta = (await this.#metadata()).value;
    // One request per poll (the broker answers `pending` in between), not openid-client's polling loop.
    let tokens: oidc.TokenEndpointResponse | undefined;
    let error: string | undefined;
    let failure: AuthenticationFailed | undefined;
    try {
      tokens = await oidc.genericGrantRequest(this.#client(meta), DEVICE_GRANT, { device_code: p.deviceCode });
    } catch (err) {
      if (err instanceof oidc.ResponseBodyError) error = err.error;
      else {
        const f = this.#failure(err);
        // An unreachable provider leaves the login to poll again; a wrong answer ends it below.
        if (!(f instanceof AuthenticationFailed)) throw f;
        failure = f;
      }
    }
    if (error === 'authorization_pending') return { status: 'pending', interval: p.interval };
    if (error === 'slow_down') {
      const slower: PendingDevice = { ...p, interval: p.interval + 5 };
      if (!(await this.#pending.update(this.name, 'device', handle, slower))) throw new AuthenticationFailed('invalid_state', 'unknown or already used login state');
      return { status: 'pending', interval: slower.interval };
    }
    // The provider answered for good: the login is consumed here, and only the replica that
    // takes it may go on with the tokens (one login per device code, whoever polled).
    if (!(await this.#pending.take(this.name, 'device', handle))) throw new AuthenticationFailed('invalid_state', 'unknown or already used login state');
    if (error === 'access_denied') throw new AuthenticationFailed('provider_error', 'the user denied the device login');
    if (error === 'expired_token') throw new AuthenticationFailed('login_expired', 'the device code expired');
    if (error !== undefined) throw new AuthenticationFailed('token_exchange_failed', `token endpoint answered ${error.slice(0, 64)}`);
    if (failure) throw failure;
    return { status: 'complete', login: await this.verifyIdToken(tokens?.id_token ?? '', { stepUp: p.stepUp }) };
  }

  /**
   * An openid-client failure as Portcullis' error: an OAuth error answer → token_exchange_failed;
   * an answer that fails its checks → the reason the same check has elsewhere (nonce_mismatch,
   * wrong_audience, …); anything else (network, refused destination, timeout) → Unavailable.
   */
  #failure(err: unknown): AuthenticationFailed | Unavailable {
    if (err instanceof oidc.ResponseBodyError) return new AuthenticationFailed('token_exchange_failed', `token endpoint answered ${String(err.error).slice(0, 64)}`);
    if (err instanceof oidc.AuthorizationResponseError) return new AuthenticationFailed('provider_error', `provider answered ${String(err.error).slice(0, 64)}`);
    const code = err instanceof oidc.ClientError ? err.code : undefined;
    if (code === undefined || !ANSWER_ERRORS.has(code)) return new Unavailable(`trust ${this.name}: the OpenID provider is unreachable (${errorText(err)})`);
    const claim = claimOf(err);
    const detail = `the token response failed its checks: ${(err as Error).message.slice(0, 128)}${claim ? ` (${claim})` : ''}`;
    if (code === 'OAUTH_JWT_CLAIM_COMPARISON_FAILED') {
      const reason = claim === 'nonce' ? 'nonce_mismatch' : claim === 'iss' ? 'unknown_issuer' : claim === 'aud' || claim === 'azp' ? 'wrong_audience' : 'claim_mismatch';
      return new AuthenticationFailed(reason, detail);
    }
    if (code === 'OAUTH_JWT_TIMESTAMP_CHECK_FAILED') {
      const reason = claim === 'auth_time' ? 'step_up_not_satisfied' : claim === 'exp' ? 'expired' : claim === 'nbf' ? 'not_yet_valid' : 'malformed';
      return new AuthenticationFailed(reason, detail);
    }
    if (/claim missing/.test((err as Error).message) || /claim missing/.test(String((err as { cause?: Error }).cause?.message))) return new AuthenticationFailed('missing_claim', detail);
    return new AuthenticationFailed('token_exchange_failed', detail);
  }

  /**
   * Verifies an ID token from this provider and maps it to a human login (the nonce of a code
   * login was checked by openid-client with the token response).
   */
  async verifyIdToken(idToken: string, expect: { stepUp?: StepUpAsk } = {}): Promise<HumanLogin> {
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

/** What went wrong, for a message: never a body or a secret (openid-client's message, the cause's name). */
function errorText(err: unknown): string {
  if (!(err instanceof Error)) return 'error';
  const cause = (err as { cause?: unknown }).cause;
  const inner = cause instanceof Error && !(cause instanceof oidc.ClientError) ? `: ${cause.name === 'Error' ? cause.message.slice(0, 128) : cause.name}` : '';
  return `${err.message.slice(0, 128)}${inner}`;
}

/** The claim an openid-client check names (`cause.claim`, possibly one level down). */
function claimOf(err: unknown): string | undefined {
  for (let e = err as { cause?: unknown; claim?: unknown } | undefined, i = 0; e && i < 3; e = e.cause as typeof e, i++) {
    if (typeof e.claim === 'string') return e.claim;
  }
  return undefined;
}
