// Fastify preHandler: `app.get(path, { preHandler: authorize(pdp, (req) => question) }, handler)`.
// The answer is on `request.portcullis`; a deny is a 403, an unavailable PDP a 503 (fail closed).
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Answer, Pdp } from './pdp.ts';
import { decide } from './guard.ts';
import type { Ask } from './guard.ts';

declare module 'fastify' {
  interface FastifyRequest {
    portcullis?: Answer;
  }
}

export function authorize(pdp: Pdp, ask: Ask<FastifyRequest>): (req: FastifyRequest, reply: FastifyReply) => Promise<void> {
  return async (req, reply) => {
    const out = await decide(pdp, ask, req);
    if ('refusal' in out) {
      await reply.code(out.refusal.status).type('application/problem+json').send(out.refusal.body);
      return;
    }
    req.portcullis = out.answer;
  };
}
