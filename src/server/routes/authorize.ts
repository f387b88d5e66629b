// The decision API: one request or a batch, decided against the current policy at request time.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { AuthorizeRequest, Broker } from '../../broker/index.ts';
import { requireSession } from '../auth.ts';
import { Decision, SESSION_ERRORS, errors } from '../schemas.ts';
import { decisionDto } from '../dto.ts';
import { noteDecision } from '../request-log.ts';

const resource = z.strictObject({
  type: z.string().regex(/^[A-Z][A-Za-z0-9_]{0,63}(::[A-Z][A-Za-z0-9_]{0,63})*$/, 'must be a Cedar entity type such as Database'),
  id: z.string().min(1).max(512),
});

export const authorizeRequest = z.strictObject({
  action: z.string().regex(/^[a-z][a-z0-9_.-]{0,127}$/, 'must be an action name such as db.read'),
  resource,
  context: z.record(z.string(), z.unknown()).optional(),
});

export function authorizeRoutes(app: FastifyInstance, broker: Broker): void {
  app.post(
    '/v1/authorize',
    {
      preHandler: requireSession(broker),
      schema: {
        operationId: 'authorize',
        summary: 'Decide whether the caller may perform an action on a resource, now, in this context',
        tags: ['authorize'],
        security: [{ session: [] }],
        body: authorizeRequest,
        response: { 200: Decision, ...errors(...SESSION_ERRORS) },
      },
    },
    async (req) => {
      const d = decisionDto(await broker.authorize(req.session!, req.body as AuthorizeRequest, req.ip));
      noteDecision(req, d.decision_id);
      return d;
    },
  );

  app.post(
    '/v1/authorize/batch',
    {
      preHandler: requireSession(broker),
      schema: {
        operationId: 'authorizeBatch',
        summary: 'Decide up to 100 requests in one call',
        tags: ['authorize'],
        security: [{ session: [] }],
        body: z.strictObject({ requests: z.array(authorizeRequest).min(1).max(100) }),
        response: { 200: z.object({ decisions: z.array(Decision) }), ...errors(...SESSION_ERRORS) },
      },
    },
    async (req) => {
      const { requests } = req.body as { requests: AuthorizeRequest[] };
      return { decisions: (await broker.authorizeBatch(req.session!, requests, req.ip)).map(decisionDto) };
    },
  );
}
