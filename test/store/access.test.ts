// The access domain's repositories over both stores: what the port contract promises beyond plain
// reads and writes (a second review, conclusion or close is refused, comments keep their order
// under concurrency, a notice is marked once, the outbox's due/next-attempt bookkeeping), then
// replicas racing on one PostgreSQL database: the last required approval, one approver on two
// replicas, one human under two identities, webhook deliveries claimed by two replicas at once.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import type { NewGrant, NewRequest, NewReview } from '../../src/access/ports.ts';
import { createAccessService, parseCreateRequest, RequestNotPending, validateAccessConfig, WebhookDispatcher } from '../../src/access/index.ts';
import type { AccessService } from '../../src/access/index.ts';
import { accountableHumans } from '../../src/inventory/identities.ts';
import { LOOPBACK, outboundFetch } from '../../src/common/outbound.ts';
import { PostgresStore } from '../../src/store/postgres/index.ts';
import { DELIVERY_CLAIM_MS } from '../../src/store/postgres/access.ts';
import type { Store } from '../../src/store/index.ts';
import { forEachStore } from './stores.ts';
import { freshStoreUrl } from './pg.ts';
import { world } from '../access/helpers.ts';
import type { World } from '../access/helpers.ts';
import { startReceiver } from '../access/receiver.ts';

const T0 = Date.parse('2026-03-02T10:00:00Z');
const MIN = 60_000;

const request = (id: string, extra: Partial<NewRequest> = {}): NewRequest => ({
  id, requester: 'user:alice@example.com', target: { kind: 'role', role: 'db-reader' }, what: 'role db-reader', reason: 'report',
  ticket: null, duration_ms: 60 * MIN, start_at: null, session_bound: false, required_approvals: 1, rules: [], reviewers: ['user:bob@example.com'],
  created_at: T0, expires_at: T0 + 60 * MIN, accountable: ['user:alice@example.com'], ...extra,
});

const grant = (id: string, extra: Partial<NewGrant> = {}): NewGrant => ({
  id, kind: 'request', identity_id: 'user:alice@example.com', request_id: null, target: { kind: 'role', role: 'db-reader' }, what: 'role db-reader',
  grants: ['role:db-reader'], roles: [{ type: 'Role', id: 'db-reader' }], start_at: T0, end_at: T0 + 60 * MIN, session_bound: false, reason: 'report', revokers: [],
  ...extra,
});

const review = (reviewer: string, extra: Partial<NewReview> = {}): NewReview => ({
  reviewer, verdict: 'approve', decision_id: `d-${reviewer}`, at: T0 + MIN, comment: null, human: reviewer, ...extra,
});

describe('access repositories (port contract)', () => {
  forEachStore('requests: round trip, one review per reviewer, concluded once, recorded humans', async (open) => {
    const { requests } = (await open()).access;
    await requests.create(request('req_1', { start_at: T0 + 5 * MIN, ticket: 'INC-1' }));
    const r = (await requests.get('req_1'))!;
    assert.equal(r.status, 'pending');
    assert.equal(r.start_at, new Date(T0 + 5 * MIN).toISOString());
    assert.equal(r.expires_at, new Date(T0 + 60 * MIN).toISOString());
    assert.deepEqual(r.target, { kind: 'role', role: 'db-reader' });
    assert.deepEqual([r.ticket, r.session_bound, r.reviews, r.comments, r.rules, r.reviewers], ['INC-1', false, [], [], [], ['user:bob@example.com']]);
    assert.equal(await requests.get('req_nope'), undefined);

    const bob = { reviewer: 'user:bob@example.com', verdict: 'approve' as const, decision_id: 'd1', at: T0 + MIN, comment: 'ok', human: 'user:bob@example.com' };
    assert.equal(await requests.addReview('req_1', bob), true);
    assert.equal(await requests.addReview('req_1', { ...bob, verdict: 'deny', decision_id: 'd2' }), false, 'a second review by the same reviewer is refused');
    await requests.addReview('req_1', { ...bob, reviewer: 'user:carol@example.com', verdict: 'deny', human: null });
    assert.equal(await requests.approvals('req_1'), 1);
    assert.deepEqual(await requests.recordedHumans('req_1'), { subjectHumans: ['user:alice@example.com'], earlierHumans: ['user:bob@example.com'] });
    assert.deepEqual(await requests.recordedHumans('req_nope'), { subjectHumans: [], earlierHumans: [] });
    assert.deepEqual((await requests.get('req_1'))!.reviews.map((v) => [v.reviewer, v.verdict, v.comment, v.decision_id, v.at]), [
      ['user:bob@example.com', 'approve', 'ok', 'd1', new Date(T0 + MIN).toISOString()],
      ['user:carol@example.com', 'deny', 'ok', 'd1', new Date(T0 + MIN).toISOString()],
    ]);

    await requests.setRequiredApprovals('req_1', 2);
    assert.equal(await requests.conclude('req_1', 'approved', T0 + 2 * MIN, 'grt_1'), true);
    assert.equal(await requests.conclude('req_1', 'cancelled', T0 + 3 * MIN, null), false, 'only a pending request is concluded');
    const done = (await requests.get('req_1'))!;
    assert.deepEqual([done.status, done.required_approvals, done.grant_id, done.decided_at], ['approved', 2, 'grt_1', new Date(T0 + 2 * MIN).toISOString()]);
  });

  forEachStore('requests: comments keep their order when written concurrently; list filters; expiry windows and one notice', async (open) => {
    const { requests } = (await open()).access;
    await requests.create(request('req_a'));
    await requests.create(request('req_b', { requester: 'user:bob@example.com', created_at: T0 + 1, expires_at: T0 + 10 * MIN }));
    await requests.create(request('req_c', { created_at: T0 + 2, expires_at: T0 + 5 * MIN }));
    await Promise.all(['one', 'two', 'three'].map((text, i) => requests.addComment('req_a', { author: 'user:alice@example.com', at: T0 + i, text })));
    assert.deepEqual((await requests.get('req_a'))!.comments.map((c) => c.text), ['one', 'two', 'three']);
    assert.deepEqual((await requests.get('req_a'))!.comments[1], { author: 'user:alice@example.com', at: new Date(T0 + 1).toISOString(), text: 'two' });

    assert.deepEqual((await requests.list({}, 10)).map((r) => r.id), ['req_c', 'req_b', 'req_a'], 'newest first');
    assert.deepEqual((await requests.list({}, 2)).map((r) => r.id), ['req_c', 'req_b']);
    assert.deepEqual((await requests.list({}, 10))[2]!.comments.map((c) => c.text), ['one', 'two', 'three'], 'listed with their comments');
    assert.deepEqual((await requests.list({ requester: 'user:bob@example.com' }, 10)).map((r) => r.id), ['req_b']);
    assert.deepEqual((await requests.list({ reviewableBy: 'user:alice@example.com' }, 10)).map((r) => r.id), ['req_b']);
    await requests.conclude('req_c', 'cancelled', T0, null);
    assert.deepEqual((await requests.list({ status: 'pending' }, 10)).map((r) => r.id), ['req_b', 'req_a']);
    assert.deepEqual((await requests.list({ status: 'cancelled', requester: 'user:alice@example.com' }, 10)).map((r) => r.id), ['req_c']);

    assert.deepEqual(await requests.overdue(T0 + 10 * MIN), ['req_b']);
    assert.deepEqual((await requests.expiringUnnotified(T0 + 5 * MIN, T0 + 60 * MIN)).sort(), ['req_a', 'req_b']);
    assert.equal(await requests.markExpiringNotified('req_a'), true);
    assert.equal(await requests.markExpiringNotified('req_a'), false, 'the notice is marked sent once');
    assert.deepEqual(await requests.expiringUnnotified(T0 + 5 * MIN, T0 + 60 * MIN), ['req_b']);
  });

  forEachStore('requests: keyset pages by (created_at, id), newest first, ties broken by id', async (open) => {
    const { requests } = (await open()).access;
    // Two share a created_at: the id orders them (code units), on both stores alike.
    for (const [id, at] of [['req_p1', T0], ['req_p2', T0 + 1], ['req_p3b', T0 + 1], ['req_p3a', T0 + 1], ['req_p4', T0 + 2]] as const) {
      await requests.create(request(id, { created_at: at }));
    }
    const all = (await requests.list({}, 10)).map((r) => r.id);
    assert.deepEqual(all, ['req_p4', 'req_p3b', 'req_p3a', 'req_p2', 'req_p1']);
    const pages: string[][] = [];
    let before: { at: number; id: string } | undefined;
    for (;;) {
      const page = await requests.list({ ...(before && { before }) }, 2);
      if (page.length === 0) break;
      pages.push(page.map((r) => r.id));
      const last = page[page.length - 1]!;
      before = { at: Date.parse(last.created_at), id: last.id };
    }
    assert.deepEqual(pages, [['req_p4', 'req_p3b'], ['req_p3a', 'req_p2'], ['req_p1']], 'every request once, in order, across a tie');
    assert.deepEqual((await requests.list({ requester: 'user:alice@example.com', before: { at: T0 + 1, id: 'req_p3a' } }, 10)).map((r) => r.id), ['req_p2', 'req_p1'], 'with other filters');
  });

  forEachStore('requests: a review, a grant and a conclusion in one unit of work are rolled back together', async (open) => {
    const store = await open();
    const { requests, grants } = store.access;
    await requests.create(request('req_1'));
    await assert.rejects(
      store.transaction(async () => {
        await store.lock('request:req_1');
        assert.equal(await requests.addReview('req_1', review('user:bob@example.com')), true);
        await grants.create(grant('grt_1', { request_id: 'req_1' }));
        assert.equal(await requests.conclude('req_1', 'approved', T0 + MIN, 'grt_1'), true);
        assert.equal((await requests.get('req_1'))!.status, 'approved', 'the transaction reads its own writes');
        throw new Error('boom');
      }),
      /boom/,
    );
    const r = (await requests.get('req_1'))!;
    assert.deepEqual([r.status, r.reviews, r.grant_id], ['pending', [], null]);
    assert.equal(await grants.get('grt_1'), undefined);
  });

  forEachStore('grants: keyset pages by (start_at, id), latest start first, ties broken by id', async (open) => {
    const { grants } = (await open()).access;
    for (const [id, at] of [['grt_p1', T0], ['grt_p2b', T0 + 1], ['grt_p2a', T0 + 1], ['grt_p3', T0 + 2]] as const) await grants.create(grant(id, { start_at: at }));
    assert.deepEqual((await grants.list({}, 10)).map((g) => g.id), ['grt_p3', 'grt_p2b', 'grt_p2a', 'grt_p1']);
    assert.deepEqual((await grants.list({ before: { at: T0 + 1, id: 'grt_p2b' } }, 10)).map((g) => g.id), ['grt_p2a', 'grt_p1'], 'across a tie');
    assert.deepEqual((await grants.list({ identityId: 'user:alice@example.com', activeAt: T0 + 5, before: { at: T0 + 2, id: 'grt_p3' } }, 1)).map((g) => g.id), ['grt_p2b'], 'with other filters');
  });

  forEachStore('grants: active-at filter, holders, ended once, due, leases to revoke, session-bound', async (open) => {
    const { grants } = (await open()).access;
    await grants.create(grant('grt_now'));
    await grants.create(grant('grt_later', { start_at: T0 + 30 * MIN, end_at: T0 + 90 * MIN, session_bound: true }));
    await grants.create(grant('grt_bg', { kind: 'break-glass', identity_id: 'user:erin@example.com', revokers: ['team:sre'], target: { kind: 'resource', resource: { type: 'Database', id: 'orders' }, actions: [] } }));
    const g = (await grants.get('grt_now'))!;
    assert.deepEqual([g.status, g.start_at, g.end_at, g.roles, g.grants], ['active', new Date(T0).toISOString(), new Date(T0 + 60 * MIN).toISOString(), [{ type: 'Role', id: 'db-reader' }], ['role:db-reader']]);
    assert.deepEqual([g.ended_at, g.ended_by, g.end_reason, g.session_bound, g.request_id], [null, null, null, false, null]);
    assert.deepEqual((await grants.get('grt_bg'))!.revokers, ['team:sre']);
    assert.deepEqual((await grants.get('grt_bg'))!.target, { kind: 'resource', resource: { type: 'Database', id: 'orders' }, actions: [] });
    assert.equal(await grants.get('grt_nope'), undefined);

    const alice = 'user:alice@example.com';
    assert.deepEqual((await grants.list({ identityId: alice, activeAt: T0 + MIN }, 10)).map((x) => x.id), ['grt_now']);
    assert.deepEqual((await grants.list({ identityId: alice, activeAt: T0 + 45 * MIN }, 10)).map((x) => x.id), ['grt_later', 'grt_now'], 'latest start first');
    assert.deepEqual((await grants.list({ identityId: alice, activeAt: T0 + 60 * MIN }, 10)).map((x) => x.id), ['grt_later'], 'the end is exclusive');
    assert.deepEqual((await grants.list({ identityId: alice, activeAt: T0 - 1 }, 10)).map((x) => x.id), [], 'not before the start');
    assert.deepEqual((await grants.list({ kind: 'break-glass' }, 10)).map((x) => x.id), ['grt_bg']);
    const two = await grants.list({}, 2);
    assert.deepEqual([two.length, two[0]!.id], [2, 'grt_later'], 'latest start first, limited');
    assert.deepEqual((await grants.holders()).sort(), [alice, 'user:erin@example.com']);
    assert.deepEqual(await grants.activeSessionBound(alice), ['grt_later']);
    assert.deepEqual((await grants.due(T0 + 60 * MIN)).sort(), ['grt_bg', 'grt_now']);

    assert.equal(await grants.end('grt_now', { at: T0 + 2 * MIN, by: alice, reason: 'done' }), true);
    assert.equal(await grants.end('grt_now', { at: T0 + 3 * MIN, by: 'someone', reason: 'again' }), false, 'an ended grant stays as it ended');
    const ended = (await grants.get('grt_now'))!;
    assert.deepEqual([ended.status, ended.ended_by, ended.end_reason, ended.ended_at], ['ended', alice, 'done', new Date(T0 + 2 * MIN).toISOString()]);
    assert.deepEqual((await grants.list({ identityId: alice, activeAt: T0 + 3 * MIN }, 10)).map((x) => x.id), []);
    assert.deepEqual((await grants.due(T0 + 60 * MIN)).sort(), ['grt_bg'], 'an ended grant is not due');
    assert.deepEqual(await grants.leasesToRevoke(), ['grt_now']);
    await grants.markLeasesRevoked('grt_now');
    assert.deepEqual(await grants.leasesToRevoke(), []);
    await grants.end('grt_later', { at: T0 + 3 * MIN, by: alice, reason: 'logout' });
    assert.deepEqual(await grants.activeSessionBound(alice), []);
    assert.deepEqual(await grants.holders(), ['user:erin@example.com']);
  });

  forEachStore('break-glass reviews: one per grant, closed once, listed by status', async (open) => {
    const { grants, breakGlass } = (await open()).access;
    await grants.create(grant('grt_bg', { kind: 'break-glass' }));
    await grants.create(grant('grt_bg2', { kind: 'break-glass' }));
    await breakGlass.open({ id: 'bgr_1', grantId: 'grt_bg', user: 'user:erin@example.com', openedAt: T0 });
    await assert.rejects(breakGlass.open({ id: 'bgr_2', grantId: 'grt_bg', user: 'user:erin@example.com', openedAt: T0 }), 'one review per grant');
    await breakGlass.open({ id: 'bgr_3', grantId: 'grt_bg2', user: 'user:erin@example.com', openedAt: T0 + 1 });
    assert.deepEqual((await breakGlass.forGrant('grt_bg'))!.id, 'bgr_1');
    assert.equal(await breakGlass.forGrant('grt_nope'), undefined);
    assert.deepEqual((await breakGlass.list('open')).map((r) => r.id), ['bgr_1', 'bgr_3'], 'oldest first');
    assert.equal(await breakGlass.close('bgr_1', { reviewer: 'user:bob@example.com', at: T0 + MIN, summary: 'fine' }), true);
    assert.equal(await breakGlass.close('bgr_1', { reviewer: 'user:carol@example.com', at: T0 + 2 * MIN, summary: 'again' }), false);
    const rv = (await breakGlass.get('bgr_1'))!;
    assert.deepEqual([rv.status, rv.reviewer, rv.summary, rv.user, rv.reviewed_at], ['closed', 'user:bob@example.com', 'fine', 'user:erin@example.com', new Date(T0 + MIN).toISOString()]);
    assert.deepEqual((await breakGlass.list('open')).map((r) => r.id), ['bgr_3']);
    assert.deepEqual((await breakGlass.list('closed')).map((r) => r.id), ['bgr_1']);
    assert.equal((await breakGlass.list()).length, 2);
    assert.equal(await breakGlass.get('bgr_nope'), undefined);
  });

  forEachStore('webhook outbox: due per endpoint, next attempt leaving out running endpoints, attempts recorded', async (open) => {
    const { webhooks } = (await open()).access;
    await webhooks.enqueue([{ id: 'dlv_a', endpoint: 'chat', eventType: 'request.created', body: '{}' }, { id: 'dlv_b', endpoint: 'tickets', eventType: 'request.created', body: '{}' }], T0);
    await webhooks.enqueue([], T0);
    assert.equal(await webhooks.pendingCount(), 2);
    assert.deepEqual(await webhooks.due('chat', T0 - 1, 10), [], 'not due before its time');
    assert.deepEqual(await webhooks.due('chat', T0, 10), [{ id: 'dlv_a', endpoint: 'chat', body: '{}', attempts: 0 }]);
    await webhooks.attemptFailed('dlv_a', { status: 'pending', attempts: 1, lastStatus: 500, error: 'HTTP 500', nextAttemptAt: T0 + 1000 });
    assert.deepEqual(await webhooks.due('chat', T0 + 999, 10), []);
    assert.equal(await webhooks.nextAttemptAt([]), T0);
    assert.equal(await webhooks.nextAttemptAt(['tickets']), T0 + 1000);
    assert.equal(await webhooks.nextAttemptAt(['tickets', 'chat']), undefined);
    assert.deepEqual(await webhooks.due('chat', T0 + 1000, 10), [{ id: 'dlv_a', endpoint: 'chat', body: '{}', attempts: 1 }], 'due again at its next attempt');
    await webhooks.delivered('dlv_b', { attempts: 1, status: 204, at: T0 + 5 });
    await webhooks.attemptFailed('dlv_a', { status: 'failed', attempts: 2, lastStatus: null, error: 'timeout', nextAttemptAt: T0 + 3000 });
    assert.equal(await webhooks.pendingCount(), 0);
    assert.equal(await webhooks.nextAttemptAt([]), undefined);
    const [a] = await webhooks.list({ endpoint: 'chat' }, 10);
    assert.deepEqual([a!.status, a!.attempts, a!.last_status, a!.last_error, a!.delivered_at, a!.event_type], ['failed', 2, null, 'timeout', null, 'request.created']);
    const [b] = await webhooks.list({ status: 'delivered' }, 10);
    assert.deepEqual([b!.id, b!.last_status, b!.last_error, b!.delivered_at, b!.created_at], ['dlv_b', 204, null, new Date(T0 + 5).toISOString(), new Date(T0).toISOString()]);
    assert.equal((await webhooks.list({ eventType: 'request.approved' }, 10)).length, 0);
    assert.equal((await webhooks.list({ eventType: 'request.created' }, 10)).length, 2);
  });

  forEachStore('webhook outbox: due takes the earliest first, up to the limit; newest listed first', async (open) => {
    const { webhooks } = (await open()).access;
    await webhooks.enqueue([{ id: 'dlv_2', endpoint: 'chat', eventType: 'e', body: '2' }], T0 + 2);
    await webhooks.enqueue([{ id: 'dlv_1', endpoint: 'chat', eventType: 'e', body: '1' }], T0 + 1);
    await webhooks.enqueue([{ id: 'dlv_3', endpoint: 'chat', eventType: 'e', body: '3' }], T0 + 3);
    assert.deepEqual((await webhooks.list({}, 10)).map((d) => d.id), ['dlv_3', 'dlv_2', 'dlv_1']);
    assert.deepEqual((await webhooks.due('chat', T0 + 10, 2)).map((d) => d.body), ['1', '2']);
  });
});

// ── Replicas on one PostgreSQL database ──────────────────────────────────────────────────────

/** Two stores over one fresh database: two replicas. */
async function twoReplicas(t: { after(fn: () => Promise<void>): void }): Promise<[PostgresStore, PostgresStore]> {
  const url = await freshStoreUrl();
  const a = await PostgresStore.open(url, { pool: 4 });
  const b = await PostgresStore.open(url, { pool: 4 });
  t.after(async () => {
    await a.close();
    await b.close();
  });
  return [a, b];
}

/** One replica's access service over `store`, deciding and auditing through the test world (the in-process locks are its own). */
function replicaService(w: World, store: Store, config: unknown): AccessService {
  return createAccessService({
    store: store.access, unitOfWork: store, clock: w.clock, audit: w.audit, decide: w.decide, revokeLeases: async () => ({}),
    config: validateAccessConfig(config, {}), webhooks: { notify() {} },
    accountable: (id) => accountableHumans(id, (x) => w.users.get(x), (team) => [...w.users.values()].filter((u) => u.parents.some((p) => p.type === 'Team' && p.id === team)).map((u) => u.id)),
  });
}

/** Exactly one of the results fulfilled; returns it and the reasons of the others. */
function oneWinner<T>(results: PromiseSettledResult<T>[]): { value: T; reasons: unknown[] } {
  const ok = results.filter((x): x is PromiseFulfilledResult<T> => x.status === 'fulfilled');
  assert.equal(ok.length, 1, JSON.stringify(results.map((x) => (x.status === 'fulfilled' ? 'fulfilled' : String((x as PromiseRejectedResult).reason)))));
  return { value: ok[0]!.value, reasons: results.filter((x): x is PromiseRejectedResult => x.status === 'rejected').map((x) => x.reason) };
}

describe('two replicas on one PostgreSQL database', () => {
  test('guarded transitions race from both replicas: each takes effect once [postgres]', async (t) => {
    const [a, b] = await twoReplicas(t);
    for (let i = 0; i < 10; i++) {
      await a.access.requests.create(request(`req_${i}`));
      await a.access.grants.create(grant(`grt_${i}`, { kind: 'break-glass' }));
      await a.access.breakGlass.open({ id: `bgr_${i}`, grantId: `grt_${i}`, user: 'user:erin@example.com', openedAt: T0 });
    }
    const count = (xs: boolean[]) => xs.filter(Boolean).length;
    for (let i = 0; i < 10; i++) {
      const [x, y] = [a.access, b.access];
      const bob = review('user:bob@example.com');
      assert.equal(count(await Promise.all([x.requests.addReview(`req_${i}`, bob), y.requests.addReview(`req_${i}`, { ...bob, decision_id: 'd-other' })])), 1, 'one review per reviewer');
      assert.equal(
        count(await Promise.all([x.requests.addReview(`req_${i}`, review('user:bob-admin@example.com', { human: 'user:carol@example.com' })), y.requests.addReview(`req_${i}`, review('workload:carol-tool', { human: 'user:carol@example.com' }))])),
        1,
        'one approval per accountable human',
      );
      assert.equal(await a.access.requests.approvals(`req_${i}`), 2);
      assert.equal(count(await Promise.all([x.requests.conclude(`req_${i}`, 'approved', T0, 'g'), y.requests.conclude(`req_${i}`, 'cancelled', T0, null)])), 1, 'concluded once');
      assert.equal(count(await Promise.all([x.requests.markExpiringNotified(`req_${i}`), y.requests.markExpiringNotified(`req_${i}`)])), 1, 'one notice');
      assert.equal(count(await Promise.all([x.grants.end(`grt_${i}`, { at: T0, by: 'a', reason: 'a' }), y.grants.end(`grt_${i}`, { at: T0, by: 'b', reason: 'b' })])), 1, 'ended once');
      assert.equal(count(await Promise.all([x.breakGlass.close(`bgr_${i}`, { reviewer: 'a', at: T0, summary: 'a' }), y.breakGlass.close(`bgr_${i}`, { reviewer: 'b', at: T0, summary: 'b' })])), 1, 'closed once');
    }
    // A deny by the same human is a review, not an approval: not limited by the one-approval-per-human rule.
    await a.access.requests.create(request('req_d'));
    assert.equal(await a.access.requests.addReview('req_d', review('user:x@example.com', { human: 'user:carol@example.com' })), true);
    assert.equal(await b.access.requests.addReview('req_d', review('user:y@example.com', { human: 'user:carol@example.com', verdict: 'deny' })), true);
  });

  test('comments from two replicas at once: numbered without gaps, each replica’s in its call order [postgres]', async (t) => {
    const [a, b] = await twoReplicas(t);
    await a.access.requests.create(request('req_1'));
    const texts = (who: string) => Array.from({ length: 8 }, (_, i) => `${who}${i}`);
    await Promise.all([
      ...texts('a').map((text) => a.access.requests.addComment('req_1', { author: 'user:alice@example.com', at: T0, text })),
      ...texts('b').map((text) => b.access.requests.addComment('req_1', { author: 'user:bob@example.com', at: T0, text })),
    ]);
    const got = (await b.access.requests.get('req_1'))!.comments.map((c) => c.text);
    assert.equal(got.length, 16);
    assert.deepEqual(got.filter((x) => x.startsWith('a')), texts('a'));
    assert.deepEqual(got.filter((x) => x.startsWith('b')), texts('b'));
  });

  test('two approvals racing for the last required approval: one grant, the other refused, nothing counted twice [postgres]', async (t) => {
    const [a, b] = await twoReplicas(t);
    const w = await world({ config: { approvals: 2 } });
    const base = w.users.get('user:carol@example.com')!;
    w.users.set('user:gina@example.com', { ...base, id: 'user:gina@example.com' });
    const svcA = replicaService(w, a, { approvals: 2 });
    const svcB = replicaService(w, b, { approvals: 2 });
    t.after(async () => {
      await svcA.stop();
      await svcB.stop();
      await w.close();
    });
    for (let i = 0; i < 5; i++) {
      const r = await svcA.createRequest(w.actor('alice'), parseCreateRequest({ role: 'db-reader', duration: '1h', reason: `weekly report ${i}` }));
      assert.equal((await svcB.approve(w.actor('carol'), r.id)).status, 'pending');
      const { value, reasons } = oneWinner(await Promise.allSettled([svcA.approve(w.actor('bob'), r.id), svcB.approve(w.actor('gina'), r.id)]));
      assert.equal(value.status, 'approved');
      assert.ok(reasons[0] instanceof RequestNotPending, String(reasons[0]));
      const after = (await svcB.getRequest(r.id)).request;
      assert.equal(after.status, 'approved');
      assert.equal(after.reviews.length, 2, 'the refused approval was not recorded');
      assert.equal(await b.access.requests.approvals(r.id), 2);
      const grants = (await a.access.grants.list({ identityId: 'user:alice@example.com' }, 100)).filter((g) => g.request_id === r.id);
      assert.deepEqual(grants.map((g) => g.id), [after.grant_id]);
    }
  });

  test('one approver on two replicas at once, or one human under two identities: counted once [postgres]', async (t) => {
    const [a, b] = await twoReplicas(t);
    const w = await world({ config: { approvals: 2 } });
    const base = w.users.get('user:bob@example.com')!;
    w.users.set('workload:bob-tool', { ...base, id: 'workload:bob-tool', kind: 'workload', owner: 'user:bob@example.com' });
    const svcA = replicaService(w, a, { approvals: 2 });
    const svcB = replicaService(w, b, { approvals: 2 });
    t.after(async () => {
      await svcA.stop();
      await svcB.stop();
      await w.close();
    });
    for (const [i, other] of [[0, 'bob'], [1, 'workload:bob-tool'], [2, 'bob'], [3, 'workload:bob-tool']] as const) {
      const r = await svcA.createRequest(w.actor('alice'), parseCreateRequest({ role: 'db-reader', duration: '1h', reason: `report ${i}` }));
      const { value } = oneWinner(await Promise.allSettled([svcA.approve(w.actor('bob'), r.id), svcB.approve(w.actor(other), r.id)]));
      assert.equal(value.status, 'pending', 'one person is one approval of the two required');
      const after = (await svcA.getRequest(r.id)).request;
      assert.deepEqual([after.status, after.reviews.length], ['pending', 1]);
      assert.equal(await b.access.requests.approvals(r.id), 1);
      assert.deepEqual((await a.access.requests.recordedHumans(r.id)).earlierHumans, ['user:bob@example.com']);
      // A second person completes it.
      assert.equal((await svcB.approve(w.actor('carol'), r.id)).status, 'approved');
    }
  });

  test('two replicas claiming the same webhook deliveries: each is handed to one; an abandoned claim runs out [postgres]', async (t) => {
    const [a, b] = await twoReplicas(t);
    const rows = Array.from({ length: 40 }, (_, i) => ({ id: `dlv_${String(i).padStart(2, '0')}`, endpoint: 'chat', eventType: 'e', body: String(i) }));
    await a.access.webhooks.enqueue(rows, T0);
    const claimed: string[][] = [[], []];
    for (;;) {
      const [x, y] = await Promise.all([a.access.webhooks.due('chat', T0, 3), b.access.webhooks.due('chat', T0, 3)]);
      if (x.length === 0 && y.length === 0) break;
      claimed[0]!.push(...x.map((d) => d.id));
      claimed[1]!.push(...y.map((d) => d.id));
    }
    const all = [...claimed[0]!, ...claimed[1]!];
    assert.equal(new Set(all).size, all.length, 'no delivery handed to both');
    assert.deepEqual(all.sort(), rows.map((r) => r.id));
    assert.equal(await a.access.webhooks.pendingCount(), 40, 'claimed is still pending');
    assert.equal(await b.access.webhooks.nextAttemptAt([]), T0 + DELIVERY_CLAIM_MS, 'the claims end then');

    // Replica A "dies" holding dlv_00; B records the others; dlv_00 is due again once the claim runs out.
    for (const id of all.filter((x) => x !== 'dlv_00')) await b.access.webhooks.delivered(id, { attempts: 1, status: 204, at: T0 + 1 });
    assert.deepEqual(await b.access.webhooks.due('chat', T0 + DELIVERY_CLAIM_MS - 1, 10), []);
    assert.deepEqual((await b.access.webhooks.due('chat', T0 + DELIVERY_CLAIM_MS, 10)).map((d) => [d.id, d.attempts]), [['dlv_00', 0]]);
    await b.access.webhooks.delivered('dlv_00', { attempts: 1, status: 204, at: T0 + DELIVERY_CLAIM_MS + 1 });
    // A comes back late with its failed attempt: it does not undo B's delivery.
    await a.access.webhooks.attemptFailed('dlv_00', { status: 'pending', attempts: 1, lastStatus: null, error: 'timeout', nextAttemptAt: T0 + 1 });
    const [d] = await a.access.webhooks.list({ status: 'delivered' }, 1);
    assert.equal(await a.access.webhooks.pendingCount(), 0);
    assert.deepEqual([d!.status, d!.attempts, d!.last_status], ['delivered', 1, 204]);
  });

  test('two dispatchers on two replicas deliver each event once [postgres]', async (t) => {
    const [a, b] = await twoReplicas(t);
    const secret = 'whsec-test-0123456789abcdef';
    const receiver = await startReceiver(secret);
    const cfg = validateAccessConfig({ webhooks: { backoff_base: '20ms', backoff_max: '200ms', timeout: '30s', endpoints: [{ name: 'chat', url: receiver.url, secret_env: 'S' }] } }, { S: secret });
    const fetch = outboundFetch({ allowPrivate: LOOPBACK });
    const da = new WebhookDispatcher({ outbox: a.access.webhooks, config: cfg.webhooks, fetch, concurrency: 2 });
    const db = new WebhookDispatcher({ outbox: b.access.webhooks, config: cfg.webhooks, fetch, concurrency: 2 });
    t.after(async () => {
      await da.stop();
      await db.stop();
      await receiver.close();
    });
    for (let i = 0; i < 30; i++) (i % 2 ? da : db).notify('request.created', { n: i });
    da.start();
    db.start();
    assert.equal(await da.idle(60_000), true);
    assert.equal(await db.idle(60_000), true);
    const deliveries = receiver.received.map((r) => r.delivery);
    assert.equal(deliveries.length, 30);
    assert.equal(new Set(deliveries).size, 30, 'no delivery sent twice');
    assert.ok(receiver.received.every((r) => r.valid));
    assert.equal((await a.access.webhooks.list({ status: 'delivered' }, 100)).length, 30);
  });
});
