// Bearer session tokens on every /v1 call, and admin calls decided by Cedar like any other.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Broker, SessionContext } from '../broker/index.ts';
import { AuthenticationFailed } from '../common/errors.ts';
import type { EntityUid } from '../policy/engine/types.ts';
import type { Decision } from '../policy/decision-point.ts';

declare module 'fastify' {
  interface FastifyRequest {
    session: SessionContext | null;
  }
}

export function bearer(req: FastifyRequest): string {
  const h = req.headers.authorization;
  // RFC 6750 §2.1 / RFC 9110 §11.1: the auth scheme is case-insensitive.
  const m = h === undefined ? null : /^Bearer +([A-Za-z0-9._~+/-]+=*)$/i.exec(h);
  if (!m) throw new AuthenticationFailed('missing_credentials', 'no bearer session token');
  return m[1]!;
}

/** preHandler: verifies the session token and attaches the caller. */
export function requireSession(broker: Broker) {
  return async (req: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    req.session = await broker.sessionFromToken(bearer(req), req.ip);
  };
}

/** Decides an admin action for the caller; throws Forbidden (403 with the decision id) on deny. */
export async function requireAllowed(broker: Broker, req: FastifyRequest, action: string, resource: EntityUid): Promise<Decision> {
  return broker.requireAllowed(req.session!, action, resource, req.ip);
}
