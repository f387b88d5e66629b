// Human sign-in from the CLI: authorization code + PKCE with a loopback redirect (RFC 8252: an
// ephemeral port on 127.0.0.1, the browser comes back to us), or the device flow for headless
// machines. The broker holds the PKCE verifier and nonce; the CLI only carries `state` and `code`.
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { CliError, EXIT, address, api, saveSession } from './client.ts';

export interface StepUp {
  mfa?: boolean;
  max_age?: number;
}

export interface SsoLogin {
  session_token: string;
  expires_at: string;
  identity: { id: string; kind: string; boundary: string };
}

const CALLBACK_PATH = '/callback';
const WAIT_MS = 5 * 60_000;

/** True when a person is at the terminal and we may open a browser or ask for a step-up. */
export function interactive(): boolean {
  return !process.env.CI && process.stdin.isTTY === true && process.stderr.isTTY === true;
}

function openBrowser(url: string): void {
  const cmd = process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? 'explorer' : 'xdg-open';
  try {
    const child = spawn(cmd, [url], { stdio: 'ignore', detached: true });
    child.on('error', () => {}); // no browser here: the printed URL is enough
    child.unref();
  } catch {
    /* ignore */
  }
}

/** Waits for the provider's redirect on the loopback listener; answers the browser with a short page. */
function awaitRedirect(server: Server, expectedState: string): Promise<URLSearchParams> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new CliError('no sign-in came back within 5 minutes', EXIT.unauthenticated)), WAIT_MS);
    server.on('request', (req, res) => {
      const u = new URL(req.url ?? '/', 'http://127.0.0.1');
      if (u.pathname !== CALLBACK_PATH || u.searchParams.get('state') !== expectedState) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not a Portcullis sign-in\n');
        return;
      }
      const failed = u.searchParams.has('error');
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(`<!doctype html><title>Portcullis</title><p>${failed ? 'Sign-in failed; see your terminal.' : 'Signed in. You can close this window and return to your terminal.'}</p>`);
      clearTimeout(timer);
      resolve(u.searchParams);
    });
  });
}

/** Code + PKCE through the browser, with a loopback redirect listener. */
async function loginWithBrowser(o: { trust?: string; stepUp?: StepUp; loginHint?: string; port?: number; log: (m: string) => void }): Promise<SsoLogin> {
  const server = createServer();
  // Ephemeral by default (RFC 8252 §7.3); a fixed port for providers that match redirect URIs exactly.
  await new Promise<void>((r, j) => server.once('error', (e) => j(new CliError(`cannot listen on 127.0.0.1:${o.port ?? 0} for the sign-in redirect: ${e.message}`, EXIT.failure))).listen(o.port ?? 0, '127.0.0.1', () => r()));
  try {
    const port = (server.address() as { port: number }).port;
    const query = {
      redirect_uri: `http://127.0.0.1:${port}${CALLBACK_PATH}`,
      ...(o.trust && { trust: o.trust }),
      ...(o.stepUp?.mfa && { mfa: 'true' as const }),
      ...(o.stepUp?.max_age !== undefined && { max_age: String(o.stepUp.max_age) }),
      ...(o.loginHint && { login_hint: o.loginHint }),
    };
    const started = await api((c) => c.GET('/v1/auth/login', { params: { query } }), { auth: false });
    o.log(`Open this URL to sign in${o.stepUp ? ' again (step-up)' : ''}:\n\n  ${started.url}\n\nWaiting for the browser to come back to 127.0.0.1:${port}…`);
    if (interactive()) openBrowser(started.url);
    const back = await awaitRedirect(server, started.state);
    const body: { state: string; trust: string; code?: string; iss?: string; error?: string } = { state: started.state, trust: started.trust };
    for (const k of ['code', 'iss', 'error'] as const) {
      const v = back.get(k);
      if (v !== null) body[k] = v;
    }
    return await api((c) => c.POST('/v1/auth/callback', { body }), { auth: false });
  } finally {
    server.closeAllConnections();
    server.close();
  }
}

/** RFC 8628 device flow: show the code, poll until the user has approved it elsewhere. */
async function loginWithDevice(o: { trust?: string; stepUp?: StepUp; log: (m: string) => void }): Promise<SsoLogin> {
  const body = { ...(o.trust && { trust: o.trust }), ...(o.stepUp?.mfa && { mfa: true }), ...(o.stepUp?.max_age !== undefined && { max_age: o.stepUp.max_age }) };
  const started = await api((c) => c.POST('/v1/auth/device', { body }), { auth: false });
  o.log(`On any device, open ${started.verification_uri} and enter the code ${started.user_code}${started.verification_uri_complete ? `\n(or open ${started.verification_uri_complete})` : ''}\nWaiting for approval…`);
  let interval = started.interval;
  const deadline = Date.parse(started.expires_at);
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, interval * 1000));
    const r = await api((c) => c.POST('/v1/auth/device/poll', { body: { handle: started.handle, trust: started.trust } }), { auth: false });
    if (r.status === 'complete') return r;
    interval = r.interval;
  }
  throw new CliError('the device code expired before it was approved', EXIT.unauthenticated);
}

/** Signs in (browser or device) and saves the session for later commands. */
export async function ssoLogin(o: { device?: boolean; trust?: string; stepUp?: StepUp; loginHint?: string; port?: number; log: (m: string) => void }): Promise<{ login: SsoLogin; path: string }> {
  const login = o.device ? await loginWithDevice(o) : await loginWithBrowser(o);
  const path = saveSession({ addr: address(), session_token: login.session_token, expires_at: login.expires_at, identity: login.identity.id });
  return { login, path };
}
