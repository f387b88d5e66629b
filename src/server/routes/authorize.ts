// The decision API: one request or a batch, decided against the current policy at request time.
import type { FastifyInstance } from 'fastify';
import type { AuthorizeRequest, Broker } from '../../broker/index.ts';
import { requireSession } from '../auth.ts';

const resource = {
  type: 'object',
  additionalProperties: false,
  required: ['type', 'id'],
  properties: {
    type: { type: 'string', pattern: '^[A-Z][A-Za-z0-9_]{0,63}(::[A-Z][A-Za-z0-9_]{0,63})*$' },
    id: { type: 'string', minLength: 1, maxLength: 512 },
  },
} as const;

export const authorizeRequest = {
  type: 'object',
  additionalProperties: false,
  required: ['action', 'resource'],
  properties: {
    action: { type: 'string', pattern: '^[a-z][a-z0-9_.-]{0,127}$' },
    resource,
    context: { type: 'object' },
  },
} as const;

const decision = {
  type: 'object',
  properties: {
    decision: { type: 'string', enum: ['allow', 'deny'] },
    reasons: { type: 'array', items: { type: 'string' } },
    errors: { type: 'array', items: { type: 'object', properties: { policy_id: { type: 'string' }, message: { type: 'string' } } } },
    decision_id: { type: 'string' },
    policy_version: { type: 'integer' },
    bridge: { type: 'object', additionalProperties: true },
  },
} as const;

export function authorizeRoutes(app: FastifyInstance, broker: Broker): void {
  app.post(
    '/v1/authorize',
    {
      preHandler: requireSession(broker),
      schema: {
        summary: 'Decide whether the caller may perform an action on a resource, now, in this context',
        tags: ['authorize'],
        security: [{ session: [] }],
        body: authorizeRequest,
        response: { 200: decision },
      },
    },
    async (req) => broker.authorize(req.session!, req.body as AuthorizeRequest, req.ip),
  );

  app.post(
    '/v1/authorize/batch',
    {
      preHandler: requireSession(broker),
      schema: {
        summary: 'Decide up to 100 requests in one call',
        tags: ['authorize'],
        security: [{ session: [] }],
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['requests'],
          properties: { requests: { type: 'array', minItems: 1, maxItems: 100, items: authorizeRequest } },
        },
        response: { 200: { type: 'object', properties: { decisions: { type: 'array', items: decision } } } },
      },
    },
    async (req) => {
      const { requests } = req.body as { requests: AuthorizeRequest[] };
      return { decisions: await broker.authorizeBatch(req.session!, requests, req.ip) };
    },
  );
}
