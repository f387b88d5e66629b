// One operational log line per request (pino through Fastify): request id, method, route, path
// without its query string, status, latency, client address, the caller's identity and the
// decision id when there was one. Never headers, bodies or queries: that is where secrets travel.
import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

declare module 'fastify' {
  interface FastifyRequest {
    /** The decision this request was answered with (set by the routes that decide, and by errors that carry one). */
    decisionId: string | null;
  }
}

const CLIENT_ID = /^[A-Za-z0-9._:-]{1,64}$/;

/** The id of a request: the client's `x-request-id` when it is a plain short token, else a new one. */
export function requestId(header: string | string[] | undefined): string {
  return typeof header === 'string' && CLIENT_ID.test(header) ? header : `req_${randomBytes(9).toString('base64url')}`;
}

/** Marks the decision a request was answered with, for its log line. */
export function noteDecision(req: FastifyRequest, id: unknown): void {
  if (typeof id === 'string') req.decisionId = id;
}

export function requestLog(app: FastifyInstance): void {
  app.decorateRequest('decisionId', null);
  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    reply.header('x-request-id', req.id);
  });
  app.addHook('onResponse', async (req: FastifyRequest, reply: FastifyReply) => {
    const status = reply.statusCode;
    const line = {
      method: req.method,
      route: req.routeOptions.url ?? null,
      path: req.url.split('?')[0],
      status,
      ms: Math.round(reply.elapsedTime * 100) / 100,
      ip: req.ip,
      ...(req.session && { identity: req.session.identity.id }),
      ...(req.decisionId && { decision_id: req.decisionId }),
    };
    if (status >= 500) req.log.error(line, 'request');
    else req.log.info(line, 'request');
  });
}
