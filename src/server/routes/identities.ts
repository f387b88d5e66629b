// The inventory API: declare, list, show, update, suspend, offboard. Each call is a Cedar decision
// the broker makes (broker/identities.ts).
import type { FastifyInstance } from 'fastify';
import type { Broker } from '../../broker/index.ts';
import type { IdentityFilter, IdentityInput, IdentityPatch } from '../../inventory/identities.ts';
import { IDENTITY_KINDS } from '../../identity/types.ts';
import { callerOf, requireSession } from '../auth.ts';

const name = { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,63}$' } as const;
const labels = { type: 'object', maxProperties: 64, additionalProperties: { type: 'string', maxLength: 256 } } as const;
const parents = {
  type: 'array',
  maxItems: 64,
  items: {
    type: 'object',
    additionalProperties: false,
    required: ['type', 'id'],
    properties: { type: { type: 'string', enum: ['Team', 'Role'] }, id: { type: 'string', minLength: 1, maxLength: 256 } },
  },
} as const;
const idParam = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', minLength: 3, maxLength: 300 } },
} as const;

export function identityRoutes(app: FastifyInstance, broker: Broker): void {
  const session = requireSession(broker);
  const identities = broker.admin.identities;

  app.get(
    '/v1/identities',
    {
      preHandler: session,
      schema: {
        summary: 'List identities (filter by kind, boundary, environment, owner, status)',
        tags: ['identities'],
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            kind: { type: 'string', enum: [...IDENTITY_KINDS] },
            boundary: name,
            environment: name,
            owner: { type: 'string', maxLength: 256 },
            status: { type: 'string', enum: ['active', 'suspended', 'offboarded'] },
          },
        },
      },
    },
    async (req) => ({ identities: await identities.list(callerOf(req), req.query as IdentityFilter) }),
  );

  app.get('/v1/identities/:id', { preHandler: session, schema: { summary: 'Show one identity', tags: ['identities'], params: idParam } }, async (req) => {
    const { id } = req.params as { id: string };
    return identities.get(callerOf(req), id);
  });

  app.post(
    '/v1/identities',
    {
      preHandler: session,
      schema: {
        summary: 'Declare an identity',
        tags: ['identities'],
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['id', 'kind', 'boundary', 'environment'],
          properties: {
            id: { type: 'string', minLength: 3, maxLength: 300 },
            kind: { type: 'string', enum: [...IDENTITY_KINDS] },
            boundary: name,
            environment: name,
            owner: { type: 'string', minLength: 1, maxLength: 256 },
            purpose: { type: 'string', minLength: 1, maxLength: 1024 },
            labels,
            parents,
            trusts: { type: 'array', maxItems: 32, items: name },
          },
        },
      },
    },
    async (req, reply) => reply.code(201).send(await identities.declare(callerOf(req), req.body as IdentityInput & { trusts?: string[] })),
  );

  app.patch(
    '/v1/identities/:id',
    {
      preHandler: session,
      schema: {
        summary: 'Update owner, purpose, labels, memberships',
        tags: ['identities'],
        params: idParam,
        body: {
          type: 'object',
          additionalProperties: false,
          minProperties: 1,
          properties: {
            owner: { type: ['string', 'null'], minLength: 1, maxLength: 256 },
            purpose: { type: ['string', 'null'], minLength: 1, maxLength: 1024 },
            labels,
            parents,
          },
        },
      },
    },
    async (req) => {
      const { id } = req.params as { id: string };
      return identities.update(callerOf(req), id, req.body as IdentityPatch);
    },
  );

  app.put(
    '/v1/identities/:id/trusts',
    {
      preHandler: session,
      schema: {
        summary: 'Bind an identity to the trusts allowed to prove it ([]: only credentials Portcullis issues for it)',
        tags: ['identities'],
        params: idParam,
        body: { type: 'object', additionalProperties: false, required: ['trusts'], properties: { trusts: { type: 'array', maxItems: 32, items: name } } },
      },
    },
    async (req) => {
      const { id } = req.params as { id: string };
      return identities.bind(callerOf(req), id, (req.body as { trusts: string[] }).trusts);
    },
  );

  for (const [verb, status] of [
    ['suspend', 'suspended'],
    ['activate', 'active'],
    ['offboard', 'offboarded'],
  ] as const) {
    app.post(
      `/v1/identities/:id/${verb}`,
      {
        preHandler: session,
        schema: {
          summary: `${verb[0]!.toUpperCase()}${verb.slice(1)} an identity${verb === 'activate' ? '' : ' (its live sessions end at once)'}`,
          tags: ['identities'],
          params: idParam,
          body: { type: 'object', additionalProperties: false, properties: { reason: { type: 'string', maxLength: 1024 } } },
        },
      },
      async (req) => {
        const { id } = req.params as { id: string };
        return identities.setStatus(callerOf(req), id, status, (req.body as { reason?: string } | undefined)?.reason ?? '');
      },
    );
  }
}
