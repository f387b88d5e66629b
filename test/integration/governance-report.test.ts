// The evidence report over real HTTP against the real broker (the run's store): rotation, review,
// revocation and access-request evidence of a period, each item the very audit event at its stream
// and sequence number (hash compared), with the chain verification; the HTML page looked at in a
// real headless Chromium (playwright-core) — self-contained, nothing fetched, charts drawn — and
// printed to PDF through the browser.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { startHarness } from './harness.ts';
import type { Harness } from './harness.ts';
import type { Json } from '../json.ts';
import { missingDependency } from '../ci.ts';
import { CHROMIUM_ARGS, htmlToPdf } from '../../src/governance/report/pdf.ts';

const CHROMIUM = '/usr/bin/chromium';
const skip = existsSync(CHROMIUM) ? false : missingDependency('chromium', 'apt-get install chromium');
const enc = encodeURIComponent;

describe('evidence report', () => {
  let h: Harness;
  let admin: string;
  let report: Json;
  let html: string;
  let workloadStatus: number;

  before(async () => {
    h = await startHarness('', {}, Date.parse('2026-11-02T09:00:00Z'), {
      identities:
        '  - { id: workload:github/acme/worker, kind: workload, owner: user:admin, purpose: jobs, boundary: application, environment: prod }\n' +
        '  - { id: workload:github/acme/reporter, kind: workload, owner: user:admin, purpose: reports, boundary: platform, environment: prod }\n',
      policies: '\npermit (principal == Workload::"workload:github/acme/reporter", action in [Action::"db.select", Action::"db.insert"], resource == Database::"analytics");\n',
    });
    admin = await h.admin();
    // Reading it is report.read: a workload is refused (asked now: the review below suspends it).
    workloadStatus = (await h.get('/v1/reports/evidence?period=2026-Q4', await h.loginCi())).status;
    // Evidence of each kind, in 2026-Q4.
    assert.equal((await h.post('/v1/keys/rotate', { purpose: 'token' }, admin)).status, 200);
    const key = await h.post('/v1/apikeys', { identity: 'workload:github/acme/worker', ttl: '30d' }, admin);
    assert.equal(key.status, 201, JSON.stringify(key.body));
    assert.equal((await h.post(`/v1/apikeys/${enc(String(key.body.id))}/revoke`, { reason: 'leaked in a log' }, admin)).status, 200);
    const opened = await h.post('/v1/reviews', { name: 'november', scope: { boundary: 'application' }, deadline: '7d' }, admin);
    assert.equal(opened.status, 201, JSON.stringify(opened.body));
    assert.equal((await h.post(`/v1/reviews/${enc(String((opened.body.campaign as Json).id))}/close`, { reason: 'done early' }, admin)).status, 200);
    const r = await h.get('/v1/reports/evidence?period=2026-Q4', admin);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    report = r.body;
    const page = await fetch(`${h.url}/v1/reports/evidence?period=2026-Q4&format=html`, { headers: { authorization: `Bearer ${admin}` } });
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    html = await page.text();
  });
  after(async () => {
    await h?.close();
  });

  it('lists the period’s evidence, each item the audit event at its stream and sequence number', async () => {
    const summary = report.summary as Record<string, number>;
    assert.ok(summary.rotation! >= 1, 'key.rotated');
    assert.ok(summary.review! >= 2, 'review.opened, review.closed');
    assert.ok(summary.revocation! >= 1, 'apikey.revoked and the review’s default suspensions');
    const items = report.items as Json[];
    const types = new Set(items.map((i) => i.type));
    for (const t of ['key.rotated', 'apikey.revoked', 'review.opened', 'review.closed', 'review.defaulted', 'identity.suspended']) assert.ok(types.has(t), `${t} is evidence`);
    for (const i of items) {
      const [e] = await h.running.broker.audit.query({ stream: i.stream as 'admin', afterSeq: Number(i.seq) - 1, limit: 1 });
      assert.equal(e?.seq, i.seq);
      assert.equal(e?.hash, i.hash, `item ${i.type} is the recorded event`);
    }
    const v = report.verification as Json;
    assert.equal(v.ok, true);
    const admin_ = (v.streams as Json[]).find((s) => s.stream === 'admin')!;
    assert.ok(Number(admin_.head_seq) >= Math.max(...items.map((i) => Number(i.seq))));
    assert.ok((v.keys as Json[]).length >= 1, 'the checkpoint keys to verify with');
    // The over-privilege figure from the analysis: the reporter may select and insert, and did neither.
    const op = report.over_privilege as Json;
    const reporter = (op.identities as Json[]).find((u) => u.identity === 'workload:github/acme/reporter');
    assert.deepEqual(reporter && [reporter.effective, reporter.used, reporter.over_privilege], [2, 0, 1]);
    assert.ok(Number(op.estate) > 0 && Number(op.estate) <= 1);
    // Another period holds none of it; a malformed one is refused.
    const q2 = await h.get('/v1/reports/evidence?period=2026-Q2', admin);
    assert.equal((q2.body.items as Json[]).length, 0);
    assert.equal((await h.get('/v1/reports/evidence?period=last-quarter', admin)).status, 400);
    // Reading it is report.read: a workload is refused.
    assert.equal(workloadStatus, 403);
  });

  it('the HTML page renders in a real headless Chromium: self-contained, charts drawn, verification shown; printed to PDF', { skip }, async () => {
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    try {
      const page = await browser.newPage();
      const requested: string[] = [];
      await page.route('**/*', (route) => {
        requested.push(route.request().url());
        return route.abort();
      });
      await page.setContent(html, { waitUntil: 'load' });
      assert.deepEqual(requested, [], 'the page fetches nothing (no external assets)');
      assert.equal(await page.title(), 'Portcullis evidence 2026-Q4');
      // The weekly chart: one bar per (week, category) with events; it is drawn (has a size on screen).
      const bars = await page.locator('#chart-weekly rect.bar').count();
      assert.ok(bars >= 3, `bars drawn: ${bars}`);
      const box = await page.locator('#chart-weekly').boundingBox();
      assert.ok(box && box.width > 300 && box.height > 100, JSON.stringify(box));
      assert.equal(await page.locator('#chart-weekly rect.bar[data-category="rotation"]').count() >= 1, true);
      assert.ok((await page.locator('#chart-reviews rect.bar').count()) === 4);
      assert.ok((await page.locator('#chart-overprivilege rect.bar').count()) >= 1, 'over-privilege bars');
      // Evidence tables name each event's place in the chain.
      const rotation = await page.locator('section[data-category="rotation"] tbody tr').allInnerTexts();
      assert.ok(rotation.some((t) => t.includes('key.rotated') && /admin#\d+/.test(t)), rotation.join('\n'));
      assert.match(await page.locator('#verification h2').innerText(), /chain verified/);
      assert.equal(await page.locator('#chain-heads tbody tr').count(), 4, 'one head per stream');
      // Hostile text stays text: nothing in a payload becomes markup.
      assert.equal(await page.locator('script').count(), 0);
    } finally {
      await browser.close();
    }
    const pdf = await htmlToPdf(html, { executablePath: CHROMIUM });
    assert.equal(pdf.subarray(0, 5).toString('latin1'), '%PDF-');
    assert.ok(pdf.length > 5_000, `pdf of ${pdf.length} bytes`);
  });
});
