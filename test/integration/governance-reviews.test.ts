// Access reviews and owner offboarding over real HTTP against the real broker (on the run's store:
// SQLite, or PostgreSQL with PCX_TEST_STORE=postgres), time driven by the harness's manual clock:
// a campaign nobody answers suspends at its deadline (after a signed webhook reminder), a kept item
// stays, nobody reviews their own access, the cadence opens the next campaign itself; an
// offboarded owner's identities are flagged then reassigned to the successor or suspended.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness } from './harness.ts';
import type { Harness } from './harness.ts';
import { startReceiver } from '../access/receiver.ts';
import type { Receiver } from '../access/receiver.ts';
import type { Json } from '../json.ts';

const DAY = 86_400_000;
const SECRET = 'whsec-governance-test';
const enc = encodeURIComponent;

const WORKLOADS = `  - { id: workload:github/acme/worker, kind: workload, owner: user:admin, purpose: runs jobs, boundary: application, environment: prod }
  - { id: workload:github/acme/batch, kind: workload, owner: "user:olga@example.com", purpose: nightly batch, boundary: application, environment: prod }
  - { id: workload:github/acme/cron, kind: workload, owner: "user:olga@example.com", purpose: cron, boundary: application, environment: prod }
  - { id: workload:github/acme/etl, kind: workload, owner: "user:pete@example.com", purpose: etl, boundary: platform, environment: prod }
  - { id: workload:github/acme/sync, kind: workload, owner: "user:quinn@example.com", purpose: sync, boundary: platform, environment: prod }
  - { id: "user:olga@example.com", kind: user, boundary: application, environment: prod }
  - { id: "user:pete@example.com", kind: user, boundary: platform, environment: prod }
  - { id: "user:quinn@example.com", kind: user, boundary: platform, environment: prod }
`;

describe('access reviews over HTTP', () => {
  let h: Harness;
  let rx: Receiver;
  let admin: string;
  let adminKey: string;
  /** A new admin session after the clock moved past the last one (through the admin's own API key). */
  const relogin = async () => {
    const r = await h.post('/v1/auth/token', { api_key: adminKey });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    admin = r.body.session_token as string;
  };

  before(async () => {
    rx = await startReceiver(SECRET);
    h = await startHarness(
      `reviews:
  deadline: 14d
  default_action: suspend
  remind_before: 3d
  schedules:
    - { name: quarterly-platform, scope: { boundary: platform }, every: 90d, deadline: 30d, default_action: suspend }
access:
  webhooks:
    endpoints:
      - { name: reviews, url: "${rx.url}", secret_env: WEBHOOK_SECRET, events: [review.opened, review.reminder, review.closed] }
`,
      { WEBHOOK_SECRET: SECRET },
      Date.parse('2026-10-05T09:00:00Z'),
      { identities: WORKLOADS },
    );
    admin = await h.admin();
    const key = await h.post('/v1/apikeys', { identity: 'user:admin', ttl: '90d' }, admin);
    assert.equal(key.status, 201, JSON.stringify(key.body));
    adminKey = key.body.api_key as string;
  });
  after(async () => {
    await h?.close();
    await rx?.close();
  });

  it('a campaign nobody answers suspends at its deadline; a kept item stays; the cadence opens the next one', async () => {
    const api = await h.loginCi(); // workload:github/acme/api, owned by team:payments (no members): nobody but the named reviewer
    const used = await h.post('/v1/authorize', { action: 'db.select', resource: { type: 'Database', id: 'orders' }, context: { purpose: { reason: 'invoice run' } } }, api);
    assert.equal(used.body.decision, 'allow', JSON.stringify(used.body));
    await h.running.broker.audit.flush();
    const opened = await h.post('/v1/reviews', { name: 'q4 application', scope: { boundary: 'application' }, deadline: '7d', reviewers: ['user:admin'] }, admin);
    assert.equal(opened.status, 201, JSON.stringify(opened.body));
    const campaign = opened.body.campaign as Json;
    const items = opened.body.items as Json[];
    assert.equal(campaign.default_action, 'suspend');
    const itemOf = (identity: string) => items.find((i) => i.identity_id === identity && i.kind === 'identity')!;
    const worker = itemOf('workload:github/acme/worker');
    const apiItem = itemOf('workload:github/acme/api');
    assert.ok(worker && apiItem, 'one standing-access item per identity in scope');
    assert.deepEqual(worker.reviewers, ['user:admin'], 'the owner reviews');
    assert.ok(!items.some((i) => String(i.identity_id).startsWith('user:')), 'people are not in a workload review');
    assert.ok(!items.some((i) => i.identity_id === 'workload:github/acme/etl'), 'out of scope (platform)');
    // The api's own usage is on its item (it just logged in), and each effective permission is an
    // item with its observed use (from the analysis): the one it used, and those it never used.
    assert.ok((apiItem.usage as Json).last_authenticated_at, 'usage: last authentication');
    assert.equal((apiItem.usage as Json).allowed_decisions_90d, 1);
    const perms = items.filter((i) => i.identity_id === 'workload:github/acme/api' && i.kind === 'permission');
    const select = perms.find((i) => i.ref === 'db.select on Database::"orders"');
    assert.ok(select, `db.select on orders is an item: ${perms.map((p) => p.ref).join('; ')}`);
    assert.equal((select.usage as Json).allows_90d, 1);
    assert.ok(perms.some((i) => (i.usage as Json).allows_90d === 0), 'unused permissions are items too');
    assert.equal((apiItem.usage as Json).effective_permissions, perms.length);
    assert.equal((apiItem.usage as Json).used_permissions, 1);

    // Nobody reviews their own access, and a workload is no reviewer at all.
    const self = await h.post(`/v1/reviews/items/${enc(String(apiItem.id))}/decision`, { decision: 'keep' }, api);
    assert.equal(self.status, 403, JSON.stringify(self.body));
    // "keep" is never a default action.
    const keepDefault = await h.post('/v1/reviews', { name: 'bad', default_action: 'keep' }, admin);
    assert.equal(keepDefault.status, 400);

    const kept = await h.post(`/v1/reviews/items/${enc(String(worker.id))}/decision`, { decision: 'keep', comment: 'still runs the jobs' }, admin);
    assert.equal(kept.status, 200, JSON.stringify(kept.body));
    assert.equal(kept.body.outcome, 'kept');
    const again = await h.post(`/v1/reviews/items/${enc(String(worker.id))}/decision`, { decision: 'revoke' }, admin);
    assert.equal(again.status, 409, 'decided once');

    // Five days on: the reminder goes out (signed webhook) and the schedule opens its first campaign.
    h.clock.advance(5 * DAY);
    const s1 = await h.running.broker.governance.sweep();
    assert.deepEqual(s1.reviews.reminded, [campaign.id]);
    assert.equal(s1.reviews.opened.length, 1, 'the schedule opened its first campaign');
    assert.deepEqual(s1.reviews.defaulted, []);
    const reminder = await rx.waitFor('review.reminder');
    assert.equal(reminder.valid, true);
    assert.equal((reminder.body.data as Json).campaign, campaign.id);
    assert.ok(((reminder.body.data as Json).reviewers as string[]).includes('user:admin'));
    assert.equal((await h.running.broker.governance.sweep()).reviews.reminded.length, 0, 'one reminder per campaign');
    await relogin();
    assert.equal((await h.get(`/v1/identities/${enc('workload:github/acme/api')}`, admin)).body.status, 'active', 'nothing happens before the deadline');

    // Past the deadline: every unanswered item's identity is suspended; the kept one is not.
    h.clock.advance(3 * DAY);
    const s2 = await h.running.broker.governance.sweep();
    assert.deepEqual(s2.reviews.defaulted, [campaign.id]);
    await relogin();
    assert.equal((await h.get(`/v1/identities/${enc('workload:github/acme/api')}`, admin)).body.status, 'suspended');
    assert.equal((await h.get(`/v1/identities/${enc('workload:github/acme/batch')}`, admin)).body.status, 'suspended');
    assert.equal((await h.get(`/v1/identities/${enc('workload:github/acme/worker')}`, admin)).body.status, 'active', 'kept');
    const refused = await h.post('/v1/auth/token', { token: await h.ciToken() });
    assert.notEqual(refused.status, 200, 'a suspended workload cannot log in');
    const shown = await h.get(`/v1/reviews/${enc(String(campaign.id))}`, admin);
    assert.equal((shown.body.campaign as Json).status, 'closed');
    const defaulted = (shown.body.items as Json[]).find((i) => i.id === apiItem.id)!;
    assert.equal(defaulted.by_default, true);
    assert.equal(defaulted.outcome, 'suspended');
    assert.equal(defaulted.decided_by, 'system');

    // Audited in the admin stream.
    const types = (await h.running.broker.audit.query({ stream: 'admin', limit: 1000 })).map((e) => e.type);
    for (const t of ['review.opened', 'review.decided', 'review.reminded', 'review.defaulted', 'review.closed']) assert.ok(types.includes(t), `${t} audited`);

    // The cadence: nothing new before 90 days since the last scheduled campaign, then one.
    h.clock.advance(81 * DAY); // 84 days after the scheduled one opened (day 5)
    assert.deepEqual((await h.running.broker.governance.sweep()).reviews.opened, []);
    h.clock.advance(6 * DAY); // 90 days
    const s4 = await h.running.broker.governance.sweep();
    assert.equal(s4.reviews.opened.length, 1, 'the next quarterly campaign opened itself');
    assert.equal((await h.running.broker.governance.reviews.list({ schedule: 'quarterly-platform' })).length, 2);
  });
});

describe('owner offboarding over HTTP', () => {
  let h: Harness;
  let admin: string;

  before(async () => {
    h = await startHarness('lifecycle:\n  offboarding: { owned: reassign }\n', {}, Date.parse('2026-10-05T09:00:00Z'), { identities: WORKLOADS });
    admin = await h.admin();
  });
  after(async () => {
    await h?.close();
  });

  const status = async (id: string) => (await h.get(`/v1/identities/${enc(id)}`, admin)).body;

  it('reassigns what the owner held to the successor, and flags it on the way', async () => {
    const r = await h.post('/v1/lifecycle/offboard-owner', { owner: 'user:olga@example.com', successor: 'user:admin', reason: 'left the company' }, admin);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(
      (r.body.identities as Json[]).map((i) => [i.id, i.action, i.to]),
      [
        ['workload:github/acme/batch', 'reassigned', 'user:admin'],
        ['workload:github/acme/cron', 'reassigned', 'user:admin'],
      ],
    );
    assert.equal((await status('user:olga@example.com')).status, 'offboarded');
    for (const id of ['workload:github/acme/batch', 'workload:github/acme/cron']) {
      const i = await status(id);
      assert.equal(i.owner, 'user:admin');
      assert.equal(i.status, 'active');
    }
    const flags = await h.running.broker.store.governance.flags.of('workload:github/acme/batch');
    assert.equal(flags.length, 1);
    assert.equal(flags[0]!.code, 'owner.offboarded');
    assert.equal(flags[0]!.resolution, 'reassigned to user:admin');
    const events = await h.running.broker.audit.query({ stream: 'admin', type: 'lifecycle.owner_reassigned', limit: 10 });
    assert.equal(events.length, 2);
  });

  it('suspends what the owner held when there is no successor', async () => {
    const r = await h.post('/v1/lifecycle/offboard-owner', { owner: 'user:pete@example.com', reason: 'left' }, admin);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual((r.body.identities as Json[]).map((i) => [i.id, i.action]), [['workload:github/acme/etl', 'suspended']]);
    assert.equal((await status('workload:github/acme/etl')).status, 'suspended');
  });

  it('an owner offboarded through the identity API is found by the periodic job, and its identities handled', async () => {
    const off = await h.post(`/v1/identities/${enc('user:quinn@example.com')}/offboard`, { reason: 'left' }, admin);
    assert.equal(off.status, 200, JSON.stringify(off.body));
    assert.equal((await status('workload:github/acme/sync')).status, 'active', 'not yet');
    const swept = await h.running.broker.governance.sweep();
    assert.deepEqual(swept.lifecycle.orphans, ['workload:github/acme/sync']);
    assert.equal((await status('workload:github/acme/sync')).status, 'suspended', 'no successor configured: suspended');
    assert.deepEqual((await h.running.broker.governance.sweep()).lifecycle.orphans, [], 'handled once');
  });

  it('findings over HTTP name their OWASP NHI category, NIST CSF subcategories and remediation', async () => {
    const r = await h.get('/v1/findings', admin);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const findings = r.body.findings as Json[];
    assert.ok(findings.length > 0);
    for (const f of findings) {
      assert.match(String(f.owasp), /^NHI\d+:2025 /);
      assert.ok((f.nist as string[]).length > 0);
      assert.ok(String(f.remediation).length > 0);
    }
  });

  it('refuses what makes no sense, and callers without lifecycle.manage', async () => {
    assert.equal((await h.post('/v1/lifecycle/offboard-owner', { owner: 'team:payments', reason: 'x' }, admin)).status, 400);
    assert.equal((await h.post('/v1/lifecycle/offboard-owner', { owner: 'user:admin', successor: 'user:nobody@example.com', reason: 'x' }, admin)).status, 400);
    const ci = await h.loginCi();
    assert.equal((await h.post('/v1/lifecycle/offboard-owner', { owner: 'user:admin', reason: 'x' }, ci)).status, 403);
  });
});

describe('idle identities and rotation on a cadence', () => {
  let h: Harness;

  before(async () => {
    h = await startHarness(
      'lifecycle:\n  stale: { idle: 30d, grace: 7d, action: offboard }\n  rotation: { signing_keys: 30d, auto_rotate: [token] }\n',
      {},
      Date.parse('2026-10-05T09:00:00Z'),
      { identities: WORKLOADS },
    );
  });
  after(async () => {
    await h?.close();
  });

  it('warns an idle identity, offboards it after the grace period unless it is used again; rotates due signing keys it may', async () => {
    const admin = await h.admin();
    const rotation = await h.get('/v1/lifecycle/rotation', admin);
    assert.equal(rotation.status, 200, JSON.stringify(rotation.body));
    const token = (rotation.body.rotation as Json[]).find((x) => x.kind === 'signing_key' && x.holder === 'portcullis:token')!;
    assert.equal(token.how, 'auto');
    assert.equal(token.overdue, false);
    assert.ok((rotation.body.rotation as Json[]).some((x) => x.kind === 'ssh_ca' && String(x.how).startsWith('manual')));
    const g = h.running.broker.governance;
    const statusOf = (id: string) => h.running.broker.identities.get(id)?.status;

    h.clock.advance(31 * 86_400_000);
    const s1 = await g.sweep();
    assert.ok(s1.lifecycle.warned.includes('workload:github/acme/worker'), JSON.stringify(s1.lifecycle));
    assert.ok(s1.lifecycle.warned.includes('workload:github/acme/api'));
    assert.deepEqual(s1.lifecycle.retired, []);
    assert.equal(s1.lifecycle.rotated.length, 1, 'the token key was due and is in auto_rotate');
    assert.ok(!s1.lifecycle.rotated.includes(String(token.id)));
    assert.deepEqual((await g.sweep()).lifecycle.warned, [], 'warned once');

    // The api is used again during the grace period: its warning is cleared, it stays.
    await h.loginCi();
    h.clock.advance(7 * 86_400_000);
    const s2 = await g.sweep();
    assert.ok(s2.lifecycle.retired.includes('workload:github/acme/worker'));
    assert.ok(!s2.lifecycle.retired.includes('workload:github/acme/api'));
    assert.equal(statusOf('workload:github/acme/worker'), 'offboarded');
    assert.equal(statusOf('workload:github/acme/api'), 'active');
    const flags = await h.running.broker.store.governance.flags.of('workload:github/acme/api');
    assert.equal(flags[0]?.resolution, 'used again');
    const types = (await h.running.broker.audit.query({ stream: 'admin', limit: 1000 })).map((e) => e.type);
    for (const t of ['lifecycle.stale_warning', 'lifecycle.stale_retired', 'identity.offboarded', 'key.rotated']) assert.ok(types.includes(t), `${t} audited`);
  });
});
