// The HTTP adapter: Fastify with strict zod schemas (unknown fields are errors, nothing is
// coerced), one error mapping, OpenAPI generated from the route schemas.
import Fastify, { LogController } from 'fastify';
import type { FastifyInstance, FastifyServerOptions } from 'fastify';
import swagger from '@fastify/swagger';
import type { Broker } from '../broker/index.ts';
import { errorHandler, problem, sendProblem } from './problem.ts';
import { authRoutes } from './routes/auth.ts';
import { authorizeRoutes } from './routes/authorize.ts';
import { identityRoutes } from './routes/identities.ts';
import { apikeyRoutes } from './routes/apikeys.ts';
import { policyRoutes } from './routes/policies.ts';
import { permissionRoutes } from './routes/permissions.ts';
import { auditRoutes } from './routes/audit.ts';
import { healthRoutes } from './routes/health.ts';
import { keyRoutes } from './routes/keys.ts';
import { credentialRoutes } from './routes/credentials.ts';
import { accessRoutes } from './routes/access.ts';
import { spiffeRoutes } from './routes/spiffe.ts';
import { findingRoutes } from './routes/findings.ts';
import { governanceRoutes } from './routes/governance.ts';
import { authzenRoutes } from './routes/authzen.ts';
import { discoveryRoutes } from './routes/discovery.ts';
import { gatewaySessionRoutes } from './routes/gateway-sessions.ts';
import { signalRoutes } from './routes/signals.ts';
import { agentRoutes } from './routes/agents.ts';
import { consoleRoutes } from './console.ts';
import { loginEdge } from './edge.ts';
import { requestId, requestLog } from './request-log.ts';
import type { Logger } from '../common/log.ts';
import { documentSecurity, installZod, openapiTransform, schemaComponents, withComponents } from './openapi.ts';
import { DEFAULT_TIMEOUTS } from '../config/server.ts';
import { acceptProxyProtocol } from './proxy-protocol.ts';

export interface ServerOptions {
  /** The operational log (default: none). */
  logger?: Logger;
  https?: { cert: Buffer; key: Buffer; ca?: Buffer | Buffer[]; requestCert: boolean; rejectUnauthorized: false } | null;
}

const BODY_LIMIT = 1 << 20;

export async function buildServer(broker: Broker, options: ServerOptions = {}): Promise<FastifyInstance> {
  const listen = broker.config.listen;
  const t = listen.timeouts ?? DEFAULT_TIMEOUTS;
  // Slow clients are cut: complete headers within `headers`, the whole request within `request`
  // (checked every second or sooner, not Node's default 30 s), idle keep-alive after `idle`.
  const timeouts = { headersTimeout: t.headers_ms, requestTimeout: t.request_ms, connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(t.headers_ms / 4))) };
  const trusted = listen.trusted_proxies ?? [];
  const app = Fastify({
    ...(options.logger ? { loggerInstance: options.logger } : { logger: false }),
    // One line per request, written by request-log.ts (not Fastify's two).
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'req_id' }),
    genReqId: (req: { headers: Record<string, string | string[] | undefined> }) => requestId(req.headers['x-request-id']),
    bodyLimit: BODY_LIMIT,
    // Shutdown closes idle connections at once and lets in-flight requests finish (serve.ts bounds it).
    forceCloseConnections: 'idle',
    // X-Forwarded-For is believed only from these peers; the client is the right-most untrusted hop.
    trustProxy: trusted.length > 0 ? trusted : false,
    requestTimeout: t.request_ms,
    keepAliveTimeout: t.idle_ms,
    http: timeouts,
    ...(options.https && { https: { ...options.https, ...timeouts } }),
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false } },
  } as unknown as FastifyServerOptions);

  if (listen.proxy_protocol) acceptProxyProtocol(app.server, { trusted, timeoutMs: t.headers_ms, ...(options.logger && { logger: options.logger }) });
  installZod(app);
  documentSecurity(app);
  app.decorateRequest('session', null);
  requestLog(app);
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((req, reply) => sendProblem(reply, problem(404, 'not_found', `no route ${req.method} ${req.url.split('?')[0]}`)));

  // RFC 8693 clients send forms; parse them without another dependency.
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 64 * 1024 }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });

  const components = schemaComponents();
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Portcullis API',
        version: '0.1.0',
        description: 'Prove who is asking, decide with Cedar at request time, record everything. Errors are application/problem+json (RFC 9457) with stable `code`s.',
        license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
      },
      // Relative: the document is served by the server it describes (behind any proxy or public_url).
      servers: [{ url: '/', description: 'the server that serves this document' }],
      components: {
        securitySchemes: {
          session: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'A session token from POST /v1/auth/token (or a sign-in)' },
          apiKey: { type: 'http', scheme: 'bearer', description: 'An API key sent as the bearer itself (where applications call: AuthZEN)' },
          ...(broker.config.metrics?.token !== undefined && { metrics: { type: 'http', scheme: 'bearer', description: 'The metrics token (metrics.token_env)' } }),
        },
      },
    },
    transform: openapiTransform(components) as never,
    transformObject: withComponents(components) as never,
  });

  loginEdge(app, broker, broker.config.limits);
  authRoutes(app, broker);
  authorizeRoutes(app, broker);
  identityRoutes(app, broker);
  findingRoutes(app, broker);
  governanceRoutes(app, broker);
  apikeyRoutes(app, broker);
  policyRoutes(app, broker);
  permissionRoutes(app, broker);
  auditRoutes(app, broker);
  keyRoutes(app, broker);
  credentialRoutes(app, broker);
  gatewaySessionRoutes(app, broker);
  agentRoutes(app, broker);
  accessRoutes(app, broker);
  spiffeRoutes(app, broker);
  healthRoutes(app, broker);
  authzenRoutes(app, broker);
  discoveryRoutes(app, broker);
  signalRoutes(app, broker);
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  consoleRoutes(app, broker);

  // API answers name people, decisions and secrets' metadata, and may be authenticated by the
  // console's cookie (which shared caches do not treat as private): nothing is stored by anyone
  // unless a route says otherwise (discovery documents do).
  app.addHook('onSend', async (req, reply) => {
    const route = req.routeOptions.url;
    if (route === undefined || route.startsWith('/console') || reply.hasHeader('cache-control')) return;
    reply.header('cache-control', 'no-store');
  });

  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    broker.metrics.httpRequests.inc({ route, status: String(reply.statusCode) });
    broker.metrics.httpSeconds.observe({ route, method: req.method }, reply.elapsedTime / 1000);
  });
  return app;
}
