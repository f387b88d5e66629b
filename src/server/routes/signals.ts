// Shared Signals (docs/signals.md): the RFC 8935 push endpoint transmitters deliver SETs to, and
// the SSF configuration metadata. Errors of the push are RFC 8935's (`err`, `description`), not
// problem documents: that is what transmitters read.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { MAX_SET_BYTES, type Broker } from '../../broker/index.ts';
import { errors } from '../schemas.ts';
import { problem, sendProblem } from '../problem.ts';

const SetError = z.object({
  err: z.enum(['invalid_request', 'invalid_key', 'invalid_issuer', 'invalid_audience', 'authentication_failed', 'access_denied']),
  description: z.string(),
});

const SsfMetadata = z.looseObject({
  spec_version: z.string(),
  issuer: z.string(),
  jwks_uri: z.string(),
  delivery_methods_supported: z.array(z.string()),
  events_supported: z.array(z.string()),
});

export function signalRoutes(app: FastifyInstance, broker: Broker): void {
  // The SET is the body as it is (a compact JWS), checked by the receiver.
  app.addContentTypeParser('application/secevent+jwt', { parseAs: 'string', bodyLimit: MAX_SET_BYTES }, (_req, body, done) => done(null, body));

  app.post(
    '/v1/signals/events',
    {
      schema: {
        operationId: 'pushSecurityEvent',
        summary: 'RFC 8935 push delivery of one Security Event Token (Content-Type application/secevent+jwt) from a configured transmitter, authenticated with its push secret (Authorization: Bearer)',
        tags: ['signals'],
        // The body is a compact JWS checked by the handler: its errors are RFC 8935's, not problem documents.
        documentedBody: { contentType: 'application/secevent+jwt', schema: z.string().min(1).max(MAX_SET_BYTES).describe('the Security Event Token: a compact JWS signed by the transmitter') },
        response: {
          202: { description: 'Accepted (applied, or an event type this receiver ignores)', content: { 'application/json': { schema: z.null() } } },
          400: { description: 'RFC 8935 §2.3 error', content: { 'application/json': { schema: SetError } } },
          ...errors(413, 415, 429),
        },
      },
    },
    async (req, reply) => {
      const r = await broker.receiveSignal({ authorization: req.headers.authorization, contentType: req.headers['content-type'], body: req.body, sourceIp: req.ip });
      reply.header('cache-control', 'no-store');
      if (r.status === 202) return reply.code(202).send();
      if (r.status === 429) {
        reply.header('retry-after', String(r.retryAfterS));
        return sendProblem(reply, problem(429, 'rate_limited', `too many unauthenticated pushes; retry after ${r.retryAfterS} s`));
      }
      return reply.code(400).send({ err: r.err, description: r.description });
    },
  );

  app.get(
    '/.well-known/ssf-configuration',
    { schema: { operationId: 'getSsfConfiguration', summary: 'OpenID Shared Signals Framework 1.0 transmitter configuration metadata (push delivery, CAEP session-revoked and credential-change, the broker JWKS)', tags: ['signals'], response: { 200: SsfMetadata, ...errors() } } },
    async (_req, reply) => reply.header('cache-control', 'public, max-age=300').send(broker.ssfConfiguration()),
  );
}
