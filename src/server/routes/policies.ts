// Policies: read the active version, the history and one version's files, validate, activate a new version (audited).
import type { FastifyInstance } from 'fastify';
import type { Broker, WritePoliciesRequest } from '../../broker/index.ts';
import { callerOf, requireSession } from '../auth.ts';
import { snakeKeys } from '../dto.ts';
import { z } from 'zod';
import { PolicyVersion, SESSION_ERRORS, errors, time } from '../schemas.ts';

const files = z.array(z.strictObject({ name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'must be a file name'), text: z.string().max(1048576) })).max(256);
const ActivePolicy = PolicyVersion.extend({ policies: z.array(z.string()) });
/** The history lists versions without their files (GET /v1/policies/versions/{version} has them). */
const PolicyVersionSummary = z.object({ version: z.int(), created_at: time, actor: z.string(), reason: z.string(), digest: z.string() }).meta({ id: 'PolicyVersionSummary' });
const WriteResult = z.union([
  z.object({ valid: z.literal(true), policies: z.array(z.string()) }),
  z.object({ version: z.int(), changed: z.boolean(), digest: z.string(), leases_revoked: z.record(z.string(), z.unknown()).optional() }),
]);

export function policyRoutes(app: FastifyInstance, broker: Broker): void {
  const session = requireSession(broker);
  const policies = broker.admin.policies;

  app.get('/v1/policies', { preHandler: session, schema: { operationId: 'getActivePolicy', summary: 'The active policy version', tags: ['policies'], response: { 200: ActivePolicy, ...errors(401, 403, 404) } } }, async (req) => policies.active(callerOf(req)));

  app.get('/v1/policies/versions', { preHandler: session, schema: { operationId: 'listPolicyVersions', summary: 'Every policy version, without its files', tags: ['policies'], response: { 200: z.object({ versions: z.array(PolicyVersionSummary) }), ...errors(401, 403) } } }, async (req) => ({ versions: await policies.versions(callerOf(req)) }));

  app.get(
    '/v1/policies/versions/:version',
    {
      preHandler: session,
      schema: {
        operationId: 'getPolicyVersion',
        summary: 'One policy version with its files (for history and diffs)',
        tags: ['policies'],
        params: z.strictObject({ version: z.string().regex(/^[1-9]\d{0,8}$/, 'must be a version number') }),
        response: { 200: PolicyVersion, ...errors(401, 403, 404) },
      },
    },
    async (req) => policies.version(callerOf(req), Number((req.params as { version: string }).version)),
  );

  app.put(
    '/v1/policies',
    {
      preHandler: session,
      schema: {
        operationId: 'writePolicies',
        summary: 'Replace the API-managed policy files; validated in strict mode before activation',
        tags: ['policies'],
        body: z.strictObject({ files, reason: z.string().min(1).max(1024), dry_run: z.boolean().optional() }),
        response: { 200: WriteResult, ...errors(...SESSION_ERRORS) },
      },
    },
    async (req) => snakeKeys(await policies.write(callerOf(req), req.body as WritePoliciesRequest)),
  );
}
