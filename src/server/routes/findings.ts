// Posture findings over the inventory, API keys and leases.
import type { FastifyInstance } from 'fastify';
import type { Broker } from '../../broker/index.ts';
import { computeFindings } from '../../inventory/findings.ts';
import { requireAllowed, requireSession } from '../auth.ts';

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
      await requireAllowed(broker, req, 'identity.read', { type: 'Identity', id: '*' });
      const { stale_days } = req.query as { stale_days?: string };
      const findings = computeFindings({
        now: broker.clock.now(),
        identities: broker.identities.list(),
        apikeys: broker.apikeys.list(),
        leases: await broker.credentials.list({ status: 'revoke_failed' }, 10_000),
        ...(stale_days !== undefined && { staleAfterMs: Number(stale_days) * 86_400_000 }),
      });
      return { findings };
    },
  );
}
