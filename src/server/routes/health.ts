// Liveness, readiness and Prometheus metrics.
import type { FastifyInstance } from 'fastify';
import type { Broker } from '../../broker/index.ts';

export function healthRoutes(app: FastifyInstance, broker: Broker): void {
  app.get('/healthz', { schema: { summary: 'The process is up', tags: ['ops'] } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { summary: 'Policies are loaded and the store answers', tags: ['ops'] } }, async (_req, reply) => {
    const r = broker.readiness();
    return reply.code(r.ready ? 200 : 503).send(r);
  });
  app.get('/metrics', { schema: { summary: 'Prometheus metrics', tags: ['ops'] } }, async (_req, reply) => {
    return reply.type(broker.metrics.registry.contentType).send(await broker.metrics.registry.metrics());
  });
}
