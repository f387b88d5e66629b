// Bearer session tokens on every /v1 call (or the console's session cookie, only from the console's
// own pages), and the caller handed to the broker's authorizing layer.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Broker, Caller, SessionContext } from '../broker/index.ts';
import { AuthenticationFailed, ConsoleCookieRefused } from '../common/errors.ts';
import { consoleCookieToken } from './console-cookie.ts';
import { securedBy } from './openapi.ts';

declare module 'fastify' {
  interface FastifyRequest {
    session: SessionContext | null;
  }
}

/**
 * The session credential of a request: its bearer token, or else the console's session cookie,
 * which counts only with the console's header and `Sec-Fetch-Site: same-origin` (so no other site
 * can ride it); a cookie without them is refused, never silently ignored.
 */
export function bearer(req: FastifyRequest): string {
  const h = req.headers.authorization;
  if (h === undefined) {
    const fromCookie = consoleCookieToken(req);
    if (fromCookie.token !== undefined) {
      if (fromCookie.refused !== undefined) throw new ConsoleCookieRefused(fromCookie.refused);
      return fromCookie.token;
    }
  }
  // RFC 6750 §2.1 / RFC 9110 §11.1: the auth scheme is case-insensitive.
  const m = h === undefined ? null : /^Bearer +([A-Za-z0-9._~+/-]+=*)$/i.exec(h);
  if (!m) throw new AuthenticationFailed('missing_credentials', 'no bearer session token');
  return m[1]!;
}

/** preHandler: verifies the session token and attaches the caller. */
export function requireSession(broker: Broker) {
  return securedBy(async (req: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    req.session = await broker.sessionFromToken(bearer(req), req.ip);
  }, [{ session: [] }]);
}

/** The caller of a request behind `requireSession`: its session and address (the broker decides what it may do). */
export function callerOf(req: FastifyRequest): Caller {
  return { ...req.session!, sourceIp: req.ip };
}

/** preHandler where applications call (AuthZEN): a session token, or an API key sent as the bearer itself. */
export function requireCaller(broker: Broker) {
  return securedBy(async (req: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    req.session = await broker.callerFromBearer(bearer(req), req.ip);
  }, [{ session: [] }, { apiKey: [] }]);
}
