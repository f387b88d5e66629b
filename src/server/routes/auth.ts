// Proof → session token, RFC 8693 token exchange for OAuth clients, session revocation, JWKS.
import type { FastifyInstance } from 'fastify';
import type { Broker } from '../../broker/index.ts';
import type { Proof } from '../../identity/types.ts';
import { AuthenticationFailed, InvalidInput, PortcullisError } from '../../common/errors.ts';
import { callerOf, requireSession } from '../auth.ts';
import { TokenExchangeRefused } from '../../credentials/index.ts';

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
const ID_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:id_token';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

export function authRoutes(app: FastifyInstance, broker: Broker): void {
  app.post(
    '/v1/auth/token',
    {
      schema: {
        summary: 'Exchange a proof (workload JWT, JWT-SVID, API key, or the TLS client certificate) for a session token',
        tags: ['auth'],
        body: {
          type: 'object',
          additionalProperties: false,
          properties: {
            token: { type: 'string', maxLength: 16384 },
            api_key: { type: 'string', maxLength: 256 },
            bootstrap: { type: 'string', maxLength: 256 },
          },
        },
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
    { schema: { summary: 'RFC 8693 token exchange: a workload JWT for a session token, or delegation (subject + actor access tokens → a token on the subject\'s behalf with act)', tags: ['auth'] } },
    async (req, reply) => {
      const form = req.body as Record<string, string> | undefined;
      const oauthError = (status: number, error: string, description: string, extra: Record<string, unknown> = {}) =>
        reply.code(status).header('cache-control', 'no-store').send({ error, error_description: description, ...extra });
      if (!form || typeof form !== 'object') return oauthError(400, 'invalid_request', 'send application/x-www-form-urlencoded');
      if (form.grant_type !== TOKEN_EXCHANGE) return oauthError(400, 'unsupported_grant_type', `grant_type must be ${TOKEN_EXCHANGE}`);
      if (!form.subject_token) return oauthError(400, 'invalid_request', 'subject_token is required');
      if (![JWT_TYPE, ID_TOKEN_TYPE, ACCESS_TOKEN_TYPE].includes(form.subject_token_type ?? '')) {
        return oauthError(400, 'invalid_request', `subject_token_type must be ${JWT_TYPE} or ${ACCESS_TOKEN_TYPE}`);
      }
      if (form.actor_token !== undefined || form.subject_token_type === ACCESS_TOKEN_TYPE) {
        if (form.subject_token_type !== ACCESS_TOKEN_TYPE) return oauthError(400, 'invalid_request', `delegation takes a Portcullis access token: subject_token_type must be ${ACCESS_TOKEN_TYPE}`);
        if (!form.actor_token) return oauthError(400, 'invalid_request', 'actor_token is required to exchange an access token (delegation)');
        if (form.actor_token_type !== ACCESS_TOKEN_TYPE) {
          return oauthError(400, 'invalid_request', `actor_token_type must be ${ACCESS_TOKEN_TYPE}: the actor's own access token for the same API (session tokens carry no scope)`);
        }
        if (form.requested_token_type !== undefined && form.requested_token_type !== ACCESS_TOKEN_TYPE) return oauthError(400, 'invalid_request', `requested_token_type must be ${ACCESS_TOKEN_TYPE}`);
        try {
          const issued = await broker.exchangeDelegated({
            subjectToken: form.subject_token,
            actorToken: form.actor_token,
            ...(form.audience && { audience: form.audience }),
            ...(form.resource && { resource: form.resource }),
            ...(form.scope !== undefined && { scope: form.scope }),
          }, req.ip);
          const c = issued.credential;
          return reply.header('cache-control', 'no-store').send({
            access_token: c.access_token,
            issued_token_type: ACCESS_TOKEN_TYPE,
            token_type: 'Bearer',
            expires_in: c.expires_in,
            scope: c.scope,
          });
        } catch (err) {
          if (err instanceof TokenExchangeRefused) return oauthError(400, err.oauthError, err.message, err.extra);
          throw err;
        }
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

  app.post(
    '/v1/sessions/revoke',
    {
      preHandler: requireSession(broker),
      schema: {
        summary: 'Revoke one session (by jti) or every live session of an identity',
        tags: ['auth'],
        body: {
          type: 'object',
          additionalProperties: false,
          properties: {
            jti: { type: 'string', maxLength: 128 },
            identity: { type: 'string', maxLength: 300 },
            reason: { type: 'string', maxLength: 1024 },
          },
        },
      },
    },
    async (req) => {
      // Revoking your own session needs no permission; anything else is session.revoke on the identity.
      return broker.admin.sessions.revoke(callerOf(req), req.body as { jti?: string; identity?: string; reason?: string });
    },
  );

  // ── Human sign-in through an oidc-human trust ──────────────────────────────────────────────
  const stepUpQuery = {
    mfa: { type: 'string', enum: ['true', 'false'] },
    max_age: { type: 'string', pattern: '^[0-9]{1,7}$' },
  } as const;
  const trustName = { type: 'string', minLength: 1, maxLength: 63 } as const;
  const stepUpOf = (q: { mfa?: string | boolean; max_age?: string | number }) => {
    const mfa = q.mfa === 'true' || q.mfa === true;
    const maxAge = q.max_age === undefined ? undefined : Number(q.max_age);
    return mfa || maxAge !== undefined ? { ...(mfa && { mfa }), ...(maxAge !== undefined && { max_age: maxAge }) } : undefined;
  };

  app.get(
    '/v1/auth/login',
    {
      schema: {
        summary: 'Start a human sign-in (authorization code + PKCE): returns the provider URL to open; mfa/max_age for step-up',
        tags: ['auth'],
        querystring: {
          type: 'object',
          additionalProperties: false,
          required: ['redirect_uri'],
          properties: { redirect_uri: { type: 'string', minLength: 1, maxLength: 2048 }, trust: trustName, login_hint: { type: 'string', maxLength: 256 }, ...stepUpQuery },
        },
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
        summary: 'Finish a human sign-in with the state and code the provider redirected back with; returns a session token',
        tags: ['auth'],
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['state'],
          properties: {
            state: { type: 'string', minLength: 1, maxLength: 256 },
            code: { type: 'string', minLength: 1, maxLength: 4096 },
            iss: { type: 'string', maxLength: 2048 },
            error: { type: 'string', maxLength: 256 },
            error_description: { type: 'string', maxLength: 1024 },
            trust: trustName,
          },
        },
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
        summary: 'Start a device-code sign-in (RFC 8628) for headless use: returns the user code, the page to visit and a handle to poll',
        tags: ['auth'],
        body: { type: 'object', additionalProperties: false, properties: { trust: trustName, mfa: { type: 'boolean' }, max_age: { type: 'integer', minimum: 0, maximum: 86400 } } },
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
        summary: 'Poll a device-code sign-in: {status: pending, interval} until the user approves, then the session token',
        tags: ['auth'],
        body: { type: 'object', additionalProperties: false, required: ['handle'], properties: { handle: { type: 'string', minLength: 1, maxLength: 256 }, trust: trustName } },
      },
    },
    async (req, reply) => reply.header('cache-control', 'no-store').send(await broker.pollDeviceLogin(req.body as { handle: string; trust?: string }, req.ip)),
  );

  app.get('/.well-known/jwks.json', { schema: { summary: "The broker's public signing keys", tags: ['auth'] } }, async (_req, reply) => {
    return reply.header('cache-control', 'public, max-age=60').send(broker.publicJwks());
  });
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
