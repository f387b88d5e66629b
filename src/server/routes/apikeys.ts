// Legacy API keys: minted here, tracked, expiring, rotated, revocable.
import type { FastifyInstance } from 'fastify';
import type { Broker, MintApiKeyRequest } from '../../broker/index.ts';
import { callerOf, requireSession } from '../auth.ts';

const keyId = { type: 'object', required: ['id'], properties: { id: { type: 'string', minLength: 1, maxLength: 128 } } } as const;
const duration = { type: 'string', pattern: '^(\\d+(ms|s|m|h|d))+$' } as const;

export function apikeyRoutes(app: FastifyInstance, broker: Broker): void {
  const session = requireSession(broker);
  const apiKeys = broker.admin.apiKeys;

  app.post(
    '/v1/apikeys',
    {
      preHandler: session,
      schema: {
        summary: 'Mint an API key for an identity (the secret is shown once)',
        tags: ['apikeys'],
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['identity', 'ttl'],
          properties: {
            identity: { type: 'string', minLength: 3, maxLength: 300 },
            ttl: duration,
            rotate_after: duration,
            description: { type: 'string', maxLength: 256 },
          },
        },
      },
    },
    async (req, reply) => {
      return reply.code(201).send(await apiKeys.mint(callerOf(req), req.body as MintApiKeyRequest));
    },
  );

  app.get(
    '/v1/apikeys',
    {
      preHandler: session,
      schema: {
        summary: 'List API keys (never their secrets)',
        tags: ['apikeys'],
        querystring: { type: 'object', additionalProperties: false, properties: { identity: { type: 'string', maxLength: 300 } } },
      },
    },
    async (req) => {
      const { identity } = req.query as { identity?: string };
      return { apikeys: await apiKeys.list(callerOf(req), identity) };
    },
  );

  app.post(
    '/v1/apikeys/:id/rotate',
    { preHandler: session, schema: { summary: 'Rotate: a new secret replaces the old one', tags: ['apikeys'], params: keyId } },
    async (req) => {
      const { id } = req.params as { id: string };
      return apiKeys.rotate(callerOf(req), id);
    },
  );

  app.post(
    '/v1/apikeys/:id/revoke',
    {
      preHandler: session,
      schema: {
        summary: 'Revoke an API key',
        tags: ['apikeys'],
        params: keyId,
        body: { type: 'object', additionalProperties: false, properties: { reason: { type: 'string', maxLength: 1024 } } },
      },
    },
    async (req) => {
      const { id } = req.params as { id: string };
      return apiKeys.revoke(callerOf(req), id, (req.body as { reason?: string } | undefined)?.reason ?? '');
    },
  );
}
