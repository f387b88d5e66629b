// The dev server's OpenID Provider (oidc-provider, a dev dependency): a DEV-ONLY sign-in page for the
// dev users, no password — code + PKCE (the CLI, the web console) and the device flow. docs/dev-sso.md.
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';

/** The one client of the dev provider: public (PKCE, no secret), native (any loopback port). */
export const DEV_SSO_CLIENT_ID = 'portcullis-dev';
/** The `oidc-human` trust the dev config names for it. */
export const DEV_SSO_TRUST = 'dev-op';
/** Where the web console (issue 15) is sent back to on the dev server. */
export const CONSOLE_CALLBACK_PATH = '/console/callback';

/** Redirect URIs of the dev client: the CLI's loopback listener (any port) and the console's callback. */
export function devSsoRedirectUris(serverPort: number): string[] {
  return ['http://127.0.0.1/callback', `http://127.0.0.1:${serverPort}${CONSOLE_CALLBACK_PATH}`];
}

export interface DevSsoUser {
  email: string;
  /** Shown beside the address on the sign-in page. */
  purpose: string;
}

export interface DevSso {
  issuer: string;
  port: number;
  close(): Promise<void>;
}

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * Starts the provider on its own loopback listener: the broker calls its provider through the
 * outbound policy, which never lets it call its own listener (common/outbound.ts `self`), so the
 * provider cannot be mounted on the broker's port. `port`: tried first (0: any); taken → any free
 * port. `signingJwk`: the dev issuer's private key (Ed25519), so the dev server has one signing
 * key. Undefined when oidc-provider is not installed (npm install --omit=dev).
 */
export async function startDevSso(o: { port: number; serverPort: number; signingJwk: Record<string, unknown>; users: () => DevSsoUser[] }): Promise<DevSso | undefined> {
  const mod = await import('oidc-provider').catch(() => undefined);
  if (!mod) return undefined;
  const Provider = mod.default;
  const server: Server = createServer();
  await listen(server, o.port).catch((err: { code?: string }) => {
    if (err.code !== 'EADDRINUSE' || o.port === 0) throw err;
    return listen(server, 0);
  });
  const port = (server.address() as { port: number }).port;
  const issuer = `http://127.0.0.1:${port}`;
  // Read at each sign-in: the dev config (made once the provider's address is known) names them.
  const devUser = (email: string) => o.users().find((u) => u.email === email);
  const page = (title: string, body: string) => `<!doctype html><html lang="en"><meta charset="utf-8"><title>${esc(title)}</title>
<style>body{font:16px system-ui,sans-serif;max-width:34rem;margin:2rem auto;padding:0 1rem}.dev{background:#fde68a;border:2px solid #b45309;padding:.5rem .75rem;font-weight:600}button{font:inherit;margin:.25rem 0;padding:.4rem .8rem}li{list-style:none;margin:.3rem 0}ul{padding:0}</style>
<p class="dev" role="note">Development only — the Portcullis dev server's OpenID Provider. No passwords: anyone who can reach this page can sign in as any dev user.</p>
<h1>${esc(title)}</h1>${body}</html>`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: DEV_SSO_CLIENT_ID,
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      redirect_uris: devSsoRedirectUris(o.serverPort),
      grant_types: ['authorization_code', DEVICE_GRANT],
      response_types: ['code'],
      id_token_signed_response_alg: 'EdDSA',
    }],
    adapter: memoryAdapter(),
    jwks: { keys: [o.signingJwk] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    claims: { acr: null, amr: null, auth_time: null, openid: ['sub'], email: ['email', 'email_verified'] },
    scopes: ['openid', 'email'],
    conformIdTokenClaims: false, // the e-mail goes in the ID token (there is no userinfo call)
    pkce: { required: () => true },
    ttl: { Interaction: 600, Session: 8 * 3600, Grant: 8 * 3600, AccessToken: 600, IdToken: 600, DeviceCode: 600, AuthorizationCode: 60 },
    features: {
      devInteractions: { enabled: false },
      claimsParameter: { enabled: true },
      deviceFlow: {
        enabled: true,
        userCodeInputSource: async (ctx: { body: string }, form: string, _out: unknown, err: unknown) => {
          ctx.body = page('Sign in on another device', `${err ? '<p>That code is not valid; check it and try again.</p>' : ''}<p>Enter the code the terminal shows.</p>${form}<button type="submit" form="op.deviceInputForm">Continue</button>`);
        },
        userCodeConfirmSource: async (ctx: { body: string }, form: string, _client: unknown, _device: unknown, userCode: string) => {
          ctx.body = page('Sign in on another device', `<p>Is <strong>${esc(userCode)}</strong> the code the terminal shows?</p>${form}<button type="submit" form="op.deviceConfirmForm">Yes, continue</button>`);
        },
        successSource: async (ctx: { body: string }) => {
          ctx.body = page('Signed in', '<p>Sign-in Success. You can close this window and return to your terminal.</p>');
        },
      },
    },
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    findAccount: async (_ctx: unknown, id: string) => {
      if (!devUser(id)) return undefined;
      return { accountId: id, claims: async () => ({ sub: id, email: id, email_verified: true }) };
    },
  });
  const callback = provider.callback();

  // The sign-in page: GET lists the dev users; POST …/login signs one in (with a pretend second factor if ticked).
  server.on('request', async (req: IncomingMessage, res: ServerResponse) => {
    const m = /^\/interaction\/([A-Za-z0-9_-]{1,128})(\/login)?$/.exec((req.url ?? '').split('?')[0]!);
    if (!m) return callback(req, res);
    res.setHeader('cache-control', 'no-store');
    res.setHeader('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'");
    try {
      const details = await provider.interactionDetails(req, res);
      if (details.prompt.name === 'consent') {
        // The dev client is first-party: what it asks for is granted without a question.
        const grant = new provider.Grant({ accountId: details.session!.accountId, clientId: details.params.client_id as string });
        const missing = details.prompt.details.missingOIDCScope as string[] | undefined;
        if (missing) grant.addOIDCScope(missing.join(' '));
        const claims = details.prompt.details.missingOIDCClaims as string[] | undefined;
        if (claims) grant.addOIDCClaims(claims);
        return provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } }, { mergeWithLastSubmission: true });
      }
      if (req.method === 'POST' && m[2]) {
        const form = await readForm(req);
        const email = (form.get('email') ?? '').trim();
        if (!devUser(email)) {
          res.writeHead(400, { 'content-type': 'text/html; charset=utf-8' });
          return res.end(page('Not a dev user', `<p>${esc(email.slice(0, 320))} is not one of the dev server's users.</p><p><a href="/interaction/${esc(m[1]!)}">Back</a></p>`));
        }
        const mfa = form.get('mfa') === 'on';
        const amr = mfa ? ['pwd', 'otp', 'mfa'] : ['pwd'];
        return provider.interactionFinished(req, res, { login: { accountId: email, amr, acr: mfa ? 'urn:portcullis:dev:mfa' : 'urn:portcullis:dev:pwd' } }, { mergeWithLastSubmission: false });
      }
      const hint = typeof details.params.login_hint === 'string' ? details.params.login_hint : '';
      const action = `/interaction/${esc(details.uid)}/login`;
      const mfaBox = `<label><input type="checkbox" name="mfa"${details.params.acr_values || details.prompt.reasons?.includes('login_prompt') ? ' checked' : ''}> pretend a second factor (amr: mfa — for step-up)</label>`;
      const buttons = o.users().map((u) => `<li><form method="post" action="${action}"><input type="hidden" name="email" value="${esc(u.email)}">${mfaBox}<br><button type="submit">Sign in as ${esc(u.email)}</button> <small>${esc(u.purpose)}</small></form></li>`).join('');
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      return res.end(page('Sign in to Portcullis (dev)', `<ul>${buttons}</ul><form method="post" action="${action}"><label>or a dev user's e-mail <input name="email" type="email" value="${esc(hint)}" autocomplete="off"></label> ${mfaBox} <button type="submit">Sign in</button></form>`));
    } catch (err) {
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`sign-in failed: ${(err as Error).message.slice(0, 200)}\n`);
    }
  });
  return {
    issuer,
    port,
    close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
  };
}

type Payload = Record<string, unknown> & { uid?: string; userCode?: string; grantId?: string; consumed?: number };

/**
 * oidc-provider's storage: this process's memory, which is all a dev provider needs (sessions and
 * grants end with the dev server). Given explicitly, so the provider does not warn about its own.
 */
function memoryAdapter() {
  const rows = new Map<string, { payload: Payload; expires?: number }>();
  return class MemoryAdapter {
    readonly #name: string;

    constructor(name: string) {
      this.#name = name;
    }

    #key(id: string): string {
      return `${this.#name}:${id}`;
    }

    async upsert(id: string, payload: Payload, expiresIn?: number): Promise<void> {
      rows.set(this.#key(id), { payload, ...(expiresIn && { expires: Date.now() + expiresIn * 1000 }) });
    }

    async find(id: string): Promise<Payload | undefined> {
      const row = rows.get(this.#key(id));
      if (row?.expires !== undefined && row.expires <= Date.now()) rows.delete(this.#key(id));
      else return row?.payload;
      return undefined;
    }

    async findByUid(uid: string): Promise<Payload | undefined> {
      return this.#findBy((p) => p.uid === uid);
    }

    async findByUserCode(userCode: string): Promise<Payload | undefined> {
      return this.#findBy((p) => p.userCode === userCode);
    }

    async #findBy(match: (p: Payload) => boolean): Promise<Payload | undefined> {
      for (const [k, row] of rows) if (k.startsWith(`${this.#name}:`) && match(row.payload)) return this.find(k.slice(this.#name.length + 1));
      return undefined;
    }

    async consume(id: string): Promise<void> {
      const row = rows.get(this.#key(id));
      if (row) row.payload.consumed = Math.floor(Date.now() / 1000);
    }

    async destroy(id: string): Promise<void> {
      rows.delete(this.#key(id));
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      for (const [k, row] of rows) if (row.payload.grantId === grantId) rows.delete(k);
    }
  };
}

function listen(server: Server, port: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const fail = (err: Error) => reject(err);
    server.once('error', fail);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', fail);
      resolve();
    });
  });
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > 8192) throw new Error('form too large');
    chunks.push(c as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}
