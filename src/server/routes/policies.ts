// Policies: read the active version, validate, activate a new version (audited).
import type { FastifyInstance } from 'fastify';
import type { Broker } from '../../broker/index.ts';
import { requireAllowed, requireSession } from '../auth.ts';

const files = {
  type: 'array',
  maxItems: 256,
  items: {
    type: 'object',
    additionalProperties: false,
    required: ['name', 'text'],
    properties: { name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$' }, text: { type: 'string', maxLength: 1048576 } },
  },
} as const;

export function policyRoutes(app: FastifyInstance, broker: Broker): void {
  const session = requireSession(broker);
  const policy = { type: 'Policy', id: 'active' };

  app.get('/v1/policies', { preHandler: session, schema: { summary: 'The active policy version', tags: ['policies'] } }, async (req) => {
    await requireAllowed(broker, req, 'policy.read', policy);
    return broker.activePolicies();
  });

  app.get('/v1/policies/versions', { preHandler: session, schema: { summary: 'Every policy version', tags: ['policies'] } }, async (req) => {
    await requireAllowed(broker, req, 'policy.read', policy);
    return { versions: await broker.policyStore.list() };
  });

  app.put(
    '/v1/policies',
    {
      preHandler: session,
      schema: {
        summary: 'Replace the API-managed policy files; validated in strict mode before activation',
        tags: ['policies'],
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['files', 'reason'],
          properties: { files, reason: { type: 'string', minLength: 1, maxLength: 1024 }, dry_run: { type: 'boolean' } },
        },
      },
    },
    async (req) => {
      await requireAllowed(broker, req, 'policy.write', policy);
      return broker.writePolicies(req.session!, req.body as { files: { name: string; text: string }[]; reason: string; dry_run?: boolean });
    },
  );
}
