// The web console (#15) in real headless Chromium against a real server and a real OpenID provider:
// sign-in through the provider, two approvers in two browser contexts, a viewer who receives no
// admin data, the CSP and cookie flags, the cookie refused without the console's proof of origin,
// axe-core, and the screenshots linked from the README.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { Browser as IdpBrowser } from '../access/idp.ts';
import { startHumanHarness } from './human-harness.ts';
import type { HumanHarness } from './human-harness.ts';
import { freePort } from '../../src/common/net.ts';
import { ACCESS, ACCOUNTS, FLEET, POLICIES, consolePage, launch, seriousViolations, shot, signIn, skip, until } from './console-harness.ts';
import type { Seen } from './console-harness.ts';
import { startConsoleSuite } from './console-suite.ts';
import type { ConsoleSuite } from './console-suite.ts';

describe('the web console in headless Chromium', { skip }, () => {
  let suite: ConsoleSuite;
  let h: HumanHarness;
  const context = () => suite.context();

  before(async () => {
    suite = await startConsoleSuite({ policies: POLICIES, identities: FLEET, viewport: { width: 1280, height: 800 } });
    h = suite.h;
  });
  after(() => suite?.close());

  it('signs in through the OpenID provider into a __Host- cookie: HttpOnly, Secure, SameSite=Strict; strict CSP; nothing in storage', async () => {
    const c = await context();
    const page = await consolePage(c);
    const shell = await page.goto(`${h.url}/console/`);
    const headers = shell!.headers();
    const csp = headers['content-security-policy'] ?? '';
    for (const d of ["default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'"]) assert.ok(csp.includes(d), `CSP has ${d}: ${csp}`);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/);
    assert.equal(headers['x-content-type-options'], 'nosniff');
    assert.equal(headers['referrer-policy'], 'no-referrer');
    await shot(page, 'sign-in');
    assert.deepEqual(await seriousViolations(page), [], 'the sign-in page');

    await signIn(page, h, 'bob@example.com', 'bob-pw');
    const cookies = await c.cookies(h.url);
    const session = cookies.find((x) => x.name === '__Host-portcullis-session');
    assert.ok(session, `session cookie set: ${cookies.map((x) => x.name).join(', ')}`);
    assert.equal(session.httpOnly, true);
    assert.equal(session.secure, true);
    assert.equal(session.sameSite, 'Strict');
    assert.equal(session.path, '/');
    assert.equal(session.domain, '127.0.0.1', 'host-only');
    assert.ok(!cookies.some((x) => x.name === '__Host-portcullis-login'), 'the sign-in state cookie is gone');
    const stored = await page.evaluate(() => {
      const g = globalThis as unknown as { localStorage: object; sessionStorage: object };
      return JSON.stringify({ ...g.localStorage }) + JSON.stringify({ ...g.sessionStorage });
    });
    assert.equal(stored, '{}{}', 'no token in web storage');
    // The cookie is the session: the API answers the console's own requests with it.
    const me = (await page.evaluate(async () => (await fetch('/v1/auth/session', { headers: { 'x-portcullis-console': '1' } })).json())) as { identity: { id: string }; authn: { trust: string } };
    assert.equal(me.identity.id, 'user:bob@example.com');
    assert.equal(me.authn.trust, 'sso');
  });

  it('a callback whose state this browser did not start is refused (login CSRF)', async () => {
    // The attacker starts a console sign-in as themself and stops at the provider's redirect back…
    const started = await fetch(`${h.url}/console/login`, { redirect: 'manual' });
    assert.equal(started.status, 303);
    h.sync();
    const back = await new IdpBrowser().authorize(started.headers.get('location')!, `${h.url}/console/callback`, { email: 'dave@example.com', password: 'dave-pw' });
    assert.ok(back.get('code'));
    const url = `${h.url}/console/callback?${back}`;
    // …and lures the victim's browser to it: no session, the victim is told to sign in again.
    const victim = await context();
    const v = await victim.newPage();
    // The cookie is checked as soon as the callback has answered (a session set there is the bug),
    // then the page's explanation.
    await v.goto(url);
    assert.ok(!(await victim.cookies(h.url)).some((x) => x.name === '__Host-portcullis-session'), 'no session from a callback this browser did not start');
    await v.getByRole('alert').filter({ hasText: 'did not start in this browser' }).waitFor({ timeout: 90_000 });
    // A forged state without the cookie either.
    await v.goto(`${h.url}/console/callback?state=forged-state&code=x`);
    assert.ok(!(await victim.cookies(h.url)).some((x) => x.name === '__Host-portcullis-session'));
    await v.getByRole('alert').filter({ hasText: 'did not start in this browser' }).waitFor({ timeout: 90_000 });
  });

  it('a request needing two approvers is approved by two people in two browser contexts, and the grant appears', async () => {
    const alice = await h.login('alice@example.com');
    const created = await h.post('/v1/access-requests', { role: 'orders-writer', duration: '1h', reason: 'backfill payments', ticket: 'INC-7' }, alice.token);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.id as string;
    assert.equal(created.body.required_approvals, 2, JSON.stringify(created.body));

    const approveAs = async (email: string, password: string, comment: string, expectBefore: string) => {
      const c = await context();
      const page = await consolePage(c);
      await signIn(page, h, email, password);
      const card = page.locator(`li[data-request="${id}"]`);
      await card.waitFor({ timeout: 90_000 });
      assert.match(await card.textContent() ?? '', /alice@example\.com/);
      assert.match(await card.textContent() ?? '', /backfill payments \(INC-7\)/);
      assert.match(await card.textContent() ?? '', /orders-writer-two-dbas/, 'the matching rule');
      assert.equal(await card.getByTestId('approvals').textContent().then((t) => t?.split(' (')[0]), expectBefore);
      if (expectBefore === '0 of 2') {
        await shot(page, 'approvals');
        assert.deepEqual(await seriousViolations(page), [], 'the approvals page');
      }
      await card.getByLabel('Comment').fill(comment);
      await card.getByRole('button', { name: 'Approve' }).click();
      return { c, page, card };
    };

    const bob = await approveAs('bob@example.com', 'bob-pw', 'looks right', '0 of 2');
    // After bob: still pending (one of two); his inbox no longer offers it to him? It does until decided — check the count.
    await until(async () => (await h.get(`/v1/access-requests/${id}`, alice.token)).body.reviews.length === 1, 'the first approval');
    const carol = await approveAs('carol@example.com', 'carol-pw', 'ok for INC-7', '1 of 2');
    const done = await until(async () => {
      const r = await h.get(`/v1/access-requests/${id}`, alice.token);
      return r.body.status === 'approved' && r.body.grant_id ? r.body : undefined;
    }, 'the request approved');
    assert.deepEqual((done.reviews as { reviewer: string; comment: string }[]).map((r) => [r.reviewer, r.comment]), [['user:bob@example.com', 'looks right'], ['user:carol@example.com', 'ok for INC-7']]);
    // The approved request leaves carol's inbox; the grant is in force for alice.
    await until(async () => (await carol.page.locator(`li[data-request="${id}"]`).count()) === 0, 'the inbox to drop the decided request');
    const grants = await h.get('/v1/grants?active=true', alice.token);
    assert.ok((grants.body.grants as { id: string }[]).some((g) => g.id === done.grant_id), JSON.stringify(grants.body));
    // …and the identity page shows it to an approver.
    await bob.page.goto(`${h.url}/console/#/identity/${encodeURIComponent('user:alice@example.com')}`);
    await bob.page.locator('#grants + ul li').first().waitFor({ timeout: 90_000 });
    assert.match(await bob.page.locator('section[aria-labelledby="grants"]').textContent() ?? '', /orders-writer/);
    await shot(bob.page, 'identity');
    assert.deepEqual(await seriousViolations(bob.page), [], 'the identity page');
  });

  it('a break-glass in progress shows its timer to a named revoker, who ends it now', async () => {
    const dave = await h.login('dave@example.com');
    const started = await h.post('/v1/break-glass', { target: 'Database::"orders"', reason: 'orders down, INC-9', duration: '20m' }, dave.token);
    assert.equal(started.status, 201, JSON.stringify(started.body));
    const gid = started.body.grant.id as string;
    const c = await context();
    const page = await consolePage(c);
    await signIn(page, h, 'bob@example.com', 'bob-pw');
    const card = page.locator(`li[data-grant="${gid}"]`);
    await card.waitFor({ timeout: 90_000 });
    assert.match((await card.textContent()) ?? '', /user:dave@example\.com/);
    assert.match((await card.textContent()) ?? '', /orders down, INC-9/);
    const timer = card.getByTestId('timer');
    const first = await timer.textContent();
    assert.match(first ?? '', /^(19|20):[0-5][0-9]$/);
    await until(async () => (await timer.textContent()) !== first, 'the timer to tick');
    await shot(page, 'break-glass');
    assert.deepEqual(await seriousViolations(page), [], 'the approvals page with a break-glass');
    await card.getByRole('button', { name: 'End now' }).click();
    await until(async () => (await card.count()) === 0, 'the ended break-glass to leave the page');
    const grants = await h.get('/v1/grants', dave.token);
    const g = (grants.body.grants as { id: string; status: string; ended_by: string }[]).find((x) => x.id === gid);
    assert.equal(g?.status, 'ended');
    assert.equal(g?.ended_by, 'user:bob@example.com');
  });

  it('the inventory pages, searches and filters on the server', async () => {
    const c = await context();
    const seen: Seen[] = [];
    const page = await consolePage(c, seen);
    await signIn(page, h, 'carol@example.com', 'carol-pw');
    await page.getByRole('link', { name: 'Inventory' }).click();
    const count = page.getByTestId('count');
    await until(async () => /^1–50 of \d+$/.test((await count.textContent()) ?? ''), 'the first page');
    await page.getByRole('button', { name: 'Next' }).click();
    await until(async () => /^51–100 of /.test((await count.textContent()) ?? ''), 'the second page');
    await until(() => seen.some((s) => /limit=50&after=/.test(s.url)), 'the next page asked of the server');
    await page.getByLabel('Search').fill('svc-11');
    await page.getByLabel('Environment').fill('prod');
    await page.getByRole('button', { name: 'Apply' }).click();
    await until(async () => (await count.textContent()) === '1–5 of 5', 'the filtered page (svc-111, 113, 115, 117, 119)');
    const last = await until(() => seen.find((s) => /^\/v1\/identities\?.*q=svc-11/.test(s.url)), 'the filtered call');
    assert.match(last.url, /environment=prod/);
    assert.equal((JSON.parse(last.body).identities as unknown[]).length, 5, 'the server sent only the page');
    await page.getByLabel('Search').fill('');
    await page.getByLabel('Environment').fill('');
    await page.getByRole('button', { name: 'Apply' }).click();
    await until(async () => /^1–50 of /.test((await count.textContent()) ?? ''), 'the unfiltered first page');
    await shot(page, 'inventory');
    assert.deepEqual(await seriousViolations(page), [], 'the inventory page');
  });

  it('a viewer without rights receives no admin data (checked on the API responses the page got)', async () => {
    const c = await context();
    const seen: Seen[] = [];
    const page = await consolePage(c, seen);
    await signIn(page, h, 'dave@example.com', 'dave-pw');
    await page.locator('#inbox ~ p.empty, section[aria-labelledby="inbox"] p.empty').first().waitFor({ timeout: 90_000 });
    await page.getByRole('link', { name: 'Inventory' }).click();
    await page.getByRole('status').filter({ hasText: 'You may not see the inventory.' }).waitFor({ timeout: 90_000 });
    await page.goto(`${h.url}/console/#/identity/${encodeURIComponent('workload:fleet/svc-001')}`);
    await page.getByRole('status').filter({ hasText: 'You may not see this identity.' }).waitFor({ timeout: 90_000 });
    await until(() => seen.some((s) => s.url.startsWith('/v1/identities/')), 'the identity call');
    const inventory = seen.filter((s) => s.url.startsWith('/v1/identities'));
    assert.ok(inventory.length >= 2);
    for (const s of inventory) assert.ok(s.status === 403 || s.status === 404, `${s.url} answered ${s.status}: ${s.body.slice(0, 200)}`);
    const inbox = seen.find((s) => s.url.startsWith('/v1/access-requests?reviewable=true'));
    assert.equal(inbox?.status, 200);
    assert.deepEqual(JSON.parse(inbox!.body).requests, [], 'nothing to review');
    // Nor anyone else's grants or break-glass reviews (docs/access.md "Who reads what"): alice's
    // grant and dave's own break-glass exist, only his own may reach his page.
    const glass = await until(() => seen.find((s) => s.url.startsWith('/v1/grants?all=true')), 'the break-glass call');
    assert.equal(glass.status, 200);
    const grants = JSON.parse(glass.body).grants as { identity_id: string }[];
    assert.deepEqual(grants.filter((g) => g.identity_id !== 'user:dave@example.com'), [], 'no one else\'s grants');
    const due = await until(() => seen.find((s) => s.url.startsWith('/v1/break-glass/reviews')), 'the reviews call');
    assert.equal(due.status, 200);
    assert.deepEqual((JSON.parse(due.body).reviews as { user: string }[]).filter((v) => v.user !== 'user:dave@example.com'), [], 'no one else\'s reviews');
    const dave = await h.login('dave@example.com');
    const all = await h.get('/v1/access-requests?mine=false', dave.token);
    assert.deepEqual((all.body.requests as { requester: string }[]).filter((x) => x.requester !== 'user:dave@example.com'), [], 'no one else\'s requests');
    const theirs = await h.get('/v1/grants?all=true', (await h.login('carol@example.com')).token);
    assert.ok((theirs.body.grants as { identity_id: string }[]).some((g) => g.identity_id === 'user:alice@example.com'), 'positive control: an approver sees alice\'s grant');
    for (const s of seen) assert.doesNotMatch(s.body, /team:payments|team:search|fleet service|svc-0(?!01)/, `${s.url} carried inventory data`);
    assert.deepEqual(await seriousViolations(page), [], 'the viewer pages');
  });

  it('the cookie is refused without the console header or from another site, on every route; sign-out revokes the session', async () => {
    const c = await context();
    const page = await consolePage(c);
    await signIn(page, h, 'carol@example.com', 'carol-pw');
    const value = (await c.cookies(h.url)).find((x) => x.name === '__Host-portcullis-session')!.value;
    const cookie = `__Host-portcullis-session=${value}`;
    const call = (path: string, headers: Record<string, string>, method = 'GET', body?: unknown) =>
      fetch(h.url + path, { method, headers: { cookie, ...headers, ...(body !== undefined && { 'content-type': 'application/json' }) }, ...(body !== undefined && { body: JSON.stringify(body) }) }).then(async (r) => ({ status: r.status, type: r.headers.get('content-type'), body: (await r.json()) as Record<string, unknown> }));
    // Positive control: the console's own request.
    assert.equal((await call('/v1/identities?limit=1', { 'x-portcullis-console': '1', 'sec-fetch-site': 'same-origin' })).status, 200);
    for (const [path, method, body] of [['/v1/identities?limit=1', 'GET', undefined], ['/v1/access-requests', 'POST', { role: 'orders-writer', duration: '1h', reason: 'ride' }], ['/v1/sessions/revoke', 'POST', { identity: 'user:bob@example.com' }]] as const) {
      for (const headers of [{}, { 'sec-fetch-site': 'same-origin' }, { 'x-portcullis-console': '1' }, { 'x-portcullis-console': '1', 'sec-fetch-site': 'cross-site' }, { 'x-portcullis-console': '1', 'sec-fetch-site': 'same-site' }] as Record<string, string>[]) {
        const r = await call(path, headers, method, body);
        assert.equal(r.status, 403, `${method} ${path} with ${JSON.stringify(headers)}: ${JSON.stringify(r.body)}`);
        assert.match(r.type ?? '', /^application\/problem\+json/);
        assert.equal(r.body.code, 'console_cookie_refused');
      }
    }
    // A real page of another site (localhost is not 127.0.0.1): the console's header makes the
    // request need a CORS preflight, which the API never grants, so nothing is sent or read.
    const other = await c.newPage();
    const port = new URL(h.url).port;
    await other.goto(`http://localhost:${port}/console/`);
    const cross = await other.evaluate(async (u) => {
      try {
        const r = await fetch(`${u}/v1/auth/session`, { credentials: 'include', headers: { 'x-portcullis-console': '1' } });
        return `read ${r.status}`;
      } catch (err) {
        return String(err);
      }
    }, h.url);
    assert.match(cross, /^TypeError/, 'no answer across sites');

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('link', { name: 'Sign in' }).waitFor({ timeout: 90_000 });
    assert.ok(!(await c.cookies(h.url)).some((x) => x.name === '__Host-portcullis-session'), 'the cookie is cleared');
    const after = await call('/v1/auth/session', { 'x-portcullis-console': '1', 'sec-fetch-site': 'same-origin' });
    assert.equal(after.status, 401, 'the Portcullis session itself is revoked');
  });

  it('serves only its allow-listed files, with content types, ETags and compression; first load under 200 KB of compressed JavaScript', async () => {
    for (const p of ['/console/../package.json', '/console/vendor/../../package.json', '/console/%2e%2e/package.json', '/console/pages/../../../README.md', '/console/vendor/preact.js', '/console/api.ts', '/console/index.html%00']) {
      const r = await fetch(h.url + p);
      assert.equal(r.status, 404, p);
    }
    const js = await fetch(`${h.url}/console/app.js`, { headers: { 'accept-encoding': 'gzip' } });
    assert.equal(js.status, 200);
    assert.equal(js.headers.get('content-type'), 'text/javascript; charset=utf-8');
    assert.equal(js.headers.get('x-content-type-options'), 'nosniff');
    const etag = js.headers.get('etag')!;
    assert.match(etag, /^"[A-Za-z0-9_-]{20,}"$/);
    assert.equal((await fetch(`${h.url}/console/app.js`, { headers: { 'if-none-match': etag } })).status, 304);
    assert.equal((await fetch(`${h.url}/console/console.css`)).headers.get('content-type'), 'text/css; charset=utf-8');
    // The router decodes the path: an encoded spelling is the console too, and gets its headers
    // (no CSP, no frame-ancestors there would let a same-site page frame the signed-in console).
    for (const p of ['/%63onsole/', '/%63onsole/app.js', '/c%6fnsole/replay.html', '/console/%61pp.js']) {
      const r = await fetch(h.url + p);
      assert.equal(r.status, 200, p);
      assert.match(r.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/, `${p}: CSP`);
      assert.equal(r.headers.get('x-frame-options'), 'DENY', `${p}: X-Frame-Options`);
      assert.equal(r.headers.get('x-content-type-options'), 'nosniff', `${p}: nosniff`);
    }
    assert.match((await fetch(`${h.url}/c%6fnsole/replay.html`)).headers.get('content-security-policy')!, /'wasm-unsafe-eval'/, 'the replay page, however spelled, gets its own CSP');
    assert.doesNotMatch((await fetch(`${h.url}/%63onsole/`)).headers.get('content-security-policy')!, /'wasm-unsafe-eval'/);

    // What a first visit downloads (the browser's own count of compressed bytes).
    const c = await context();
    const page = await c.newPage();
    let compressed = 0;
    const pending: Promise<void>[] = [];
    page.on('requestfinished', (req) => {
      if (req.resourceType() !== 'script') return;
      pending.push(req.sizes().then((s) => void (compressed += s.responseBodySize)));
    });
    await page.goto(`${h.url}/console/`);
    await page.getByRole('link', { name: 'Sign in' }).waitFor({ timeout: 90_000 });
    await Promise.all(pending);
    assert.ok(compressed > 5_000, `scripts were counted (${compressed} B)`);
    assert.ok(compressed <= 200 * 1024, `first load ${compressed} B of compressed JavaScript`);
    console.log(`# console first load: ${compressed} B of compressed JavaScript`);
  });
});

describe('the web console over TLS', { skip }, () => {
  let h: HumanHarness;
  let browser: Browser;
  let tmp: string;

  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'pcx-console-tls-'));
    // A self-signed certificate for 127.0.0.1 (the browser context is told to accept it).
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(tmp, 'key.pem'), '-out', join(tmp, 'cert.pem'), '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const port = await freePort();
    h = await startHumanHarness({
      accounts: ACCOUNTS,
      access: ACCESS,
      policies: POLICIES,
      redirectUris: [`https://127.0.0.1:${port}/console/callback`],
      harness: { port, listen: `tls: { cert: ${join(tmp, 'cert.pem')}, key: ${join(tmp, 'key.pem')} }` },
    });
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
    await h?.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('signs in over https: the session cookie is Secure, HttpOnly, SameSite=Strict, and the CSP is served', async () => {
    assert.match(h.url, /^https:/);
    const c = await browser.newContext({ ignoreHTTPSErrors: true });
    try {
      const page = await consolePage(c);
      const shell = await page.goto(`${h.url}/console/`);
      assert.match(shell!.headers()['content-security-policy'] ?? '', /frame-ancestors 'none'/);
      await signIn(page, h, 'bob@example.com', 'bob-pw');
      const session = (await c.cookies(h.url)).find((x) => x.name === '__Host-portcullis-session');
      assert.ok(session);
      assert.equal(session.secure, true);
      assert.equal(session.httpOnly, true);
      assert.equal(session.sameSite, 'Strict');
      await page.getByRole('link', { name: 'Inventory' }).click();
      await until(async () => /of \d+$/.test((await page.getByTestId('count').textContent()) ?? ''), 'the inventory over https');
    } finally {
      await c.close();
    }
  });
});
