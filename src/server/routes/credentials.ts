// Just-in-time credentials, leases and revocation.
import type { FastifyInstance } from 'fastify';
import type { Broker, IssueCredentialRequest, LeaseQuery } from '../../broker/index.ts';
import { callerOf, requireSession } from '../auth.ts';
import { issuedDto, leaseDto, targetsDto } from '../dto.ts';

export function credentialRoutes(app: FastifyInstance, broker: Broker): void {
  const session = requireSession(broker);
  const leases = broker.admin.leases;

  app.get('/v1/targets', { preHandler: session, schema: { summary: 'Configured credential targets', tags: ['credentials'] } }, async () => {
    return targetsDto(broker.targets());
  });

  app.post(
    '/v1/credentials',
    {
      preHandler: session,
      schema: {
        summary: 'Issue a short-lived credential for a target, decided now by policy (credential.issue); returns it once. Issued under an access grant, it ends with the grant',
        tags: ['credentials'],
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['target', 'reason'],
          properties: {
            target: { type: 'string', minLength: 1, maxLength: 128 },
            permission: { type: 'string', minLength: 1, maxLength: 128 },
            ttl: { type: 'string', pattern: '^(\\d+(ms|s|m|h|d))+$' },
            reason: { type: 'string', minLength: 1, maxLength: 1024 },
            // ssh: an OpenSSH public key line; spiffe-x509: a PEM (SPKI) public key, or `csr`.
            public_key: { type: 'string', maxLength: 16384 },
            csr: { type: 'string', maxLength: 16384 },
            scopes: { type: 'array', maxItems: 64, items: { type: 'string', minLength: 1, maxLength: 256 } },
            // Defaults to the caller's active grant for this target; its end revokes the lease.
            grant_id: { type: 'string', minLength: 1, maxLength: 128 },
          },
        },
      },
    },
    async (req, reply) => {
      const issued = await broker.issueCredential(req.session!, req.body as IssueCredentialRequest, req.ip);
      return reply.code(201).header('cache-control', 'no-store').send(issuedDto(issued));
    },
  );

  app.get(
    '/v1/leases',
    {
      preHandler: session,
      schema: {
        summary: 'Leases: your own (mine=true), or by identity / target / status (lease.read)',
        tags: ['credentials'],
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            mine: { type: 'string', enum: ['true', 'false'] },
            identity: { type: 'string', maxLength: 300 },
            target: { type: 'string', maxLength: 128 },
            status: { type: 'string', enum: ['issuing', 'active', 'revoking', 'revoked', 'expired', 'revoke_failed', 'failed'] },
          },
        },
      },
    },
    async (req) => {
      const { mine, ...q } = req.query as Omit<LeaseQuery, 'mine'> & { mine?: string };
      return { leases: (await leases.list(callerOf(req), { ...q, mine: mine === 'true' })).map(leaseDto) };
    },
  );

  app.post(
    '/v1/leases/:id/renew',
    {
      preHandler: session,
      schema: {
        summary: 'Renew a lease: decided again against current policy, within its maximum lifetime (another identity’s: lease.renew)',
        tags: ['credentials'],
        params: { type: 'object', required: ['id'], properties: { id: { type: 'string', maxLength: 128 } } },
        body: { type: 'object', additionalProperties: false, properties: { ttl: { type: 'string', pattern: '^(\\d+(ms|s|m|h|d))+$' } } },
      },
    },
    async (req) => {
      const { id } = req.params as { id: string };
      const r = await leases.renew(callerOf(req), id, (req.body as { ttl?: string } | undefined)?.ttl);
      return { lease: leaseDto(r.lease) };
    },
  );

  app.post(
    '/v1/revocations',
    {
      preHandler: session,
      schema: {
        summary: 'Revoke everything a selector matches: a lease, an identity, every identity of an owner, a target, a trust, a session',
        tags: ['credentials'],
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['selector', 'reason'],
          properties: { selector: { type: 'object' }, reason: { type: 'string', minLength: 1, maxLength: 1024 } },
        },
      },
    },
    async (req) => {
      const body = req.body as { selector: Record<string, unknown>; reason: string };
      return leases.revoke(callerOf(req), body.selector, body.reason);
    },
  );
}
