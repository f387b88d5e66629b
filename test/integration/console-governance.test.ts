// The console's Policies and Governance pages (#15) in real headless Chromium against a real server:
// history and a diff, a validation error for bad Cedar, a what-if replay and a push; a review item
// decided from the page, accessible charts, a decision retried after step-up (MFA) through the
// provider; a viewer who receives no policy or governance data; the decisions aggregate needing
// governance.read AND audit.read; axe-core and the screenshots linked from the README.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { HumanHarness } from './human-harness.ts';
import { consolePage, seriousViolations, shot, signIn, skip, until } from './console-harness.ts';
import type { Seen } from './console-harness.ts';
import { startConsoleSuite } from './console-suite.ts';
import type { ConsoleSuite } from './console-suite.ts';

const POLICIES = `
@id("users-request-access")
permit (principal is User, action == Action::"access.request", resource);

@id("dba-governs-policies")
permit (principal in Team::"dba", action in [Action::"policy.read", Action::"policy.write", Action::"review.read", Action::"report.read"], resource);

@id("dba-reads-decisions")
permit (principal in Team::"dba", action in [Action::"governance.read", Action::"audit.read", Action::"identity.read"], resource);

@id("alice-reads-without-audit-or-write")
permit (principal == User::"user:alice@example.com", action in [Action::"governance.read", Action::"policy.read"], resource);
`;

/** Identities bob owns (his review items) and a team's. */
const OWNED = [
  '  - { id: "workload:pay/billing", kind: workload, owner: "user:bob@example.com", purpose: "billing runs", boundary: application, environment: prod }',
  '  - { id: "workload:pay/ledger", kind: workload, owner: "user:bob@example.com", purpose: "ledger sync", boundary: application, environment: prod }',
  '  - { id: "workload:search/indexer", kind: workload, owner: "team:search", purpose: "indexing", boundary: application, environment: prod }',
].join('\n');

const V2 = `@id("analytics-readers")
permit (principal in Team::"dba", action == Action::"db.select", resource == Database::"analytics");
`;

const STEP_UP = `@id("review-decisions-need-mfa")
@stepUp("mfa")
forbid (principal, action == Action::"review.decide", resource)
unless { context.authn.mfa };
`;

describe('the console Policies and Governance pages in headless Chromium', { skip }, () => {
  let suite: ConsoleSuite;
  let h: HumanHarness;
  let admin: string;
  const context = () => suite.context();

  before(async () => {
    suite = await startConsoleSuite({ policies: POLICIES, identities: OWNED, viewport: { width: 1280, height: 900 } });
    h = suite.h;
    admin = await h.admin();
    // A second version, so the history has two and a diff between them.
    const v2 = await h.put('/v1/policies', { files: [{ name: 'analytics.cedar', text: V2 }], reason: 'analytics readers for the DBAs' }, admin);
    assert.equal(v2.status, 200, JSON.stringify(v2.body));
    // Recorded decisions for the what-if: bob reads the inventory (allowed), dave is refused.
    const bob = await h.login('bob@example.com');
    for (let i = 0; i < 3; i++) assert.equal((await h.get('/v1/identities?limit=1', bob.token)).status, 200);
    const dave = await h.login('dave@example.com');
    assert.equal((await h.get('/v1/identities?limit=1', dave.token)).status, 403);
  });
  after(() => suite?.close());

  it('policies: the history, a diff between two versions, a validation error, a what-if replay, a push', async () => {
    const c = await context();
    const seen: Seen[] = [];
    const page = await consolePage(c, seen);
    await signIn(page, h, 'bob@example.com', 'bob-pw');
    await page.getByRole('link', { name: 'Policies' }).click();
    const history = page.getByTestId('history');
    await history.locator('tr[data-version="2"]').waitFor({ timeout: 90_000 });
    assert.equal(await history.locator('tbody tr').count(), 2);
    assert.match((await history.locator('tr[data-version="2"]').textContent()) ?? '', /analytics readers for the DBAs/);
    assert.match((await page.getByTestId('active').textContent()) ?? '', /v2/);

    // The diff v1 → v2 (the defaults: the version before the newest, and the newest).
    await page.getByRole('button', { name: 'Show the diff' }).click();
    const diff = page.getByTestId('diff');
    await diff.first().waitFor({ timeout: 90_000 });
    const added = await diff.locator('.add').allTextContents();
    assert.ok(added.some((l) => l.includes('@id("analytics-readers")')), added.join(''));
    assert.equal(await diff.locator('.del').count(), 0, 'v2 only adds');
    const one = await until(() => seen.find((s) => s.url === '/v1/policies/versions/1'), 'version 1 asked of the server');
    assert.equal(one.status, 200);
    assert.match(JSON.parse(one.body).files[0].text, /dba-governs-policies/, 'the page received the files of v1');

    // Bad Cedar: the server's validation error is shown.
    const editor = page.getByLabel('Cedar policies');
    await editor.fill('permit (principal, action, resource');
    await page.getByRole('button', { name: 'Validate' }).click();
    const invalid = page.getByTestId('invalid');
    await invalid.waitFor({ timeout: 90_000 });
    assert.match((await invalid.textContent()) ?? '', /^Invalid: /);
    const refused = await until(() => seen.find((s) => s.url === '/v1/policies' && s.status !== 200), 'the refused dry run');
    assert.equal(refused.status, 400, refused.body);
    assert.equal(await page.getByRole('button', { name: 'Push' }).isDisabled(), true, 'an invalid edit cannot be pushed');

    // A valid edit that forbids inventory reads: valid, and the what-if shows bob's reads flipping.
    await editor.fill(`${V2}\n@id("no-inventory-reads")\nforbid (principal, action == Action::"identity.read", resource);\n`);
    await page.getByRole('button', { name: 'Validate' }).click();
    await page.getByTestId('valid').waitFor({ timeout: 90_000 });
    assert.match((await page.getByTestId('valid').textContent()) ?? '', /no-inventory-reads/);
    await page.getByRole('button', { name: /What if/ }).click();
    const whatIf = page.getByTestId('whatif');
    await whatIf.waitFor({ timeout: 90_000 });
    const replay = JSON.parse((await until(() => seen.find((s) => s.url === '/v1/policies/replay' && s.status === 200), 'the replay call')).body);
    assert.ok(replay.flips.allow_to_deny >= 3, `bob's inventory reads flip: ${JSON.stringify(replay.flips)} ${JSON.stringify(replay.unreconstructable)}`);
    assert.equal(await page.getByTestId('flips').textContent(), String(replay.flips.allow_to_deny + replay.flips.deny_to_allow));
    assert.ok(replay.flipped.some((f: { identity: string; action: string }) => f.identity === 'user:bob@example.com' && f.action === 'identity.read'), JSON.stringify(replay.flipped));
    assert.match((await whatIf.textContent()) ?? '', /user:bob@example\.com/);
    await shot(page, 'policies');
    assert.deepEqual(await seriousViolations(page), [], 'the policies page');

    // Push a harmless edit: validated first, with a reason; the history shows v3.
    await editor.fill(`${V2}\n@id("analytics-readers-engineering")\npermit (principal in Team::"engineering", action == Action::"db.select", resource == Database::"analytics");\n`);
    await page.getByLabel('Reason for the change').fill('engineers read analytics too');
    await page.getByRole('button', { name: 'Validate' }).click();
    await page.getByTestId('valid').waitFor({ timeout: 90_000 });
    await page.getByRole('button', { name: 'Push' }).click();
    await page.getByTestId('pushed').filter({ hasText: 'Activated v3.' }).waitFor({ timeout: 90_000 });
    await history.locator('tr[data-version="3"]').waitFor({ timeout: 90_000 });
    const active = await h.get('/v1/policies', admin);
    assert.equal(active.body.version, 3);
    assert.equal(active.body.actor, 'user:bob@example.com');
  });

  it('policies: a reader who may not write is not offered Push, and a what-if without audit.read is refused', async () => {
    const c = await context();
    const seen: Seen[] = [];
    const page = await consolePage(c, seen);
    await signIn(page, h, 'alice@example.com', 'alice-pw');
    await page.goto(`${h.url}/console/#/policies`);
    await page.getByTestId('history').locator('tr[data-version="3"]').waitFor({ timeout: 90_000 });
    assert.equal(await page.getByRole('button', { name: 'Push' }).count(), 1, 'offered until the server says otherwise');
    await page.getByLabel('Cedar policies').fill(V2);
    await page.getByRole('button', { name: 'Validate' }).click();
    await page.getByRole('status').filter({ hasText: 'You may not change the policies' }).waitFor({ timeout: 90_000 });
    assert.equal(await page.getByRole('button', { name: 'Push' }).count(), 0, 'no Push for a caller without policy.write');
    await page.getByRole('button', { name: /What if/ }).click();
    await page.getByRole('alert').filter({ hasText: 'you may not replay recorded decisions' }).waitFor({ timeout: 90_000 });
    assert.equal((await until(() => seen.find((s) => s.url === '/v1/policies/replay'), 'the replay call')).status, 403);
    assert.equal((await until(() => seen.find((s) => s.url === '/v1/policies' && s.status !== 200), 'the dry run')).status, 403, 'the dry run (policy.write) refused');
    assert.equal((await h.get('/v1/policies', admin)).body.version, 3, 'nothing pushed');
  });

  it('governance: my review items decided from the page, accessible charts, the evidence report, step-up through the provider and back', async () => {
    const opened = await h.post('/v1/reviews', { name: 'bob-owned-q4', scope: { owner: 'user:bob@example.com' }, reviewers: ['user:bob@example.com'] }, admin);
    assert.equal(opened.status, 201, JSON.stringify(opened.body));
    const campaignId = opened.body.campaign.id as string;
    const identityItems = (opened.body.items as { id: string; kind: string; identity_id: string; reviewers: string[] }[]).filter((i) => i.kind === 'identity');
    assert.equal(identityItems.length, 2, JSON.stringify(opened.body.items));
    assert.ok(identityItems.every((i) => i.reviewers.includes('user:bob@example.com')));
    const first = identityItems[0]!;
    const second = identityItems[1]!;
    await h.running.broker.governance.snapshotFindings();

    const c = await context();
    const seen: Seen[] = [];
    const page = await consolePage(c, seen);
    await signIn(page, h, 'bob@example.com', 'bob-pw');
    await page.getByRole('link', { name: 'Governance' }).click();
    const card = page.locator(`li[data-item="${first.id}"]`);
    await card.waitFor({ timeout: 90_000 });
    assert.match((await card.textContent()) ?? '', new RegExp(first.identity_id.replace(/[/.]/g, '\\$&')));
    await page.getByTestId('campaigns').locator('tr', { hasText: 'bob-owned-q4' }).waitFor({ timeout: 90_000 });

    // Charts: inline SVG with role="img", a title and description, and a data table.
    for (const [id, name] of [['decisions-chart', /Authorization decisions per day/], ['denials-chart', /Denied decisions by reason/], ['overprivilege-chart', /Unused share of effective permissions by owner/], ['owasp-chart', /Findings by OWASP NHI Top 10 category/], ['findings-trend-chart', /Findings per day/]] as const) {
      const img = page.locator(`figure[data-chart="${id}"]`).getByRole('img', { name });
      await img.waitFor({ timeout: 90_000 });
      const desc = await page.locator(`#${id}-desc`).textContent();
      assert.ok(desc && /\d/.test(desc), `${id} has a description with its numbers: ${desc}`);
      assert.ok((await page.locator(`#${id}-table tbody tr`).count()) > 0, `${id} has a data table`);
    }
    const stats = JSON.parse((await until(() => seen.find((s) => s.url.startsWith('/v1/governance/decisions') && s.status === 200), 'the decision counts')).body);
    assert.ok(stats.total.allow > 0 && stats.total.deny > 0, JSON.stringify(stats.total));
    assert.equal(stats.truncated, false);
    assert.equal(stats.buckets.length, 14 + 1 - (Date.parse(stats.since) % 86_400_000 === 0 ? 1 : 0), 'a bucket per day of the window');
    assert.ok(stats.denials_by_reason.some((r: { reason: string }) => r.reason === 'no permit'), JSON.stringify(stats.denials_by_reason));
    const usage = JSON.parse((await until(() => seen.find((s) => s.url.startsWith('/v1/governance/usage')), 'the usage call')).body);
    assert.ok(usage.by_owner.some((o: { owner: string | null; identities: number }) => o.owner === 'user:bob@example.com' && o.identities >= 2), JSON.stringify(usage.by_owner));
    assert.ok(usage.identities.length <= 5, 'only the top five identities were sent');
    assert.equal(await page.getByTestId('overprivileged').locator('tbody tr').count(), usage.identities.length);
    // The table alternative carries the same numbers as the chart.
    const rows = await page.locator('#decisions-chart-table tbody tr').count();
    assert.equal(rows, stats.buckets.length);

    // The evidence report for a period, fetched with the console's header and saved.
    const download = page.waitForEvent('download');
    await page.getByRole('button', { name: 'Download JSON' }).click();
    assert.match((await download).suggestedFilename(), /^portcullis-evidence-30d\.json$/);
    await page.getByTestId('evidence').waitFor({ timeout: 90_000 });
    assert.match((await page.getByTestId('evidence').textContent()) ?? '', /Audit chain.*verified/);
    await shot(page, 'governance');
    assert.deepEqual(await seriousViolations(page), [], 'the governance page');
    // Readable on a phone: nothing wider than the screen but the scrolling tables.
    await page.setViewportSize({ width: 390, height: 844 });
    const overflow = await page.evaluate(() => {
      const d = (globalThis as unknown as { document: { documentElement: { scrollWidth: number; clientWidth: number } } }).document;
      return d.documentElement.scrollWidth - d.documentElement.clientWidth;
    });
    assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px on a phone`);
    await page.setViewportSize({ width: 1280, height: 900 });

    // Keep the first item from the page.
    await card.getByLabel('Comment').fill('still needed for billing');
    await card.getByRole('button', { name: 'Keep' }).click();
    await until(async () => (await card.count()) === 0, 'the decided item to leave my list');
    const after1 = await h.get(`/v1/reviews/${campaignId}`, admin);
    const d1 = (after1.body.items as { id: string; decision: string; decided_by: string; comment: string }[]).find((i) => i.id === first.id)!;
    assert.deepEqual([d1.decision, d1.decided_by, d1.comment], ['keep', 'user:bob@example.com', 'still needed for billing']);

    // A link to the retry location does nothing: only a step-up this tab started is retried.
    const lured = await context();
    const lp = await consolePage(lured);
    await signIn(lp, h, 'bob@example.com', 'bob-pw');
    await lp.goto(`${h.url}/console/#/governance/decide/${encodeURIComponent(second.id)}/revoke`);
    await until(() => lp.url().endsWith('/console/#/governance'), 'the link replaced by the page');
    await lp.locator(`li[data-item="${second.id}"]`).waitFor({ timeout: 90_000 });
    await new Promise((r) => setTimeout(r, 500));
    const untouched = await h.get(`/v1/reviews/${campaignId}`, admin);
    assert.equal((untouched.body.items as { id: string; decision: string | null }[]).find((i) => i.id === second.id)!.decision, null, 'a link made the page decide');
    assert.equal(await lp.getByTestId('retried').count(), 0);

    // Now deciding needs MFA: the page sends bob through the provider again and retries.
    const pushed = await h.put('/v1/policies', { files: [{ name: 'step-up.cedar', text: STEP_UP }], reason: 'review decisions need MFA' }, admin);
    assert.equal(pushed.status, 200, JSON.stringify(pushed.body));
    const card2 = page.locator(`li[data-item="${second.id}"]`);
    await card2.getByRole('button', { name: 'Keep' }).click();
    const dialog = page.getByRole('alertdialog', { name: 'Sign in again to continue' });
    await dialog.waitFor({ timeout: 90_000 });
    assert.match((await dialog.textContent()) ?? '', /multi-factor authentication/);
    const refusedDecision = await until(() => seen.find((s) => s.url === `/v1/reviews/items/${second.id}/decision`), 'the refused decision');
    assert.equal(refusedDecision.status, 401);
    assert.equal(JSON.parse(refusedDecision.body).code, 'step_up_required');
    assert.deepEqual(await seriousViolations(page), [], 'the step-up dialog');
    await dialog.getByRole('link', { name: 'Sign in again' }).click();
    await page.locator('input[name=email]').waitFor({ timeout: 90_000 });
    await page.fill('input[name=email]', 'bob@example.com');
    await page.fill('input[name=password]', 'bob-pw');
    // The test provider's browser form has no OTP field; the second factor is posted like the API tests do.
    await page.evaluate(() => {
      const d = (globalThis as unknown as { document: { querySelector(s: string): { append(n: unknown): void }; createElement(t: string): { name: string; value: string; type: string } } }).document;
      const otp = d.createElement('input');
      otp.type = 'hidden';
      otp.name = 'otp';
      otp.value = '222222';
      d.querySelector('form').append(otp);
    });
    h.sync();
    await page.click('button[type=submit]');
    const retried = page.getByTestId('retried');
    await retried.waitFor({ timeout: 90_000 });
    assert.match((await retried.textContent()) ?? '', new RegExp(`Decided keep on ${second.id}`));
    assert.match(page.url(), /\/console\/#\/governance$/, 'the retry is not repeated on reload');
    const after2 = await h.get(`/v1/reviews/${campaignId}`, admin);
    const d2 = (after2.body.items as { id: string; decision: string; decided_by: string }[]).find((i) => i.id === second.id)!;
    assert.deepEqual([d2.decision, d2.decided_by], ['keep', 'user:bob@example.com']);
    const me = (await page.evaluate(async () => (await fetch('/v1/auth/session', { headers: { 'x-portcullis-console': '1' } })).json())) as { authn: { mfa: boolean } };
    assert.equal(me.authn.mfa, true, 'the new session carries the second factor');
    const stored = await page.evaluate(() => JSON.stringify({ ...(globalThis as unknown as { sessionStorage: object }).sessionStorage }));
    assert.equal(stored, '{}', 'the retry marker is used once and removed');
    // Back to no step-up for the rest of the file.
    assert.equal((await h.put('/v1/policies', { files: [{ name: 'analytics.cedar', text: V2 }], reason: 'step-up test over' }, admin)).status, 200);
  });

  it('the step-up sign-in comes back only to a console page (no open redirect)', async () => {
    const cookiesOf = (r: Response) => r.headers.getSetCookie().map((x) => x.split('=')[0]);
    for (const bad of ['https://evil.example/', '//evil.example', '#/ok\r\nx', '/console/#/x', '#/<script>']) {
      const r = await fetch(`${h.url}/console/login?mfa=true&return=${encodeURIComponent(bad)}`, { redirect: 'manual' });
      assert.equal(r.status, 303);
      assert.deepEqual(cookiesOf(r), ['__Host-portcullis-login'], bad);
    }
    const ok = await fetch(`${h.url}/console/login?mfa=true&max_age=300&return=${encodeURIComponent('#/governance/decide/x/keep')}`, { redirect: 'manual' });
    assert.deepEqual(cookiesOf(ok), ['__Host-portcullis-login', '__Host-portcullis-return']);
    const to = new URL(ok.headers.get('location')!);
    assert.equal(to.searchParams.get('prompt'), 'login');
    assert.equal(to.searchParams.get('max_age'), '300');
  });

  it('a viewer without policy or governance rights receives no such data (checked on the API responses the page got)', async () => {
    const c = await context();
    const seen: Seen[] = [];
    const page = await consolePage(c, seen);
    await signIn(page, h, 'dave@example.com', 'dave-pw');
    await page.getByRole('link', { name: 'Policies' }).click();
    await page.getByRole('status').filter({ hasText: 'You may not see the policies.' }).waitFor({ timeout: 90_000 });
    await page.getByRole('status').filter({ hasText: 'You may not see the policy history.' }).waitFor({ timeout: 90_000 });
    assert.equal(await page.getByLabel('Cedar policies').count(), 0, 'no editor');
    assert.deepEqual(await seriousViolations(page), [], 'the policies page of a viewer');
    await page.getByRole('link', { name: 'Governance' }).click();
    await page.getByRole('status').filter({ hasText: 'You may not see the review campaigns.' }).waitFor({ timeout: 90_000 });
    await page.getByRole('status').filter({ hasText: 'You may not see the decision counts.' }).waitFor({ timeout: 90_000 });
    await page.getByRole('status').filter({ hasText: 'You may not see the usage analysis.' }).waitFor({ timeout: 90_000 });
    await page.getByRole('status').filter({ hasText: 'You may not see the findings.' }).waitFor({ timeout: 90_000 });
    await page.getByRole('button', { name: 'Download JSON' }).click();
    await page.getByRole('status').filter({ hasText: 'You may not read the evidence report.' }).waitFor({ timeout: 90_000 });
    assert.equal(await page.locator('svg[role=img]').count(), 0, 'no chart');
    assert.deepEqual(await seriousViolations(page), [], 'the governance page of a viewer');

    const guarded = ['/v1/policies', '/v1/policies/versions', '/v1/reviews', '/v1/governance/usage', '/v1/governance/decisions', '/v1/findings/trend', '/v1/reports/evidence'];
    await until(() => guarded.every((path) => seen.some((s) => s.url.split('?')[0] === path)), 'every guarded call recorded');
    for (const path of guarded) {
      const got = seen.filter((s) => s.url.split('?')[0] === path);
      assert.ok(got.length > 0, `the page asked ${path}`);
      for (const s of got) assert.equal(s.status, 403, `${s.url} answered ${s.status}: ${s.body.slice(0, 200)}`);
    }
    const mine = await until(() => seen.find((s) => s.url === '/v1/reviews/mine'), 'my items');
    assert.equal(mine.status, 200);
    assert.deepEqual(JSON.parse(mine.body).items, [], 'no item of anyone else');
    for (const s of seen) assert.doesNotMatch(s.body, /analytics-readers|dba-governs|bob-owned-q4|workload:pay\/|by_owner|buckets/, `${s.url} carried policy or governance data`);
  });

  it('the API: one version by number, and the decisions aggregate needs governance.read AND audit.read', async () => {
    const bob = await h.login('bob@example.com');
    const alice = await h.login('alice@example.com');
    const dave = await h.login('dave@example.com');
    const list = await h.get('/v1/policies/versions', bob.token);
    assert.equal(list.status, 200);
    assert.deepEqual((list.body.versions as { version: number }[]).map((v) => v.version), [5, 4, 3, 2, 1], 'newest first');
    assert.ok((list.body.versions as object[]).every((v) => !('files' in v)), 'the history is summaries; files come one version at a time');
    const v1 = await h.get('/v1/policies/versions/1', bob.token);
    assert.equal(v1.status, 200);
    assert.equal(v1.body.version, 1);
    assert.ok((v1.body.files as { origin: string }[]).every((f) => f.origin === 'config'));
    assert.equal((await h.get('/v1/policies/versions/999', bob.token)).status, 404);
    assert.equal((await h.get('/v1/policies/versions/0', bob.token)).status, 400);
    assert.equal((await h.get('/v1/policies/versions/x', bob.token)).status, 400);
    assert.equal((await h.get('/v1/policies/versions/1', dave.token)).status, 403);

    const ok = await h.get('/v1/governance/decisions?since=2d&bucket=hour', bob.token);
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.bucket, 'hour');
    assert.ok((ok.body.buckets as unknown[]).length >= 48);
    // governance.read without audit.read: refused (the counts are read from the authz audit stream).
    const noAudit = await h.get('/v1/governance/decisions', alice.token);
    assert.equal(noAudit.status, 403, JSON.stringify(noAudit.body));
    assert.equal((await h.get('/v1/governance/usage?identity=workload:pay/billing', alice.token)).status, 403, 'alice lacks audit.read for usage too');
    assert.equal((await h.get('/v1/governance/decisions', dave.token)).status, 403);
    assert.equal((await h.get('/v1/governance/decisions?bucket=week', bob.token)).status, 400);
    assert.equal((await h.get('/v1/governance/decisions?since=400d&bucket=hour', bob.token)).status, 400, 'too many buckets');
    // A window no Date can hold is the caller's error (it was a 500), on every analysis that takes one.
    for (const path of ['/v1/governance/decisions?since=99999999999999d', '/v1/governance/usage?since=99999999999999d', '/v1/governance/decisions?since=2d&until=9999999999-01-01T00:00:00Z']) {
      const r = await h.get(path, bob.token);
      assert.equal(r.status, 400, `${path}: ${JSON.stringify(r.body)}`);
    }
  });
});
