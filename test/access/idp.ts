// A real OpenID provider (oidc-provider v9) on a loopback port with test accounts, and a small
// HTTP "browser" that drives its login/consent interactions programmatically (cookies, redirects).
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { generateKeyPairSync, sign as nodeSign } from 'node:crypto';
import Provider from 'oidc-provider';

export interface Account {
  sub: string;
  email: string;
  password: string;
  otp: string;
  groups: string[];
}

export interface Idp {
  issuer: string;
  port: number;
  /** Interactions shown so far (`login`, `consent`), newest last. */
  prompts: string[];
  /**
   * Signs a token with the provider's own key (the one its discovered JWKS publishes), with any
   * claims and header: ID tokens a real provider would never mint, for the hostile cases.
   */
  sign(claims: Record<string, unknown>, header?: Record<string, unknown>): Promise<string>;
  close(): Promise<void>;
}

export const CLIENT_ID = 'portcullis-cli';
export const CLIENT_SECRET = 'client-secret-for-tests-0123456789';

export async function startIdp(accounts: Account[], redirectUris: string[]): Promise<Idp> {
  const server: Server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const issuer = `http://127.0.0.1:${port}`;
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'idp-1', use: 'sig', alg: 'RS256' };
  const byId = new Map(accounts.map((a) => [a.sub, a]));
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        redirect_uris: redirectUris,
        grant_types: ['authorization_code', 'urn:ietf:params:oauth:grant-type:device_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    jwks: { keys: [jwk] },
    cookies: { keys: ['cookie-key-for-tests'] },
    claims: { acr: null, amr: null, auth_time: null, sid: null, iss: null, openid: ['sub'], email: ['email', 'email_verified'], groups: ['groups'] },
    ttl: { Interaction: 600, Session: 3600, Grant: 3600, AccessToken: 600, IdToken: 600, DeviceCode: 600, AuthorizationCode: 60 },
    scopes: ['openid', 'email', 'groups', 'offline_access'],
    conformIdTokenClaims: false, // put scope claims (email, groups) in the ID token
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      deviceFlow: { enabled: true },
      claimsParameter: { enabled: true },
    },
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    findAccount: async (_ctx: unknown, id: string) => {
      const a = byId.get(id);
      if (!a) return undefined;
      return { accountId: id, claims: async () => ({ sub: id, email: a.email, email_verified: true, groups: a.groups }) };
    },
  });
  const prompts: string[] = [];
  const callback = provider.callback();

  const readForm = async (req: IncomingMessage): Promise<URLSearchParams> => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
  };

  // The "login page": GET shows which prompt is pending; POST /login checks password (+ OTP → mfa).
  server.on('request', async (req: IncomingMessage, res: ServerResponse) => {
    const m = /^\/interaction\/([^/?]+)(\/login)?/.exec(req.url ?? '');
    if (!m) return callback(req, res);
    try {
      const details = await provider.interactionDetails(req, res);
      if (details.prompt.name === 'consent') {
        prompts.push('consent');
        const grant = new provider.Grant({ accountId: details.session!.accountId, clientId: details.params.client_id as string });
        const missing = details.prompt.details.missingOIDCScope as string[] | undefined;
        if (missing) grant.addOIDCScope(missing.join(' '));
        const grantId = await grant.save();
        return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
      }
      if (req.method === 'GET' && /text\/html/.test(req.headers.accept ?? '')) {
        // A real browser (the console's tests) gets a login form posting to the same endpoint.
        prompts.push('login');
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        return res.end(`<!doctype html><html lang="en"><title>Test IdP</title><form method="post" action="/interaction/${details.uid}/login"><label>Email <input name="email" type="email"></label><label>Password <input name="password" type="password"></label><button type="submit">Sign in</button></form></html>`);
      }
      if (req.method === 'GET') {
        prompts.push('login');
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ uid: details.uid, prompt: details.prompt.name, reasons: details.prompt.reasons }));
      }
      const form = await readForm(req);
      const a = accounts.find((x) => x.email === form.get('email'));
      if (!a || a.password !== form.get('password')) {
        return provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'bad credentials' });
      }
      const amr = ['pwd'];
      if (form.get('otp')) {
        if (form.get('otp') !== a.otp) return provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'bad otp' });
        amr.push('otp', 'mfa');
      }
      return provider.interactionFinished(req, res, { login: { accountId: a.sub, amr, acr: amr.includes('mfa') ? 'urn:portcullis:mfa' : 'urn:portcullis:pwd' } }, { mergeWithLastSubmission: false });
    } catch (err) {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(String((err as Error).message));
    }
  });
  return {
    issuer,
    port,
    prompts,
    sign: async (claims, header = {}) => {
      const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
      const input = `${b64({ alg: 'RS256', kid: 'idp-1', typ: 'JWT', ...header })}.${b64(claims)}`;
      return `${input}.${nodeSign('sha256', Buffer.from(input), privateKey).toString('base64url')}`;
    },
    close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
  };
}

/** A cookie-keeping HTTP client that follows the provider's redirects by hand. */
export class Browser {
  readonly #cookies = new Map<string, string>();

  async request(url: string, init: { method?: string; form?: Record<string, string> } = {}): Promise<{ status: number; location?: string; body: string }> {
    const headers: Record<string, string> = {};
    const cookie = [...this.#cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    if (cookie) headers.cookie = cookie;
    let body: string | undefined;
    if (init.form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(init.form).toString();
    }
    const res = await fetch(url, { method: init.method ?? (body ? 'POST' : 'GET'), headers, redirect: 'manual', ...(body !== undefined && { body }) });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = pair!.indexOf('=');
      const k = pair!.slice(0, i);
      const v = pair!.slice(i + 1);
      if (/expires=Thu, 01 Jan 1970/i.test(c) || v === '') this.#cookies.delete(k);
      else this.#cookies.set(k, v);
    }
    const location = res.headers.get('location') ?? undefined;
    return { status: res.status, ...(location !== undefined && { location: new URL(location, url).toString() }), body: await res.text() };
  }

  /**
   * Follows redirects from `url`; on a login interaction, posts the credentials; stops at the
   * redirect to `redirectPrefix` and returns its query parameters.
   */
  async authorize(url: string, redirectPrefix: string, creds: { email: string; password: string; otp?: string }): Promise<URLSearchParams> {
    let next = url;
    for (let i = 0; i < 20; i++) {
      if (next.startsWith(redirectPrefix)) return new URL(next).searchParams;
      const r = await this.request(next);
      if (r.location) {
        next = r.location;
        continue;
      }
      if (r.status === 200 && /\/interaction\//.test(next)) {
        const info = JSON.parse(r.body) as { prompt: string };
        if (info.prompt !== 'login') throw new Error(`unexpected prompt ${info.prompt}`);
        const form: Record<string, string> = { email: creds.email, password: creds.password };
        if (creds.otp) form.otp = creds.otp;
        const p = await this.request(`${next}/login`, { form });
        if (!p.location) throw new Error(`login post did not redirect: ${p.status} ${p.body.slice(0, 200)}`);
        next = p.location;
        continue;
      }
      throw new Error(`stuck at ${next}: ${r.status} ${r.body.slice(0, 300)}`);
    }
    throw new Error('too many redirects');
  }

  /**
   * Acts as the user on the device verification page: submits the user code, logs in, confirms.
   * Auto-submits the provider's HTML forms (hidden inputs), skipping any "abort" form.
   */
  async approveDevice(url: string, creds: { email: string; password: string; otp?: string }): Promise<string> {
    let next: { url: string; form?: Record<string, string> } = { url };
    for (let i = 0; i < 30; i++) {
      const r = await this.request(next.url, next.form ? { form: next.form } : {});
      if (r.location) {
        next = { url: r.location };
        continue;
      }
      if (r.status === 200 && /\/interaction\/[^/]+$/.test(next.url)) {
        const form: Record<string, string> = { email: creds.email, password: creds.password };
        if (creds.otp) form.otp = creds.otp;
        next = { url: `${next.url}/login`, form };
        continue;
      }
      const forms = [...r.body.matchAll(/<form[^>]*method="post"[^>]*action="([^"]+)"[^>]*>([\s\S]*?)<\/form>/g)];
      const chosen = forms.find((f) => !/name="abort"/.test(f[2]!));
      if (r.status !== 200 || !chosen) return r.body;
      const fields: Record<string, string> = {};
      for (const m of chosen[2]!.matchAll(/<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"/g)) fields[m[1]!] = m[2]!;
      next = { url: new URL(chosen[1]!, next.url).toString(), form: fields };
    }
    throw new Error('device approval did not finish');
  }
}
