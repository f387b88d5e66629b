// Posture findings over the inventory, API keys and leases, and their daily counts over time.
import type { FastifyInstance } from 'fastify';
import type { Broker } from '../../broker/index.ts';
import { callerOf, requireSession } from '../auth.ts';
import { z } from 'zod';
import { Finding, FindingsTrend, SESSION_ERRORS, errors } from '../schemas.ts';

export function findingRoutes(app: FastifyInstance, broker: Broker): void {
  app.get(
    '/v1/findings',
    {
      preHandler: requireSession(broker),
      schema: {
        operationId: 'listFindings',
        summary: 'Posture findings, each with its OWASP NHI Top 10 (2025) category, NIST CSF 2.0 subcategories and remediation: ownerless, stale, unused, over-privileged, shared, human-used or environment-crossing identities; legacy, long-lived, unused or overdue API keys; failed revocations',
        tags: ['identities'],
        querystring: z.strictObject({ stale_days: z.string().regex(/^\d{1,4}$/, 'must be a number of days').optional(), unused_days: z.string().regex(/^[1-9]\d{0,2}$/, 'must be a number of days from 1 to 999').optional() }),
        response: { 200: z.object({ findings: z.array(Finding) }), ...errors(...SESSION_ERRORS) },
      },
    },
    async (req) => {
      const { stale_days, unused_days } = req.query as { stale_days?: string; unused_days?: string };
      const findings = await broker.admin.identities.findings(callerOf(req), { ...(stale_days !== undefined && { staleAfterMs: Number(stale_days) * 86_400_000 }), ...(unused_days !== undefined && { unusedAfterMs: Number(unused_days) * 86_400_000 }) });
      return { findings };
    },
  );
  app.get(
    '/v1/findings/trend',
    {
      preHandler: requireSession(broker),
      schema: {
        operationId: 'getFindingsTrend',
        summary: 'Findings over time: per UTC day of the window, the counts (total, by severity, by OWASP NHI category, by code) the governance job snapshots once a day',
        tags: ['identities'],
        querystring: z.strictObject({ days: z.string().regex(/^[1-9]\d{0,2}$/, 'must be a number of days from 1 to 999').optional() }),
        response: { 200: FindingsTrend, ...errors(...SESSION_ERRORS) },
      },
    },
    async (req) => {
      const { days } = req.query as { days?: string };
      return broker.admin.identities.findingsTrend(callerOf(req), days === undefined ? 30 : Number(days));
    },
  );
}
