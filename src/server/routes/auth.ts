// Proof → session token, RFC 8693 token exchange for OAuth clients, session revocation, JWKS.
import type { FastifyInstance } from 'fastify';
import type { Broker } from '../../broker/index.ts';
import type { Proof } from '../../identity/types.ts';
import { AuthenticationFailed, InvalidInput, PortcullisError } from '../../common/errors.ts';
import { callerOf, requireSession } from '../auth.ts';
import { TokenExchangeRefused } from '../../credentials/index.ts';
import { z } from 'zod';
import { Identity, Jwks, LoginResult, SESSION_ERRORS, errors, optionalBody, time } from '../schemas.ts';

const OAuthToken = z.object({ access_token: z.string(), issued_token_type: z.string(), token_type: z.literal('Bearer'), expires_in: z.int(), scope: z.string().optional() });
/** The RFC 8693 form, documented (the handler checks it: its errors are RFC 6749's). */
const TokenExchangeForm = z.object({
  grant_type: z.literal('urn:ietf:params:oauth:grant-type:token-exchange'),
  subject_token: z.string(),
  subject_token_type: z.enum(['urn:ietf:params:oauth:token-type:jwt', 'urn:ietf:params:oauth:token-type:id_token', 'urn:ietf:params:oauth:token-type:access_token']),
  actor_token: z.string().optional().describe('delegation: the actor\'s own access token for the same API; with `assignment`: the agent\'s session token'),
  actor_token_type: z.enum(['urn:ietf:params:oauth:token-type:access_token', 'urn:ietf:params:oauth:token-type:jwt']).optional(),
  assignment: z.string().optional().describe('an agent\'s assignment (asg_…): the token is scoped to it (docs/agents.md)'),
  requested_token_type: z.literal('urn:ietf:params:oauth:token-type:access_token').optional(),
  audience: z.string().optional(),
  resource: z.string().optional(),
  scope: z.string().optional(),
});
const OAuthError = z.looseObject({ error: z.string(), error_description: z.string() }).describe('RFC 6749 §5.2 error');
const StartedLogin = z.object({ url: z.string(), state: z.string(), expires_at: time, trust: z.string() });
const StartedDevice = z.object({ handle: z.string(), user_code: z.string(), verification_uri: z.string(), verification_uri_complete: z.string().optional(), expires_at: time, interval: z.int(), trust: z.string() });
const DevicePoll = z.union([z.object({ status: z.literal('pending'), interval: z.int() }), LoginResult.extend({ status: z.literal('complete') })]);
const LOGIN_ERRORS = [400, 401, 429] as const;

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
const ID_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:id_token';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

export function authRoutes(app: FastifyInstance, broker: Broker): void {
  app.post(
    '/v1/auth/token',
    {
      schema: {
        operationId: 'login',
        summary: 'Exchange a proof (workload JWT, JWT-SVID, API key, or the TLS client certificate) for a session token',
        tags: ['auth'],
        body: optionalBody({ token: z.string().max(16384).optional(), api_key: z.string().max(256).optional(), bootstrap: z.string().max(256).optional() }),
        response: { 200: LoginResult, ...errors(...LOGIN_ERRORS, 403, 415) },
      },
    },
    async (req) => {
      const body = (req.body ?? {}) as { token?: string; api_key?: string; bootstrap?: string };
      if (body.bootstrap !== undefined) {
        if (body.token !== undefined || body.api_key !== undefined) throw new InvalidInput('send exactly one of "token", "api_key" or "bootstrap"', 'body');
        return broker.loginBootstrap(body.bootstrap, req.ip);
      }
      let proof: Proof;
      if (body.token !== undefined && body.api_key === undefined) proof = { type: 'jwt', token: body.token };
      else if (body.api_key !== undefined && body.token === undefined) proof = { type: 'api_key', key: body.api_key };
      else if (body.token === undefined && body.api_key === undefined) {
        const chain = clientCertificateChain(req.raw.socket);
        if (!chain) throw new InvalidInput('send exactly one of "token" or "api_key", or present a client certificate', 'body');
        proof = { type: 'x509', chain };
      } else throw new InvalidInput('send exactly one of "token" or "api_key"', 'body');
      return broker.login(proof, req.ip);
    },
  );

  // RFC 8693 for standard OAuth clients. Errors follow RFC 6749 §5.2, not problem+json.
  // Two uses: a workload JWT for a session token (no actor_token), and delegation: the subject's
  // Portcullis access token plus the actor's own access token for the same API → an access token
  // on the subject's behalf with an `act` chain and attenuated scope.
  app.post(
    '/oauth2/token',
    {
      schema: {
        operationId: 'exchangeToken',
        summary: 'RFC 8693 token exchange: a workload JWT for a session token; delegation (subject + actor access tokens → a token on the subject\'s behalf with act); or, with `assignment`, an agent\'s assignment-scoped token for one `resource` (docs/agents.md)',
        tags: ['auth'],
        // The form is checked by the handler: its errors are RFC 6749's, not problem documents.
        documentedBody: { contentType: 'application/x-www-form-urlencoded', schema: TokenExchangeForm },
        response: { 200: OAuthToken, 400: { description: 'RFC 6749 error', content: { 'application/json': { schema: OAuthError } } }, ...errors(413, 429) },
      },
    },
    async (req, reply) => {
      const form = req.body as Record<string, string> | undefined;
      const oauthError = (status: number, error: string, description: string, extra: Record<string, unknown> = {}) =>
        reply.code(status as 400).header('cache-control', 'no-store').send({ error, error_description: description, ...extra });
      // An exchanged access token as RFC 8693 §2.2.1 answers it, or the refusal as RFC 6749's error.
      const issuedToken = async (issue: () => Promise<{ credential: Record<string, unknown> }>) => {
        try {
          return reply.header('cache-control', 'no-store').send(oauthTokenOf((await issue()).credential));
        } catch (err) {
          if (err instanceof TokenExchangeRefused) return oauthError(400, err.oauthError, err.message, err.extra);
          throw err;
        }
      };
      if (!form || typeof form !== 'object') return oauthError(400, 'invalid_request', 'send application/x-www-form-urlencoded');
      if (form.grant_type !== TOKEN_EXCHANGE) return oauthError(400, 'unsupported_grant_type', `grant_type must be ${TOKEN_EXCHANGE}`);
      if (!form.subject_token) return oauthError(400, 'invalid_request', 'subject_token is required');
      if (![JWT_TYPE, ID_TOKEN_TYPE, ACCESS_TOKEN_TYPE].includes(form.subject_token_type ?? '')) {
        return oauthError(400, 'invalid_request', `subject_token_type must be ${JWT_TYPE} or ${ACCESS_TOKEN_TYPE}`);
      }
      // An agent's assignment (docs/agents.md): the delegating user's token (session or access
      // token; for a sub-assignment a token of its parent) and the agent's own session token.
      if (form.assignment !== undefined) {
        if (!form.actor_token) return oauthError(400, 'invalid_request', "actor_token is required: the agent's own session token");
        if (form.actor_token_type !== JWT_TYPE) return oauthError(400, 'invalid_request', `actor_token_type must be ${JWT_TYPE}: the agent's Portcullis session token`);
        if (form.subject_token_type !== JWT_TYPE && form.subject_token_type !== ACCESS_TOKEN_TYPE) return oauthError(400, 'invalid_request', `subject_token_type must be ${JWT_TYPE} or ${ACCESS_TOKEN_TYPE}`);
        if (form.requested_token_type !== undefined && form.requested_token_type !== ACCESS_TOKEN_TYPE) return oauthError(400, 'invalid_request', `requested_token_type must be ${ACCESS_TOKEN_TYPE}`);
        if (form.audience !== undefined) return oauthError(400, 'invalid_target', 'name the MCP server or API with resource (RFC 8707), not audience');
        return issuedToken(() => broker.exchangeForAssignment({
          assignment: form.assignment!,
          subjectToken: form.subject_token!,
          subjectTokenType: form.subject_token_type === JWT_TYPE ? 'jwt' : 'access_token',
          actorToken: form.actor_token!,
          ...(form.resource && { resource: form.resource }),
          ...(form.scope !== undefined && { scope: form.scope }),
        }, req.ip));
      }
      if (form.actor_token !== undefined || form.subject_token_type === ACCESS_TOKEN_TYPE) {
        if (form.subject_token_type !== ACCESS_TOKEN_TYPE) return oauthError(400, 'invalid_request', `delegation takes a Portcullis access token: subject_token_type must be ${ACCESS_TOKEN_TYPE}`);
        if (!form.actor_token) return oauthError(400, 'invalid_request', 'actor_token is required to exchange an access token (delegation)');
        if (form.actor_token_type !== ACCESS_TOKEN_TYPE) {
          return oauthError(400, 'invalid_request', `actor_token_type must be ${ACCESS_TOKEN_TYPE}: the actor's own access token for the same API (session tokens carry no scope)`);
        }
        if (form.requested_token_type !== undefined && form.requested_token_type !== ACCESS_TOKEN_TYPE) return oauthError(400, 'invalid_request', `requested_token_type must be ${ACCESS_TOKEN_TYPE}`);
        return issuedToken(() => broker.exchangeDelegated({
          subjectToken: form.subject_token!,
          actorToken: form.actor_token!,
          ...(form.audience && { audience: form.audience }),
          ...(form.resource && { resource: form.resource }),
          ...(form.scope !== undefined && { scope: form.scope }),
        }, req.ip));
      }
      try {
        const s = await broker.login({ type: 'jwt', token: form.subject_token }, req.ip);
        return reply.header('cache-control', 'no-store').send({
          access_token: s.session_token,
          issued_token_type: JWT_TYPE,
          token_type: 'Bearer',
          expires_in: Math.max(0, Math.floor((Date.parse(s.expires_at) - Date.now()) / 1000)),
        });
      } catch (err) {
        if (err instanceof AuthenticationFailed) return oauthError(400, 'invalid_grant', 'the subject token was not accepted');
        if (err instanceof PortcullisError && err.status < 500) return oauthError(400, 'invalid_request', err.message);
        throw err;
      }
    },
  );

  // RFC 7662 for resource servers: the caller holds a session (form or JSON body).
  app.post(
    '/oauth2/introspect',
    {
      preHandler: requireSession(broker),
      schema: {
        operationId: 'introspectToken',
        summary: 'RFC 7662 introspection of a Portcullis access token: active while its lease, its subject and actors, and (an agent\'s token) its assignment are live; with `resource`, only for that audience',
        tags: ['auth'],
        body: z.looseObject({ token: z.string().min(1).max(16384), resource: z.string().max(512).optional(), token_type_hint: z.string().max(64).optional() }),
        response: { 200: z.looseObject({ active: z.boolean() }), ...errors(...SESSION_ERRORS) },
      },
    },
    async (req, reply) => {
      const b = req.body as { token: string; resource?: string };
      return reply.header('cache-control', 'no-store').send(await broker.introspect(req.session!, b.token, b.resource));
    },
  );

  // Who the session is: what a page (the console) or a script shows as "signed in as".
  app.get(
    '/v1/auth/session',
    {
      preHandler: requireSession(broker),
      schema: {
        operationId: 'getCurrentSession',
        summary: 'The calling session: its identity, how it authenticated and when it expires',
        tags: ['auth'],
        response: {
          200: z.object({ identity: Identity, jti: z.string(), expires_at: time, authn: z.object({ method: z.string(), trust: z.string(), mfa: z.boolean(), auth_time: time }) }),
          ...errors(...SESSION_ERRORS),
        },
      },
    },
    async (req, reply) => {
      const s = req.session!;
      const authn = { method: s.authn.method, trust: s.authn.trust, mfa: s.authn.mfa, auth_time: new Date(s.authn.auth_time * 1000).toISOString() };
      return reply.header('cache-control', 'no-store').send({ identity: s.identity, jti: s.jti, expires_at: new Date(s.expiresAt).toISOString(), authn });
    },
  );

  app.post(
    '/v1/sessions/revoke',
    {
      preHandler: requireSession(broker),
      schema: {
        operationId: 'revokeSessions',
        summary: 'Revoke one session (by jti) or every live session of an identity',
        tags: ['auth'],
        body: optionalBody({ jti: z.string().max(128).optional(), identity: z.string().max(300).optional(), reason: z.string().max(1024).optional() }),
        response: { 200: z.object({ revoked: z.unknown() }), ...errors(...SESSION_ERRORS, 404) },
      },
    },
    async (req) => {
      // Revoking your own session needs no permission; anything else is session.revoke on the identity.
      return broker.admin.sessions.revoke(callerOf(req), req.body as { jti?: string; identity?: string; reason?: string });
    },
  );

  // ── Human sign-in through an oidc-human trust ──────────────────────────────────────────────
  const stepUpQuery = {
    mfa: z.enum(['true', 'false']).optional(),
    max_age: z.string().regex(/^[0-9]{1,7}$/, 'must be a number of seconds').optional(),
  };
  const trustName = z.string().min(1).max(63);
  const stepUpOf = (q: { mfa?: string | boolean; max_age?: string | number }) => {
    const mfa = q.mfa === 'true' || q.mfa === true;
    const maxAge = q.max_age === undefined ? undefined : Number(q.max_age);
    return mfa || maxAge !== undefined ? { ...(mfa && { mfa }), ...(maxAge !== undefined && { max_age: maxAge }) } : undefined;
  };

  app.get(
    '/v1/auth/login',
    {
      schema: {
        operationId: 'startHumanLogin',
        summary: 'Start a human sign-in (authorization code + PKCE): returns the provider URL to open; mfa/max_age for step-up',
        tags: ['auth'],
        querystring: z.strictObject({ redirect_uri: z.string().min(1).max(2048), trust: trustName.optional(), login_hint: z.string().max(256).optional(), ...stepUpQuery }),
        response: { 200: StartedLogin, ...errors(400, 404, 429) },
      },
    },
    async (req, reply) => {
      const q = req.query as { redirect_uri: string; trust?: string; login_hint?: string; mfa?: string; max_age?: string };
      const stepUp = stepUpOf(q);
      const started = await broker.startHumanLogin({ redirectUri: q.redirect_uri, ...(q.trust && { trust: q.trust }), ...(stepUp && { stepUp }), ...(q.login_hint && { loginHint: q.login_hint }) });
      return reply.header('cache-control', 'no-store').send(started);
    },
  );

  app.post(
    '/v1/auth/callback',
    {
      schema: {
        operationId: 'completeHumanLogin',
        summary: 'Finish a human sign-in with the state and code the provider redirected back with; returns a session token',
        tags: ['auth'],
        body: z.strictObject({
          state: z.string().min(1).max(256),
          code: z.string().min(1).max(4096).optional(),
          iss: z.string().max(2048).optional(),
          error: z.string().max(256).optional(),
          error_description: z.string().max(1024).optional(),
          trust: trustName.optional(),
        }),
        response: { 200: LoginResult, ...errors(...LOGIN_ERRORS, 403, 404, 415) },
      },
    },
    async (req, reply) => {
      const { error_description: _d, ...body } = req.body as { state: string; code?: string; iss?: string; error?: string; error_description?: string; trust?: string };
      return reply.header('cache-control', 'no-store').send(await broker.completeHumanLogin(body, req.ip));
    },
  );

  app.post(
    '/v1/auth/device',
    {
      schema: {
        operationId: 'startDeviceLogin',
        summary: 'Start a device-code sign-in (RFC 8628) for headless use: returns the user code, the page to visit and a handle to poll',
        tags: ['auth'],
        body: optionalBody({ trust: trustName.optional(), mfa: z.boolean().optional(), max_age: z.int().min(0).max(86400).optional() }),
        response: { 200: StartedDevice, ...errors(400, 404, 415, 429) },
      },
    },
    async (req, reply) => {
      const b = (req.body ?? {}) as { trust?: string; mfa?: boolean; max_age?: number };
      const stepUp = stepUpOf(b);
      return reply.header('cache-control', 'no-store').send(await broker.startDeviceLogin({ ...(b.trust && { trust: b.trust }), ...(stepUp && { stepUp }) }));
    },
  );

  app.post(
    '/v1/auth/device/poll',
    {
      schema: {
        operationId: 'pollDeviceLogin',
        summary: 'Poll a device-code sign-in: {status: pending, interval} until the user approves, then the session token',
        tags: ['auth'],
        body: z.strictObject({ handle: z.string().min(1).max(256), trust: trustName.optional() }),
        response: { 200: DevicePoll, ...errors(...LOGIN_ERRORS, 403, 404, 415) },
      },
    },
    async (req, reply) => reply.header('cache-control', 'no-store').send(await broker.pollDeviceLogin(req.body as { handle: string; trust?: string }, req.ip)),
  );

  app.get('/.well-known/jwks.json', { schema: { operationId: 'getJwks', summary: "The broker's public signing keys", tags: ['auth'], response: { 200: Jwks, ...errors() } } }, async (_req, reply) => {
    return reply.header('cache-control', 'public, max-age=60').send(broker.publicJwks());
  });
}

/** An issued access token as RFC 8693 §2.2.1 answers it. */
function oauthTokenOf(c: Record<string, unknown>) {
  return { access_token: c.access_token, issued_token_type: ACCESS_TOKEN_TYPE, token_type: 'Bearer' as const, expires_in: c.expires_in, scope: c.scope };
}

function clientCertificateChain(socket: unknown): Uint8Array[] | undefined {
  const s = socket as { getPeerCertificate?: (detailed: boolean) => { raw?: Buffer; issuerCertificate?: unknown } };
  if (typeof s.getPeerCertificate !== 'function') return undefined;
  const chain: Uint8Array[] = [];
  let cert = s.getPeerCertificate(true) as { raw?: Buffer; issuerCertificate?: unknown } | undefined;
  const seen = new Set<unknown>();
  while (cert && cert.raw && !seen.has(cert)) {
    seen.add(cert);
    chain.push(new Uint8Array(cert.raw));
    cert = cert.issuerCertificate as typeof cert;
  }
  return chain.length > 0 ? chain : undefined;
}
