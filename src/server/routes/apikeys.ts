// Legacy API keys: minted here, tracked, expiring, rotated, revocable.
import type { FastifyInstance } from 'fastify';
import type { Broker, MintApiKeyRequest } from '../../broker/index.ts';
import { callerOf, requireSession } from '../auth.ts';
import { z } from 'zod';
import { ApiKey, MintedApiKey, SESSION_ERRORS, duration, errors, idParam, optionalBody } from '../schemas.ts';

const keyId = idParam();

export function apikeyRoutes(app: FastifyInstance, broker: Broker): void {
  const session = requireSession(broker);
  const apiKeys = broker.admin.apiKeys;

  app.post(
    '/v1/apikeys',
    {
      preHandler: session,
      schema: {
        operationId: 'mintApiKey',
        summary: 'Mint an API key for an identity (the secret is shown once)',
        tags: ['apikeys'],
        body: z.strictObject({ identity: z.string().min(3).max(300), ttl: duration, rotate_after: duration.optional(), description: z.string().max(256).optional() }),
        response: { 201: MintedApiKey, ...errors(...SESSION_ERRORS, 404) },
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
        operationId: 'listApiKeys',
        summary: 'List API keys (never their secrets)',
        tags: ['apikeys'],
        querystring: z.strictObject({ identity: z.string().max(300).optional() }),
        response: { 200: z.object({ apikeys: z.array(ApiKey) }), ...errors(...SESSION_ERRORS) },
      },
    },
    async (req) => {
      const { identity } = req.query as { identity?: string };
      return { apikeys: await apiKeys.list(callerOf(req), identity) };
    },
  );

  app.post(
    '/v1/apikeys/:id/rotate',
    { preHandler: session, schema: { operationId: 'rotateApiKey', summary: 'Rotate: a new secret replaces the old one', tags: ['apikeys'], params: keyId, response: { 200: MintedApiKey, ...errors(...SESSION_ERRORS, 404, 409) } } },
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
        operationId: 'revokeApiKey',
        summary: 'Revoke an API key',
        tags: ['apikeys'],
        params: keyId,
        body: optionalBody({ reason: z.string().max(1024).optional() }),
        response: { 200: ApiKey, ...errors(...SESSION_ERRORS, 404, 409) },
      },
    },
    async (req) => {
      const { id } = req.params as { id: string };
      return apiKeys.revoke(callerOf(req), id, (req.body as { reason?: string } | undefined)?.reason ?? '');
    },
  );
}
