// Shared by the console's browser tests (#15): the test accounts, policies and access rules, headless
// Chromium, a page that records the API responses it received, sign-in through the provider's form,
// axe-core, and the screenshots linked from the README.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import type { Account } from '../access/idp.ts';
import type { HumanHarness } from './human-harness.ts';
import { missingDependency } from '../ci.ts';

export const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
export const skip = existsSync(CHROMIUM) ? undefined : missingDependency('chromium', 'apt-get install chromium');
const SHOTS = join(import.meta.dirname, '..', '..', 'docs', 'console');
const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

export const ACCOUNTS: Account[] = [
  { sub: 'u-alice', email: 'alice@example.com', password: 'alice-pw', otp: '111111', groups: ['engineering'] },
  { sub: 'u-bob', email: 'bob@example.com', password: 'bob-pw', otp: '222222', groups: ['dba'] },
  { sub: 'u-carol', email: 'carol@example.com', password: 'carol-pw', otp: '333333', groups: ['dba'] },
  { sub: 'u-dave', email: 'dave@example.com', password: 'dave-pw', otp: '444444', groups: ['engineering'] },
];

export const POLICIES = `
@id("users-request-access")
permit (principal is User, action == Action::"access.request", resource);

@id("dba-approves-prod")
permit (principal in Team::"dba", action == Action::"access.approve", resource is Database)
when { resource.environment == "prod" };

@id("dba-approves-roles")
permit (principal in Team::"dba", action == Action::"access.approve", resource == AccessRequest::"role:orders-writer");

@id("dba-reads-inventory")
permit (principal in Team::"dba", action == Action::"identity.read", resource);

@id("engineers-break-glass")
permit (principal in Team::"engineering", action == Action::"breakglass.use", resource == Database::"orders");

@id("role-orders-writer")
permit (principal in Role::"orders-writer", action == Action::"db.insert", resource in Database::"orders");
`;

export const ACCESS = `  rules:
    - name: orders-writer-two-dbas
      match: { role: orders-writer }
      approvals: 2
      max_duration: 4h
      reviewers: [user:bob@example.com, user:carol@example.com]
  break_glass:
    max_duration: 30m
    revokers: [user:bob@example.com]`;

/** 120 declared workloads: more than two pages of the inventory. */
export const FLEET = Array.from({ length: 120 }, (_, i) => `  - { id: "workload:fleet/svc-${String(i).padStart(3, '0')}", kind: workload, owner: "team:${i % 3 === 0 ? 'payments' : 'search'}", purpose: "fleet service ${i}", boundary: application, environment: ${i % 2 ? 'prod' : 'staging'} }`).join('\n');

export async function launch(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: ARGS });
}

/** Polls `fn` until it returns a value that is not undefined/false (generous: a loaded 2-core machine). */
export async function until<T>(fn: () => Promise<T | undefined | false> | T | undefined | false, what: string, ms = 90_000): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v as T;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export interface Seen {
  url: string;
  status: number;
  body: string;
}

/** A page that records every API response it receives (what the page was given, not only what it drew). */
export async function consolePage(context: BrowserContext, seen: Seen[] = []): Promise<Page> {
  const page = await context.newPage();
  page.on('response', (r) => {
    const u = new URL(r.url());
    if (!u.pathname.startsWith('/v1/')) return;
    r.text().then(
      (body) => seen.push({ url: u.pathname + u.search, status: r.status(), body }),
      () => seen.push({ url: u.pathname + u.search, status: r.status(), body: '' }),
    );
  });
  return page;
}

/** Signs in through the console's button and the provider's login form; resolves when the console shows who. */
export async function signIn(page: Page, h: Pick<HumanHarness, 'url' | 'sync'>, email: string, password: string): Promise<void> {
  await page.goto(`${h.url}/console/`);
  await page.getByRole('link', { name: 'Sign in' }).click();
  await page.locator('input[name=email]').waitFor({ timeout: 90_000 });
  await page.fill('input[name=email]', email);
  await page.fill('input[name=password]', password);
  // The broker's test clock catches up with the provider's (which stamps the ID token in real time).
  h.sync();
  await page.click('button[type=submit]');
  await page
    .getByTestId('me')
    .filter({ hasText: `user:${email}` })
    .waitFor({ timeout: 90_000 })
    .catch(async (err: Error) => {
      throw new Error(`${err.message}\nat ${page.url()}: ${(await page.content()).slice(0, 1500)}`);
    });
}

/** axe-core in the page (evaluated over the DevTools protocol, so the page's CSP stays as served). */
export async function seriousViolations(page: Page): Promise<{ id: string; impact: string; nodes: number }[]> {
  await page.evaluate(AXE);
  const v = await page.evaluate(async () => {
    const g = globalThis as unknown as { document: unknown; axe: { run: (c: unknown, o: unknown) => Promise<{ violations: { id: string; impact: string; nodes: unknown[] }[] }> } };
    const r = await g.axe.run(g.document, { resultTypes: ['violations'] });
    return r.violations.map((x) => ({ id: x.id, impact: x.impact, nodes: x.nodes.length }));
  });
  return v.filter((x) => x.impact === 'serious' || x.impact === 'critical');
}

export async function shot(page: Page, name: string): Promise<void> {
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}
