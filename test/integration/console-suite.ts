// A console browser suite over the run's store: a server whose human SSO lists the console's
// callback, one Chromium, and the contexts the suite's tests open (apart from console-harness.ts,
// which tests against other servers, e.g. `portcullis dev`, use without following the store).
import type { Browser, BrowserContext } from 'playwright-core';
import { startHumanHarness } from './human-harness.ts';
import type { HumanHarness } from './human-harness.ts';
import { freePort } from '../../src/common/net.ts';
import { ACCESS, ACCOUNTS, launch } from './console-harness.ts';

/** A server whose human SSO lists the console's callback, a Chromium, and the contexts a suite opens in it. */
export interface ConsoleSuite {
  h: HumanHarness;
  browser: Browser;
  /** A new browser context at the suite's viewport, closed with the suite. */
  context(): Promise<BrowserContext>;
  close(): Promise<void>;
}

/** Starts a console suite: the test people (ACCOUNTS, ACCESS), `policies`, `identities` declared. */
export async function startConsoleSuite(o: { policies: string; identities: string; viewport: { width: number; height: number } }): Promise<ConsoleSuite> {
  const port = await freePort();
  const h = await startHumanHarness({
    accounts: ACCOUNTS,
    access: ACCESS,
    policies: o.policies,
    redirectUris: [`http://127.0.0.1:${port}/console/callback`, 'http://127.0.0.1/callback'],
    harness: { port, identities: o.identities },
  });
  const browser = await launch();
  const contexts: BrowserContext[] = [];
  return {
    h,
    browser,
    async context() {
      const c = await browser.newContext({ viewport: o.viewport });
      contexts.push(c);
      return c;
    },
    async close() {
      for (const c of contexts) await c.close().catch(() => {});
      await browser.close();
      await h.close();
    },
  };
}
