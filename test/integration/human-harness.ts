// The integration harness plus human sign-in: a real OpenID provider (oidc-provider, from
// test/access/idp.ts) behind an `oidc-human` trust, logins driven over the broker's HTTP API
// (/v1/auth/login → provider interaction → /v1/auth/callback), and a signed-webhook receiver.
import { Browser, CLIENT_ID, CLIENT_SECRET, startIdp } from '../access/idp.ts';
import type { Account, Idp } from '../access/idp.ts';
import { startReceiver } from '../access/receiver.ts';
import type { Receiver } from '../access/receiver.ts';
import { startHarness } from './harness.ts';
import type { Harness, HarnessOptions } from './harness.ts';
import type { Json } from '../json.ts';

/** Where the CLI's loopback listener would be; the test browser stops at this redirect. */
export const REDIRECT = 'http://127.0.0.1:53682/callback';
export const WEBHOOK_SECRET = 'webhook-secret-for-tests-0123456789';

export interface HumanHarness extends Harness {
  idp: Idp;
  receiver: Receiver;
  /** Signs in over HTTP as the account; `stepUp` asks for MFA and a fresh login (prompt=login, max_age). */
  login(email: string, opts?: { otp?: string; stepUp?: { mfa?: boolean; max_age?: number }; browser?: Browser }): Promise<{ token: string; url: URL; identity: Json }>;
  /** Moves the broker's manual clock to real time (the provider stamps tokens with it). */
  sync(): void;
}

export async function startHumanHarness(o: { accounts: Account[]; access: string; policies: string; extraYaml?: string; extraEnv?: Record<string, string>; harness?: HarnessOptions; redirectUris?: string[] }): Promise<HumanHarness> {
  const redirects = o.redirectUris ?? ['http://127.0.0.1/callback'];
  const idp = await startIdp(o.accounts, [REDIRECT, ...redirects.filter((u) => u !== 'http://127.0.0.1/callback')]);
  const receiver = await startReceiver(WEBHOOK_SECRET);
  let h: Harness;
  try {
    h = await startHarness(
      `${o.extraYaml ?? ''}
access:
${o.access.replaceAll('{{WEBHOOK_URL}}', receiver.url)}
`,
      { SSO_CLIENT_SECRET: CLIENT_SECRET, WEBHOOK_SECRET, ...o.extraEnv },
      Date.now(),
      {
        trusts: `  - name: sso
    kind: oidc-human
    issuer: ${idp.issuer}
    client_id: ${CLIENT_ID}
    client_secret_env: SSO_CLIENT_SECRET
    redirect_uris: ${JSON.stringify(redirects)}
    scopes: [openid, email, groups]
    algorithms: [RS256]
    groups_claim: groups
    boundary: application
    environment: prod`,
        policies: o.policies,
        ...o.harness,
      },
    );
  } catch (err) {
    await receiver.close();
    await idp.close();
    throw err;
  }
  const sync = () => h.clock.set(Math.max(h.clock.now(), Date.now()));
  return {
    ...h,
    idp,
    receiver,
    sync,
    async login(email, opts = {}) {
      const account = o.accounts.find((a) => a.email === email);
      if (!account) throw new Error(`no test account ${email}`);
      const q = new URLSearchParams({ redirect_uri: REDIRECT });
      if (opts.stepUp?.mfa) q.set('mfa', 'true');
      if (opts.stepUp?.max_age !== undefined) q.set('max_age', String(opts.stepUp.max_age));
      const started = await h.get(`/v1/auth/login?${q}`);
      if (started.status !== 200) throw new Error(`login start: ${started.status} ${JSON.stringify(started.body)}`);
      const back = await (opts.browser ?? new Browser()).authorize(started.body.url, REDIRECT, { email, password: account.password, ...(opts.otp && { otp: opts.otp }) });
      sync();
      const done = await h.post('/v1/auth/callback', { state: back.get('state'), code: back.get('code'), ...(back.get('iss') && { iss: back.get('iss') }) });
      if (done.status !== 200) throw Object.assign(new Error(`callback: ${done.status} ${JSON.stringify(done.body)}`), { response: done });
      return { token: done.body.session_token as string, url: new URL(started.body.url), identity: done.body.identity };
    },
    async close() {
      await h.close();
      await receiver.close();
      await idp.close();
    },
  };
}
