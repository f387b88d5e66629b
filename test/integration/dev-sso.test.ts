// The dev server's OpenID Provider end to end: `portcullis dev` as a child process, then
// `portcullis login --sso` (code + PKCE, the CLI's loopback redirect) and `portcullis login --sso
// --device` as child processes, with this test acting as the person at the dev sign-in page (a
// cookie-keeping HTTP client submitting its forms); the web console's interface (start with
// `<server>/console/callback`, complete with state + code) over HTTP and the console's own sign-in;
// every attempt audited.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Browser } from '../access/idp.ts';

const CLI = join(import.meta.dirname, '..', '..', 'bin', 'portcullis.js');

interface Proc {
  out: () => string;
  exited: Promise<number | null>;
  proc: ChildProcess;
}

/** Every process this file started (stopped in `after`, whatever the tests did). */
const started: ChildProcess[] = [];

function run(args: string[], env: NodeJS.ProcessEnv): Proc {
  const proc = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  started.push(proc);
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  return { out: () => out, exited, proc };
}

/** Polls the output until `re` matches (generous deadline: a loaded machine starts slowly). */
async function waitFor(p: Proc, re: RegExp, ms = 180_000): Promise<RegExpExecArray> {
  const deadline = Date.now() + ms;
  for (;;) {
    const m = re.exec(p.out());
    if (m) return m;
    if (p.proc.exitCode !== null || Date.now() > deadline) throw new Error(`no ${re} in: ${p.out()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The forms of a page: action and fields (hidden and submitted inputs with a value). */
function forms(html: string, base: string): { action: string; fields: Record<string, string> }[] {
  return [...html.matchAll(/<form[^>]*method="post"[^>]*action="([^"]+)"[^>]*>([\s\S]*?)<\/form>/g)].map((m) => {
    const fields: Record<string, string> = {};
    for (const i of m[2]!.matchAll(/<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"/g)) fields[i[1]!] = i[2]!.replaceAll('&#64;', '@');
    return { action: new URL(m[1]!.replaceAll('&amp;', '&'), base).toString(), fields };
  });
}

/**
 * The person at the provider: follows redirects from `url`; on the dev sign-in page signs in as
 * `email` (its button, or typed into the form with `typed`; ticking the pretend second factor if
 * `mfa`); other pages' forms (the device code
 * confirmation) are submitted as they are. Stops at a redirect starting with `stopAt` (returned),
 * or at a page without forms (its text returned).
 */
async function signIn(browser: Browser, url: string, email: string, o: { stopAt?: string; mfa?: boolean; typed?: boolean } = {}): Promise<{ redirect?: URL; page?: string }> {
  let next: { url: string; form?: Record<string, string> } = { url };
  const pages: string[] = [];
  for (let i = 0; i < 30; i++) {
    if (o.stopAt && next.url.startsWith(o.stopAt)) return { redirect: new URL(next.url) };
    const r = await browser.request(next.url, next.form ? { form: next.form } : {});
    if (r.location) {
      next = { url: r.location };
      continue;
    }
    pages.push(`${r.status} ${next.url}`);
    assert.ok(r.status === 200, `${r.status} at ${next.url}: ${r.body.slice(0, 300)}`);
    const found = forms(r.body, next.url);
    if (/\/interaction\//.test(next.url)) {
      assert.match(r.body, /Development only/, 'the sign-in page says it is dev-only');
      // A button per dev user (a hidden email), or the form to type one into (empty unless hinted).
      const mine = found.find((f) => f.fields.email === (o.typed ? '' : email));
      assert.ok(mine, o.typed ? 'the page has a form to type an e-mail into' : `${email} is listed on the dev sign-in page`);
      next = { url: mine.action, form: { email, ...(o.mfa && { mfa: 'on' }) } };
      continue;
    }
    const chosen = found.find((f) => !('abort' in f.fields));
    if (!chosen) return { page: r.body };
    next = { url: chosen.action, form: chosen.fields };
  }
  throw new Error(`sign-in did not finish: ${pages.join(', ')}`);
}

describe('the dev server signs people in through its own OpenID Provider', () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let dev: Proc;
  let url: string;
  let issuer: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pcx-devsso-'));
    env = { ...process.env, PORTCULLIS_HOME: join(dir, 'home'), PORTCULLIS_DEV_DATA: join(dir, 'dev'), CI: 'true' };
    for (const k of ['PORTCULLIS_TOKEN', 'PORTCULLIS_ADDR', 'PORTCULLIS_DEBUG']) delete env[k];
    dev = run(['dev', '--port', '0'], env);
    url = (await waitFor(dev, /Portcullis dev server on (http:\/\/127\.0\.0\.1:\d+)/))[1]!;
    issuer = (await waitFor(dev, /dev OpenID Provider on (http:\/\/127\.0\.0\.1:\d+)/))[1]!;
    env.PORTCULLIS_ADDR = url;
  });
  after(async () => {
    for (const p of started) if (p !== dev?.proc && p.exitCode === null && p.signalCode === null) p.kill('SIGTERM');
    if (dev?.proc.exitCode === null) {
      dev.proc.kill('SIGINT');
      await dev.exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  const SLOW = { timeout: 300_000 };

  it('the provider publishes its metadata and the dev signing key', async () => {
    const meta = (await (await fetch(`${issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    assert.equal(meta.issuer, issuer);
    assert.ok((meta.code_challenge_methods_supported as string[]).includes('S256'));
    assert.ok(typeof meta.device_authorization_endpoint === 'string');
    const jwks = (await (await fetch(String(meta.jwks_uri))).json()) as { keys: { kty: string; crv: string; d?: string }[] };
    assert.deepEqual(jwks.keys.map((k) => `${k.kty}/${k.crv}`), ['OKP/Ed25519']);
    assert.ok(jwks.keys.every((k) => k.d === undefined), 'no private part published');
  });

  it('`portcullis login --sso`: code + PKCE through the dev sign-in page, back to the CLI on loopback', SLOW, async () => {
    const login = run(['login', '--sso'], env);
    const start = new URL((await waitFor(login, /Open this URL to sign in:\s+(\S+)/))[1]!);
    assert.equal(start.origin, issuer);
    assert.equal(start.searchParams.get('code_challenge_method'), 'S256');
    assert.equal(start.searchParams.get('client_id'), 'portcullis-dev');
    const back = await signIn(new Browser(), start.toString(), 'alice@example.com', { stopAt: start.searchParams.get('redirect_uri')! });
    assert.ok(back.redirect && back.redirect.pathname === '/callback' && back.redirect.searchParams.has('code'), String(back.redirect));
    // The browser arrives at the CLI's listener, which completes the login with the broker.
    const page = await (await fetch(back.redirect)).text();
    assert.match(page, /Signed in/);
    assert.equal(await login.exited, 0, login.out());
    assert.match(login.out(), /logged in as user:alice@example\.com/);
    const who = run(['authorize', 'db.select', 'Database::orders', '--reason', 'x', '--json'], env);
    await who.exited;
    assert.match(who.out(), /"decision"/, who.out());
  });

  it('`portcullis login --sso --device`: the code entered on the provider\'s device page, the CLI polling', SLOW, async () => {
    const login = run(['login', '--sso', '--device'], env);
    const m = await waitFor(login, /open (\S+) and enter the code (\S+)\n\(or open (\S+)\)/);
    assert.ok(m[1]!.startsWith(issuer));
    const done = await signIn(new Browser(), m[3]!, 'bob@example.com', { typed: true });
    assert.match(done.page ?? '', /Sign-in Success/);
    assert.equal(await login.exited, 0, login.out());
    assert.match(login.out(), /logged in as user:bob@example\.com/);
  });

  it('the web console\'s interface: start with <server>/console/callback and trust dev-op, complete with state and code', SLOW, async () => {
    const redirect = `${url}/console/callback`;
    const started = (await (await fetch(`${url}/v1/auth/login?${new URLSearchParams({ trust: 'dev-op', redirect_uri: redirect })}`)).json()) as { url: string; state: string; trust: string };
    assert.equal(started.trust, 'dev-op');
    const back = await signIn(new Browser(), started.url, 'carol@example.com', { stopAt: redirect, mfa: true });
    const q = back.redirect!.searchParams;
    assert.equal(q.get('state'), started.state);
    const res = await fetch(`${url}/v1/auth/callback`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ trust: started.trust, state: q.get('state'), code: q.get('code'), iss: q.get('iss') }) });
    const body = (await res.json()) as { session_token: string; identity: { id: string } };
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(body.identity.id, 'user:carol@example.com');
    // The same state twice: refused (a state completes one login).
    const again = await fetch(`${url}/v1/auth/callback`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ trust: 'dev-op', state: q.get('state'), code: q.get('code') }) });
    assert.equal(again.status, 401);
    // An address not among the dev users cannot sign in.
    const other = await fetch(`${url}/v1/auth/login?${new URLSearchParams({ trust: 'dev-op', redirect_uri: redirect })}`).then((r) => r.json()) as { url: string };
    await assert.rejects(signIn(new Browser(), other.url, 'mallory@example.com', { stopAt: redirect }), /is listed on the dev sign-in page/);
    await assert.rejects(signIn(new Browser(), other.url, 'mallory@example.com', { stopAt: redirect, typed: true }), /400 at .*Not a dev user/s);
  });

  it('the web console (/console/login → the dev provider → /console/callback) signs a person in', SLOW, async () => {
    const browser = new Browser();
    const back = await signIn(browser, `${url}/console/login`, 'alice@example.com', { stopAt: `${url}/console/callback` });
    const done = await browser.request(back.redirect!.toString());
    assert.equal(done.status, 303, done.body);
    assert.equal(done.location, `${url}/console/`, 'signed in (no error code)');
  });

  it('every attempt is in the authn stream: the three sign-ins through dev-op and the refused replay', SLOW, async () => {
    const admin = run(['dev', 'token', '--user', 'admin@example.com'], env);
    assert.equal(await admin.exited, 0);
    const token = admin.out().trim();
    const res = await fetch(`${url}/v1/audit/authn?limit=50`, { headers: { authorization: `Bearer ${await session(token)}` } });
    const text = await res.text();
    assert.equal(res.status, 200, text);
    for (const who of ['alice', 'bob', 'carol']) assert.match(text, new RegExp(`user:${who}@example\\.com[^\\n]*`), who);
    assert.match(text, /dev-op/);
    assert.match(text, /"actor":"user:carol@example\.com","payload":\{[^}]*"mfa":true[^}]*"trust":"dev-op"/, 'the pretend second factor counts as MFA');
    assert.match(text, /invalid_state/);
  });

  async function session(idToken: string): Promise<string> {
    const r = await fetch(`${url}/v1/auth/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: idToken }) });
    const b = (await r.json()) as { session_token: string };
    assert.equal(r.status, 200, JSON.stringify(b));
    return b.session_token;
  }
});
