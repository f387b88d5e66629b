// The console's cookies: the session cookie (`__Host-portcullis-session`, the Portcullis session
// token itself, HttpOnly, Secure, SameSite=Strict) and the short-lived sign-in state cookie.
import type { FastifyReply, FastifyRequest } from 'fastify';

export const SESSION_COOKIE = '__Host-portcullis-session';
export const LOGIN_COOKIE = '__Host-portcullis-login';
/** The header only the console's own script sends (a cross-site form or image cannot). */
export const CONSOLE_HEADER = 'x-portcullis-console';

/** The request's cookies by name (first wins; values as sent, no decoding: ours are base64url). */
export function cookies(req: FastifyRequest): Map<string, string> {
  const out = new Map<string, string>();
  const raw = req.headers.cookie;
  if (typeof raw !== 'string' || raw.length > 16384) return out;
  for (const part of raw.split(';')) {
    const i = part.indexOf('=');
    if (i <= 0) continue;
    const k = part.slice(0, i).trim();
    if (!out.has(k)) out.set(k, part.slice(i + 1).trim());
  }
  return out;
}

/**
 * The session token the console cookie carries, and — when the request lacks the console's proof
 * of origin — what is missing. No cookie: `{}`.
 */
export function consoleCookieToken(req: FastifyRequest): { token?: string; refused?: string } {
  const token = cookies(req).get(SESSION_COOKIE);
  if (token === undefined || token === '') return {};
  if (req.headers[CONSOLE_HEADER] !== '1') return { token, refused: `no "X-Portcullis-Console: 1" header` };
  const site = req.headers['sec-fetch-site'];
  if (site !== 'same-origin') return { token, refused: `Sec-Fetch-Site is ${typeof site === 'string' ? `"${site.slice(0, 32)}"` : 'missing'}, not "same-origin"` };
  return { token };
}

/** Sets a `__Host-` cookie: Secure (browsers treat loopback http as secure too), Path=/, HttpOnly. */
export function setHostCookie(reply: FastifyReply, name: string, value: string, o: { maxAgeS: number; sameSite: 'Strict' | 'Lax' }): void {
  const cookie = `${name}=${value}; Path=/; Max-Age=${Math.max(0, Math.floor(o.maxAgeS))}; HttpOnly; Secure; SameSite=${o.sameSite}`;
  // Fastify appends each set-cookie header to those already set (re-sending them would repeat them).
  reply.header('set-cookie', cookie);
}

export function clearHostCookie(reply: FastifyReply, name: string): void {
  setHostCookie(reply, name, '', { maxAgeS: 0, sameSite: 'Strict' });
}
