// Liveness, readiness and Prometheus metrics. `/metrics` moves to its own listener when
// `metrics.listen` is set, and needs `Authorization: Bearer <token>` when `metrics.token_env` is.
import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import type { Broker } from '../../broker/index.ts';
import { metricsTokenCheck } from '../edge.ts';
import { problem, sendProblem } from '../problem.ts';

export function healthRoutes(app: FastifyInstance, broker: Broker): void {
  app.get('/healthz', { schema: { summary: 'The process is up', tags: ['ops'] } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { summary: 'Policies are loaded and the store answers', tags: ['ops'] } }, async (_req, reply) => {
    const r = broker.readiness();
    return reply.code(r.ready ? 200 : 503).send(r);
  });
  if (!broker.config.metrics?.listen) metricsRoute(app, broker);
}

function metricsRoute(app: FastifyInstance, broker: Broker): void {
  const token = broker.config.metrics?.token;
  app.get(
    '/metrics',
    { ...(token !== undefined && { onRequest: metricsTokenCheck(token) }), schema: { summary: 'Prometheus metrics', tags: ['ops'] } },
    async (_req, reply) => reply.type(broker.metrics.registry.contentType).send(await broker.metrics.registry.metrics()),
  );
}

/** The separate metrics listener (`metrics.listen`): `/metrics` only. */
export function buildMetricsServer(broker: Broker): FastifyInstance {
  const app = Fastify({ logger: false, forceCloseConnections: true, requestTimeout: 10_000, http: { headersTimeout: 5_000, requestTimeout: 10_000, connectionsCheckingInterval: 1_000 } });
  app.setNotFoundHandler((req, reply) => sendProblem(reply, problem(404, 'not_found', `no route ${req.method} ${req.url.split('?')[0]}`)));
  metricsRoute(app, broker);
  return app;
}
