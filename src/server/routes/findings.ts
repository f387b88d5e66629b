// Posture findings over the inventory, API keys and leases.
import type { FastifyInstance } from 'fastify';
import type { Broker } from '../../broker/index.ts';
import { callerOf, requireSession } from '../auth.ts';
import { z } from 'zod';
import { Finding, SESSION_ERRORS, errors } from '../schemas.ts';

export function findingRoutes(app: FastifyInstance, broker: Broker): void {
  app.get(
    '/v1/findings',
    {
      preHandler: requireSession(broker),
      schema: {
        operationId: 'listFindings',
        summary: 'Posture findings: identities without owner or purpose, stale identities, legacy or overdue API keys, failed revocations',
        tags: ['identities'],
        querystring: z.strictObject({ stale_days: z.string().regex(/^\d{1,4}$/, 'must be a number of days').optional() }),
        response: { 200: z.object({ findings: z.array(Finding) }), ...errors(...SESSION_ERRORS) },
      },
    },
    async (req) => {
      const { stale_days } = req.query as { stale_days?: string };
      const findings = await broker.admin.identities.findings(callerOf(req), { ...(stale_days !== undefined && { staleAfterMs: Number(stale_days) * 86_400_000 }) });
      return { findings };
    },
  );
}
