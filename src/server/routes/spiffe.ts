// Portcullis' SPIFFE trust bundles: public, like the JWKS, so relying parties can verify SVIDs.
import type { FastifyInstance } from 'fastify';
import type { Broker } from '../../broker/index.ts';
import { NotFound } from '../../common/errors.ts';
import { z } from 'zod';
import { Jwks, errors } from '../schemas.ts';

export function spiffeRoutes(app: FastifyInstance, broker: Broker): void {
  app.get(
    '/v1/spiffe/bundle/:trust_domain',
    {
      schema: {
        operationId: 'getSpiffeBundle',
        summary: "SPIFFE trust bundle (JWK set, x509-svid keys with x5c) of Portcullis' CA for a trust domain",
        tags: ['credentials'],
        params: z.object({ trust_domain: z.string().min(1).max(255).regex(/^[a-z0-9._-]+$/, 'must be a trust domain name') }),
        response: { 200: Jwks, ...errors(400, 404) },
      },
    },
    async (req, reply) => {
      const { trust_domain } = req.params as { trust_domain: string };
      const bundle = broker.spiffeBundle(trust_domain);
      if (!bundle) throw new NotFound(`SPIFFE trust domain ${trust_domain}`);
      return reply.header('cache-control', 'public, max-age=300').send(bundle);
    },
  );
}
