// Just-in-time credentials, leases and revocation.
import type { FastifyInstance } from 'fastify';
import { NotFound } from '../../common/errors.ts';
import type { Broker, IssueCredentialRequest, LeaseQuery } from '../../broker/index.ts';
import { callerOf, requireSession } from '../auth.ts';
import { CREDENTIAL_REQUEST } from '../../credentials/issuers/registry.ts';
import { issuedDto, leaseDto, targetsDto } from '../dto.ts';
import { noteDecision } from '../request-log.ts';
import { z } from 'zod';
import { Issued, Lease, RevocationResult, SESSION_ERRORS, duration, errors, optionalBody } from '../schemas.ts';

const Targets = z.object({ targets: z.array(z.object({ name: z.string(), kind: z.string(), resource_type: z.string() })), ssh_user_ca: z.string(), ssh_host_ca: z.string().describe('put it in known_hosts as @cert-authority to trust Portcullis host certificates') });

export function credentialRoutes(app: FastifyInstance, broker: Broker): void {
  const session = requireSession(broker);
  const leases = broker.admin.leases;

  app.get('/v1/targets', { preHandler: session, schema: { operationId: 'listTargets', summary: 'Configured credential targets', tags: ['credentials'], response: { 200: Targets, ...errors(401) } } }, async () => {
    return targetsDto(broker.targets());
  });

  // Public, like the JWKS: revoked serials only, so sshd hosts can fetch it without a credential.
  app.get(
    '/v1/ssh/krl',
    {
      schema: {
        operationId: 'getSshKrl',
        summary: "OpenSSH KRL of every Portcullis SSH certificate revoked or superseded and not yet expired, for sshd's RevokedKeys (fetch it every few seconds)",
        tags: ['credentials'],
        response: { 200: z.string().describe('the KRL, binary (application/octet-stream)'), 304: z.null().describe('unchanged since the ETag sent in If-None-Match'), ...errors(404) },
      },
    },
    async (req, reply) => {
      const pending = broker.sshKrl();
      if (!pending) throw new NotFound('SSH targets: none are configured, so there is no KRL');
      const krl = await pending;
      // Named by its entries, the same on every replica: a poller behind a load balancer gets 304
      // until something is revoked.
      const etag = `"${krl.version}"`;
      reply.header('etag', etag).header('cache-control', 'no-cache');
      if (req.headers['if-none-match'] === etag) return reply.code(304).send();
      return reply.header('content-type', 'application/octet-stream').send(krl.bytes);
    },
  );

  app.post(
    '/v1/credentials',
    {
      preHandler: session,
      schema: {
        operationId: 'issueCredential',
        summary: 'Issue a short-lived credential for a target, decided now by policy (credential.issue); returns it once. Issued under an access grant, it ends with the grant',
        tags: ['credentials'],
        // The common fields and each issuer kind's own (public_key, csr, scopes…): credentials/issuers/registry.ts.
        body: CREDENTIAL_REQUEST,
        response: { 201: Issued, ...errors(...SESSION_ERRORS, 404, 409) },
      },
    },
    async (req, reply) => {
      const issued = await broker.issueCredential(req.session!, req.body as IssueCredentialRequest, req.ip);
      noteDecision(req, issued.lease.decisionId);
      return reply.code(201).header('cache-control', 'no-store').send(issuedDto(issued));
    },
  );

  app.get(
    '/v1/leases',
    {
      preHandler: session,
      schema: {
        operationId: 'listLeases',
        summary: 'Leases: your own (mine=true), or by identity / target / status (lease.read)',
        tags: ['credentials'],
        querystring: z.strictObject({
          mine: z.enum(['true', 'false']).optional(),
          identity: z.string().max(300).optional(),
          target: z.string().max(128).optional(),
          status: Lease.shape.status.optional(),
        }),
        response: { 200: z.object({ leases: z.array(Lease) }), ...errors(...SESSION_ERRORS) },
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
        operationId: 'renewLease',
        summary: 'Renew a lease: decided again against current policy, within its maximum lifetime (another identity’s: lease.renew)',
        tags: ['credentials'],
        params: z.object({ id: z.string().max(128) }),
        body: optionalBody({ ttl: duration.optional() }),
        response: { 200: z.object({ lease: Lease }), ...errors(...SESSION_ERRORS, 404, 409) },
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
        operationId: 'revoke',
        summary: 'Revoke everything a selector matches: a lease, an identity, every identity of an owner, a target, a trust, a session',
        tags: ['credentials'],
        body: z.strictObject({ selector: z.record(z.string(), z.unknown()), reason: z.string().min(1).max(1024) }),
        response: { 200: RevocationResult, ...errors(...SESSION_ERRORS, 404) },
      },
    },
    async (req) => {
      const body = req.body as { selector: Record<string, unknown>; reason: string };
      return leases.revoke(callerOf(req), body.selector, body.reason);
    },
  );
}
