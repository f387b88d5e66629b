// Posture findings over the inventory, API keys and leases.
import type { FastifyInstance } from 'fastify';
import type { Broker } from '../../broker/index.ts';
import { callerOf, requireSession } from '../auth.ts';

export function findingRoutes(app: FastifyInstance, broker: Broker): void {
  app.get(
    '/v1/findings',
    {
      preHandler: requireSession(broker),
      schema: {
        summary: 'Posture findings: identities without owner or purpose, stale identities, legacy or overdue API keys, failed revocations',
        tags: ['identities'],
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { stale_days: { type: 'string', pattern: '^\\d{1,4}$' } },
        },
      },
    },
    async (req) => {
      const { stale_days } = req.query as { stale_days?: string };
      const findings = await broker.admin.identities.findings(callerOf(req), { ...(stale_days !== undefined && { staleAfterMs: Number(stale_days) * 86_400_000 }) });
      return { findings };
    },
  );
}
