// The web console at /console: its page and scripts from an explicit allow-list of files (our
// src/console/ and the few vendor modules it imports), strict headers, and the cookie sign-in.
import { readFileSync } from 'node:fs';
import { createHash, timingSafeEqual } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Broker } from '../broker/index.ts';
import { PortcullisError } from '../common/errors.ts';
import { callerOf, requireSession } from './auth.ts';
import { LOGIN_COOKIE, SESSION_COOKIE, clearHostCookie, cookies, setHostCookie } from './console-cookie.ts';
import { isLoopback } from '../identity/trusts/oidc-human/config.ts';

/** Everything is same-origin; no inline script or style; never framed. */
export const CONSOLE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * The replay page's: the same, plus WebAssembly compilation for asciinema-player's terminal
 * emulator ('wasm-unsafe-eval' allows WebAssembly only, never eval of strings). No other page has it.
 */
export const REPLAY_CSP = CONSOLE_CSP.replace("script-src 'self'", "script-src 'self' 'wasm-unsafe-eval'");
export const REPLAY_PAGE = '/console/replay.html';

const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': CONSOLE_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=(), payment=(), usb=()',
};

const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  mjs: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml',
};

const own = (name: string) => fileURLToPath(new URL(`../console/${name}`, import.meta.url));
const vendor = (specifier: string) => fileURLToPath(import.meta.resolve(specifier));

/**
 * The files the console serves, by URL path under /console/ — nothing else is ever read. A vendor
 * module's bare import is rewritten to the sibling file (no import map: that would be inline script).
 */
export const CONSOLE_FILES: Record<string, { path: () => string; rewrite?: [string, string] }> = {
  'index.html': { path: () => own('index.html') },
  'console.css': { path: () => own('console.css') },
  'app.js': { path: () => own('app.js') },
  'api.js': { path: () => own('api.js') },
  'ui.js': { path: () => own('ui.js') },
  'pages/approvals.js': { path: () => own('pages/approvals.js') },
  'pages/inventory.js': { path: () => own('pages/inventory.js') },
  'pages/identity.js': { path: () => own('pages/identity.js') },
  'pages/sessions.js': { path: () => own('pages/sessions.js') },
  'pages/session.js': { path: () => own('pages/session.js') },
  'pages/audit.js': { path: () => own('pages/audit.js') },
  'replay.html': { path: () => own('replay.html') },
  'replay.js': { path: () => own('replay.js') },
  'pages/policies.js': { path: () => own('pages/policies.js') },
  'pages/governance.js': { path: () => own('pages/governance.js') },
  'chart.js': { path: () => own('chart.js') },
  'stepup.js': { path: () => own('stepup.js') },
  'vendor/preact.mjs': { path: () => vendor('preact') },
  'vendor/hooks.mjs': { path: () => vendor('preact/hooks'), rewrite: ['from"preact"', 'from"./preact.mjs"'] },
  'vendor/htm.mjs': { path: () => vendor('htm') },
  'vendor/asciinema-player.min.js': { path: () => vendor('asciinema-player/dist/bundle/asciinema-player.min.js') },
  'vendor/asciinema-player.css': { path: () => vendor('asciinema-player/dist/bundle/asciinema-player.css') },
};

interface Asset {
  body: Buffer;
  gzip: Buffer;
  type: string;
  etag: string;
}

/** Reads (once) and hashes every allow-listed file; a vendor file that changed shape fails loudly. */
export function loadConsoleAssets(): Map<string, Asset> {
  const out = new Map<string, Asset>();
  for (const [name, f] of Object.entries(CONSOLE_FILES)) {
    let text = readFileSync(f.path(), 'utf8');
    if (f.rewrite) {
      if (!text.includes(f.rewrite[0])) throw new Error(`console: ${name} no longer contains ${f.rewrite[0]} (vendor update?); adjust CONSOLE_FILES`);
      text = text.replaceAll(f.rewrite[0], f.rewrite[1]);
    }
    const body = Buffer.from(text, 'utf8');
    const type = TYPES[name.slice(name.lastIndexOf('.') + 1)]!;
    out.set(name, { body, gzip: gzipSync(body, { level: 9 }), type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` });
  }
  return out;
}

/** Where the provider sends the browser back: the public URL, else the origin this request reached. */
function callbackUri(broker: Broker, req: FastifyRequest): string {
  const base = broker.config.public_url ?? `${req.protocol}://${req.host}`;
  return `${base.replace(/\/+$/, '')}/console/callback`;
}

/** A signed-in browser lands here; failures come back as a code the page explains. */
const home = (error?: string) => (error ? `/console/?error=${encodeURIComponent(error)}` : '/console/');

/** Where a (step-up) sign-in comes back to: a console hash route such as #/governance/decide/<id>/keep. */
const RETURN_HASH = /^#\/[A-Za-z0-9/_.:%~-]{0,400}$/;
const RETURN_COOKIE = '__Host-portcullis-return';
function returnHash(cookie: string | undefined): string | undefined {
  if (cookie === undefined || cookie === '' || cookie.length > 1500) return undefined;
  let v: string;
  try {
    v = decodeURIComponent(cookie);
  } catch {
    return undefined;
  }
  return RETURN_HASH.test(v) ? v : undefined;
}

const isConsolePath = (p: string | undefined) => p !== undefined && (p === '/console' || p.startsWith('/console/'));

const sameState = (a: string, b: string) => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

export function consoleRoutes(app: FastifyInstance, broker: Broker): void {
  let assets: Map<string, Asset> | undefined;
  const session = requireSession(broker);

  // Decided on the route the router matched (it decodes the path: `/%63onsole/` is the console
  // too) and, for what matched no route, on the decoded path — never on the raw URL alone.
  app.addHook('onSend', async (req, reply) => {
    const route = req.routeOptions.url;
    let path = req.url.split('?')[0]!;
    try {
      path = decodeURIComponent(path);
    } catch {
      /* not decodable: the raw path stands */
    }
    if (isConsolePath(route) || isConsolePath(path)) for (const [k, v] of Object.entries(SECURITY_HEADERS)) reply.header(k, v);
    if (route === REPLAY_PAGE) reply.header('content-security-policy', REPLAY_CSP);
  });

  const serve = (name: string) => async (req: FastifyRequest, reply: FastifyReply) => {
    assets ??= loadConsoleAssets();
    const a = assets.get(name)!;
    reply.header('content-type', a.type).header('etag', a.etag).header('vary', 'accept-encoding');
    // The page is always revalidated (it names no hashes); scripts and styles by ETag.
    reply.header('cache-control', name.endsWith('.html') ? 'no-cache' : 'no-cache, max-age=0');
    if (req.headers['if-none-match'] === a.etag) return reply.code(304).send();
    if (/\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''))) return reply.header('content-encoding', 'gzip').send(a.gzip);
    return reply.send(a.body);
  };

  app.get('/console', { schema: { hide: true } }, async (_req, reply) => reply.redirect('/console/', 308));
  app.get('/console/', { schema: { hide: true } }, serve('index.html'));
  for (const name of Object.keys(CONSOLE_FILES)) app.get(`/console/${name}`, { schema: { hide: true } }, serve(name));

  // Sign-in: start a code + PKCE login at the configured human SSO, this browser holding the state.
  app.get('/console/login', { schema: { hide: true } }, async (req, reply) => {
    const redirectUri = callbackUri(broker, req);
    const u = new URL(redirectUri);
    // The session cookie is Secure: over cleartext to another host the browser would drop it.
    if (u.protocol !== 'https:' && !isLoopback(u)) return reply.redirect(home('tls_required'), 303);
    // Step-up (the page asks again with what an action answered step_up_required with), and the
    // page location to come back to: only a console hash route, never a URL (no open redirect).
    const q = req.query as Record<string, unknown>;
    const stepUp: { mfa?: boolean; max_age?: number } = {};
    if (q.mfa === 'true') stepUp.mfa = true;
    if (typeof q.max_age === 'string' && /^\d{1,6}$/.test(q.max_age)) stepUp.max_age = Number(q.max_age);
    const back = typeof q.return === 'string' && RETURN_HASH.test(q.return) ? q.return : undefined;
    try {
      const started = await broker.startHumanLogin({ redirectUri, ...((stepUp.mfa || stepUp.max_age !== undefined) && { stepUp }) });
      const maxAgeS = Math.max(60, (Date.parse(started.expires_at) - Date.now()) / 1000);
      setHostCookie(reply, LOGIN_COOKIE, started.state, { maxAgeS, sameSite: 'Lax' });
      if (back !== undefined) setHostCookie(reply, RETURN_COOKIE, encodeURIComponent(back), { maxAgeS, sameSite: 'Lax' });
      return reply.header('cache-control', 'no-store').redirect(started.url, 303);
    } catch (err) {
      if (err instanceof PortcullisError && err.status < 500) return reply.redirect(home(err.code), 303);
      throw err;
    }
  });

  // The provider's redirect: the state must be the one this browser started (login CSRF), then
  // the broker completes the login and the Portcullis session goes into the session cookie.
  app.get('/console/callback', { schema: { hide: true } }, async (req, reply) => {
    const q = req.query as Record<string, unknown>;
    const str = (k: string, max: number) => (typeof q[k] === 'string' && (q[k] as string).length <= max ? (q[k] as string) : undefined);
    const state = str('state', 256);
    const held = cookies(req).get(LOGIN_COOKIE);
    const back = returnHash(cookies(req).get(RETURN_COOKIE));
    clearHostCookie(reply, LOGIN_COOKIE);
    if (back !== undefined) clearHostCookie(reply, RETURN_COOKIE);
    reply.header('cache-control', 'no-store');
    if (state === undefined || held === undefined || !sameState(state, held)) return reply.redirect(home('login_state_mismatch'), 303);
    const code = str('code', 4096);
    const iss = str('iss', 2048);
    const error = str('error', 256);
    try {
      const done = await broker.completeHumanLogin({ state, ...(code !== undefined && { code }), ...(iss !== undefined && { iss }), ...(error !== undefined && { error }) }, req.ip);
      setHostCookie(reply, SESSION_COOKIE, done.session_token, { maxAgeS: (Date.parse(done.expires_at) - Date.now()) / 1000, sameSite: 'Strict' });
      return reply.redirect(`${home()}${back ?? ''}`, 303);
    } catch (err) {
      if (err instanceof PortcullisError && err.status < 500) return reply.redirect(home(err.code === 'unauthenticated' ? 'sign_in_failed' : err.code), 303);
      throw err;
    }
  });

  // Sign-out revokes the Portcullis session (and its session-bound grants), then drops the cookie.
  app.post('/console/logout', { preHandler: session, schema: { hide: true } }, async (req, reply) => {
    const caller = callerOf(req);
    await broker.admin.sessions.revoke(caller, { jti: caller.jti, reason: 'signed out of the console' });
    clearHostCookie(reply, SESSION_COOKIE);
    return reply.code(204).header('cache-control', 'no-store').send();
  });
}
