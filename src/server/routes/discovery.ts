// Discovery for standard OAuth clients: RFC 8414 authorization-server metadata, and the same
// members at the OpenID discovery path (Portcullis is no OpenID Provider: nothing of an OP's is
// claimed there). The AuthZEN metadata is served by routes/authzen.ts.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Broker } from '../../broker/index.ts';
import { errors } from '../schemas.ts';

const Metadata = z.looseObject({
  issuer: z.string(),
  token_endpoint: z.string(),
  jwks_uri: z.string(),
  grant_types_supported: z.array(z.string()),
  token_endpoint_auth_methods_supported: z.array(z.string()),
  response_types_supported: z.array(z.string()),
});

export function discoveryRoutes(app: FastifyInstance, broker: Broker): void {
  for (const [url, operationId, summary] of [
    ['/.well-known/oauth-authorization-server', 'getAuthorizationServerMetadata', 'RFC 8414 authorization server metadata: issuer, token endpoint (RFC 8693 token exchange), JWKS'],
    ['/.well-known/openid-configuration', 'getOpenidConfiguration', 'The same metadata at the OpenID discovery path, for clients that look there (no OpenID Provider members: Portcullis issues no ID tokens)'],
  ] as const) {
    app.get(url, { schema: { operationId, summary, tags: ['auth'], response: { 200: Metadata, ...errors() } } }, async (_req, reply) =>
      reply.header('cache-control', 'public, max-age=300').send(broker.authorizationServerMetadata()),
    );
  }
}
