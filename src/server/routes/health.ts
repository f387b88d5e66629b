// Liveness, readiness and Prometheus metrics. `/metrics` moves to its own listener when
// `metrics.listen` is set, and needs `Authorization: Bearer <token>` when `metrics.token_env` is.
import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import type { Broker } from '../../broker/index.ts';
import { metricsTokenCheck } from '../edge.ts';
import { problem, sendProblem } from '../problem.ts';
import { z } from 'zod';
import { errors } from '../schemas.ts';
import { installZod, securedBy } from '../openapi.ts';

const Readiness = z.object({
  ready: z.boolean(),
  policy_version: z.int().nullable(),
  store: z.enum(['sqlite', 'postgres']),
  /** This replica runs the cluster jobs (always, with SQLite). */
  leader: z.boolean(),
});
const text = (description: string) => ({ description, content: { 'text/plain': { schema: z.string() } } });

export function healthRoutes(app: FastifyInstance, broker: Broker): void {
  app.get('/healthz', { schema: { operationId: 'health', summary: 'The process is up', tags: ['ops'], response: { 200: z.object({ status: z.literal('ok') }) } } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { operationId: 'ready', summary: 'Policies are loaded and the store answers', tags: ['ops'], response: { 200: Readiness, 503: Readiness.describe('Not ready') } } }, async (_req, reply) => {
    const r = broker.readiness();
    return reply.code(r.ready ? 200 : 503).send(r);
  });
  if (!broker.config.metrics?.listen) metricsRoute(app, broker);
}

function metricsRoute(app: FastifyInstance, broker: Broker): void {
  const token = broker.config.metrics?.token;
  app.get(
    '/metrics',
    { ...(token !== undefined && { onRequest: securedBy(metricsTokenCheck(token), [{ metrics: [] }]) }), schema: { operationId: 'metrics', summary: 'Prometheus metrics', tags: ['ops'], response: { 200: text('Prometheus text format'), ...(token !== undefined && errors(401)) } } },
    async (_req, reply) => reply.type(broker.metrics.registry.contentType).send(await broker.metrics.registry.metrics()),
  );
}

/** The separate metrics listener (`metrics.listen`): `/metrics` only. */
export function buildMetricsServer(broker: Broker): FastifyInstance {
  const app = Fastify({ logger: false, forceCloseConnections: true, requestTimeout: 10_000, http: { headersTimeout: 5_000, requestTimeout: 10_000, connectionsCheckingInterval: 1_000 } });
  installZod(app);
  app.setNotFoundHandler((req, reply) => sendProblem(reply, problem(404, 'not_found', `no route ${req.method} ${req.url.split('?')[0]}`)));
  metricsRoute(app, broker);
  return app;
}
