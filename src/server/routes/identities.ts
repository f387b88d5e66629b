// The inventory API: declare, list, show, update, suspend, offboard. Each call is a Cedar decision
// the broker makes (broker/identities.ts).
import type { FastifyInstance } from 'fastify';
import type { Broker } from '../../broker/index.ts';
import type { IdentityFilter, IdentityInput, IdentityPatch } from '../../inventory/identities.ts';
import { callerOf, requireSession } from '../auth.ts';
import { InvalidInput } from '../../common/errors.ts';
import { z } from 'zod';
import { Identity, SESSION_ERRORS, errors, idParam as idParamOf, identityKind, name, optionalBody } from '../schemas.ts';

const labels = z.record(z.string(), z.string().max(256)).refine((l) => Object.keys(l).length <= 64, 'must have at most 64 labels');
const parents = z.array(z.strictObject({ type: z.enum(['Team', 'Role']), id: z.string().min(1).max(256) })).max(64);
const idParam = idParamOf(300, 3);
const reasonBody = optionalBody({ reason: z.string().max(1024).optional() });

export function identityRoutes(app: FastifyInstance, broker: Broker): void {
  const session = requireSession(broker);
  const identities = broker.admin.identities;

  app.get(
    '/v1/identities',
    {
      preHandler: session,
      schema: {
        operationId: 'listIdentities',
        summary: 'List identities (filter by kind, boundary, environment, owner, status, text q); with limit, one page in id order (next page: after=next_after)',
        tags: ['identities'],
        querystring: z.strictObject({
          kind: identityKind.optional(),
          boundary: name.optional(),
          environment: name.optional(),
          owner: z.string().max(256).optional(),
          status: z.enum(['active', 'suspended', 'offboarded']).optional(),
          q: z.string().min(1).max(256).optional().describe('case-insensitive text in the id, owner or purpose'),
          limit: z.string().regex(/^[1-9][0-9]{0,2}$|^1000$/, 'must be a number from 1 to 1000').optional().describe('page size; without it every match is returned'),
          after: z.string().min(1).max(300).optional().describe('the next_after of the previous page'),
        }),
        response: {
          200: z.object({
            identities: z.array(Identity),
            total: z.int().optional().describe('with limit: how many match in all'),
            next_after: z.string().nullable().optional().describe('with limit: pass as after for the next page; null on the last'),
          }),
          ...errors(...SESSION_ERRORS),
        },
      },
    },
    async (req) => {
      const { limit, after, ...filter } = req.query as IdentityFilter & { limit?: string; after?: string };
      if (limit === undefined) {
        if (after !== undefined) throw new InvalidInput('after needs limit (the page size)', 'querystring.after');
        return { identities: await identities.list(callerOf(req), filter) };
      }
      return identities.page(callerOf(req), filter, { limit: Number(limit), ...(after !== undefined && { after }) });
    },
  );

  app.get('/v1/identities/:id', { preHandler: session, schema: { operationId: 'getIdentity', summary: 'Show one identity', tags: ['identities'], params: idParam, response: { 200: Identity, ...errors(...SESSION_ERRORS, 404) } } }, async (req) => {
    const { id } = req.params as { id: string };
    return identities.get(callerOf(req), id);
  });

  app.post(
    '/v1/identities',
    {
      preHandler: session,
      schema: {
        operationId: 'declareIdentity',
        summary: 'Declare an identity',
        tags: ['identities'],
        body: z.strictObject({
          id: z.string().min(3).max(300),
          kind: identityKind,
          boundary: name,
          environment: name,
          owner: z.string().min(1).max(256).optional(),
          purpose: z.string().min(1).max(1024).optional(),
          labels: labels.optional(),
          parents: parents.optional(),
          trusts: z.array(name).max(32).optional(),
        }),
        response: { 201: Identity, ...errors(...SESSION_ERRORS, 409) },
      },
    },
    async (req, reply) => reply.code(201).send(await identities.declare(callerOf(req), req.body as IdentityInput & { trusts?: string[] })),
  );

  app.patch(
    '/v1/identities/:id',
    {
      preHandler: session,
      schema: {
        operationId: 'updateIdentity',
        summary: 'Update owner, purpose, labels, memberships',
        tags: ['identities'],
        params: idParam,
        body: z
          .strictObject({
            owner: z.string().min(1).max(256).nullable().optional(),
            purpose: z.string().min(1).max(1024).nullable().optional(),
            labels: labels.optional(),
            parents: parents.optional(),
          })
          .refine((b) => Object.keys(b).length > 0, 'must change at least one member'),
        response: { 200: Identity, ...errors(...SESSION_ERRORS, 404) },
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
        operationId: 'bindIdentityTrusts',
        summary: 'Bind an identity to the trusts allowed to prove it ([]: only credentials Portcullis issues for it)',
        tags: ['identities'],
        params: idParam,
        body: z.strictObject({ trusts: z.array(name).max(32) }),
        response: { 200: Identity, ...errors(...SESSION_ERRORS, 404) },
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
          operationId: `${verb}Identity`,
          summary: `${verb[0]!.toUpperCase()}${verb.slice(1)} an identity${verb === 'activate' ? '' : ' (its live sessions end at once)'}`,
          tags: ['identities'],
          params: idParam,
          body: reasonBody,
          response: { 200: Identity, ...errors(...SESSION_ERRORS, 404, 409) },
        },
      },
      async (req) => {
        const { id } = req.params as { id: string };
        return identities.setStatus(callerOf(req), id, status, (req.body as { reason?: string } | undefined)?.reason ?? '');
      },
    );
  }
}
