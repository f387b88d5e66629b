// Just-in-time credentials, leases and revocation.
import type { FastifyInstance } from 'fastify';
import type { Broker } from '../../broker/index.ts';
import { requireAllowed, requireSession } from '../auth.ts';
import { allowedTo, opaqueId } from '../opaque.ts';

const controlPlane = { type: 'ControlPlane', id: 'portcullis' };

export function credentialRoutes(app: FastifyInstance, broker: Broker): void {
  const session = requireSession(broker);

  app.get('/v1/targets', { preHandler: session, schema: { summary: 'Configured credential targets', tags: ['credentials'] } }, async () => ({
    targets: broker.credentials.targets(),
    ssh_user_ca: broker.sshCa.publicKeyLine,
  }));

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
      const issued = await broker.issueCredential(req.session!, req.body as never, req.ip);
      return reply.code(201).header('cache-control', 'no-store').send(issued);
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
      const q = req.query as { mine?: string; identity?: string; target?: string; status?: string };
      if (q.mine === 'true') return { leases: await broker.listLeases({ ...q, identity: req.session!.identity.id }) };
      await requireAllowed(broker, req, 'lease.read', controlPlane);
      return { leases: await broker.listLeases(q) };
    },
  );

  app.post(
    '/v1/leases/:id/renew',
    {
      preHandler: session,
      schema: {
        summary: 'Renew a lease: decided again against current policy, within its maximum lifetime',
        tags: ['credentials'],
        params: { type: 'object', required: ['id'], properties: { id: { type: 'string', maxLength: 128 } } },
        body: { type: 'object', additionalProperties: false, properties: { ttl: { type: 'string', pattern: '^(\\d+(ms|s|m|h|d))+$' } } },
      },
    },
    async (req) => {
      const { id } = req.params as { id: string };
      const mine = async () => (await broker.leaseOwner(id)) === req.session!.identity.id;
      return opaqueId('lease', id, async () => (await mine()) || allowedTo(broker, req, 'lease.read', controlPlane), async () => {
        if (!(await mine())) await requireAllowed(broker, req, 'lease.revoke', controlPlane);
        const ttl = (req.body as { ttl?: string } | undefined)?.ttl;
        const r = await broker.credentials.renew(id, { ...(ttl !== undefined && { ttl }), actor: req.session!.identity.id });
        return { lease: r.lease };
      });
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
      const lease = body.selector.lease;
      const own = async () => typeof lease === 'string' && (await broker.leaseOwner(lease)) === req.session!.identity.id;
      const run = async () => {
        if (!(await own())) await requireAllowed(broker, req, 'lease.revoke', controlPlane);
        return broker.revoke(req.session!, body.selector, body.reason);
      };
      if (typeof lease !== 'string') return run();
      return opaqueId('lease', lease, async () => (await own()) || allowedTo(broker, req, 'lease.read', controlPlane), run);
    },
  );
}
