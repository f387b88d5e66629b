// The governance repositories on both stores: campaigns and items (decided once, closed once,
// overdue and reminder queries, a schedule's last campaign) and identity flags (one open per code).
import assert from 'node:assert/strict';
import { forEachStore } from './stores.ts';

const T0 = Date.parse('2026-11-01T00:00:00Z');
const DAY = 86_400_000;

forEachStore('review campaigns and items', async (open) => {
  const s = await open();
  const r = s.governance.reviews;
  const campaign = (id: string, schedule: string | null, openedAt: number, deadlineAt: number) => ({ id, name: id, schedule, scope: { boundary: 'application' }, default_action: 'suspend' as const, named_reviewers: ['user:admin'], created_by: 'user:admin', opened_at: openedAt, deadline_at: deadlineAt });
  const item = (id: string, c: string) => ({ id, campaign_id: c, identity_id: 'workload:a', kind: 'identity' as const, ref: 'workload:a', summary: 's', usage: { n: 1 }, reviewers: ['user:admin'] });
  await r.create(campaign('c1', 'quarterly', T0, T0 + 7 * DAY), [item('i1', 'c1'), item('i2', 'c1')]);
  await r.create(campaign('c2', null, T0 + DAY, T0 + 30 * DAY), []);
  assert.deepEqual((await r.items('c1')).map((i) => i.id), ['i1', 'i2']);
  assert.deepEqual((await r.item('i1'))?.usage, { n: 1 });
  assert.equal((await r.get('c1'))?.status, 'open');
  assert.equal((await r.get('c1'))?.deadline_at, new Date(T0 + 7 * DAY).toISOString());
  assert.deepEqual((await r.list({}, 10)).map((c) => c.id), ['c2', 'c1'], 'newest first');
  assert.deepEqual((await r.list({ schedule: 'quarterly' }, 10)).map((c) => c.id), ['c1']);
  assert.equal(await r.decide('i1', { decision: 'keep', by: 'user:admin', at: T0, comment: 'ok', byDefault: false }), true);
  assert.equal(await r.decide('i1', { decision: 'revoke', by: 'user:admin', at: T0, comment: null, byDefault: false }), false, 'decided once');
  await r.setOutcome('i1', 'kept');
  const i1 = (await r.item('i1'))!;
  assert.deepEqual([i1.decision, i1.decided_by, i1.outcome, i1.by_default, i1.comment], ['keep', 'user:admin', 'kept', false, 'ok']);
  assert.deepEqual(await r.overdue(T0 + 7 * DAY - 1), []);
  assert.deepEqual(await r.overdue(T0 + 7 * DAY), ['c1']);
  assert.deepEqual(await r.unreminded(T0 + 8 * DAY), ['c1']);
  assert.equal(await r.markReminded('c1', T0), true);
  assert.equal(await r.markReminded('c1', T0), false, 'reminded once');
  assert.deepEqual(await r.unreminded(T0 + 40 * DAY), ['c2']);
  assert.equal(await r.close('c1', { at: T0 + 7 * DAY, by: 'system', reason: 'deadline passed' }), true);
  assert.equal(await r.close('c1', { at: T0 + 7 * DAY, by: 'system', reason: 'again' }), false, 'closed once');
  assert.deepEqual(await r.overdue(T0 + 100 * DAY), ['c2']);
  assert.equal(await r.lastOpened('quarterly'), T0);
  assert.equal(await r.lastOpened('never'), undefined);
  assert.deepEqual((await r.list({ status: 'closed' }, 10)).map((c) => c.id), ['c1']);
});

forEachStore('identity flags: one open per identity and code', async (open) => {
  const s = await open();
  const f = s.governance.flags;
  assert.equal(await f.raise({ identity_id: 'workload:a', code: 'stale.warning', detail: { last_use: 'x' }, at: T0 }), true);
  assert.equal(await f.raise({ identity_id: 'workload:a', code: 'stale.warning', detail: {}, at: T0 + 1 }), false, 'already open');
  assert.equal(await f.raise({ identity_id: 'workload:a', code: 'owner.offboarded', detail: { owner: 'user:o' }, at: T0 + 2 }), true);
  assert.deepEqual((await f.open('stale.warning')).map((x) => x.identity_id), ['workload:a']);
  assert.equal((await f.open()).length, 2);
  assert.equal(await f.clear('workload:a', 'stale.warning', { at: T0 + 3, resolution: 'used again' }), true);
  assert.equal(await f.clear('workload:a', 'stale.warning', { at: T0 + 3, resolution: 'x' }), false);
  assert.equal(await f.raise({ identity_id: 'workload:a', code: 'stale.warning', detail: {}, at: T0 + 4 }), true, 'a new one after clearing');
  const all = await f.of('workload:a');
  assert.equal(all.length, 3);
  assert.deepEqual(all.find((x) => x.resolution === 'used again')?.detail, { last_use: 'x' });
});
