// The access domain's SQLite repositories: what the port contract promises beyond plain reads and
// writes (a second review, conclusion or close is refused, comments keep their order under
// concurrency, a notice is marked once), the migrations kept from before the ports, and an
// approval racing another process over the same store.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { SqliteDb, migrate, openDatabase } from '../../src/store/sqlite/db.ts';
import { ACCESS_MIGRATIONS, SqliteAccessStore } from '../../src/store/sqlite/access.ts';
import type { NewGrant, NewRequest } from '../../src/access/ports.ts';
import { createAccessService, parseCreateRequest, RequestNotPending, validateAccessConfig } from '../../src/access/index.ts';
import { world } from '../access/helpers.ts';

const T0 = Date.parse('2026-03-02T10:00:00Z');
const MIN = 60_000;

function fresh() {
  const db = new SqliteDb(openDatabase(':memory:'));
  return { db, store: new SqliteAccessStore(db) };
}

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

describe('SQLite access repositories', () => {
  test('requests: round trip, one review per reviewer, concluded once, recorded humans', async () => {
    const { requests } = fresh().store;
    await requests.create(request('req_1', { start_at: T0 + 5 * MIN, ticket: 'INC-1' }));
    const r = (await requests.get('req_1'))!;
    assert.equal(r.status, 'pending');
    assert.equal(r.start_at, new Date(T0 + 5 * MIN).toISOString());
    assert.equal(r.expires_at, new Date(T0 + 60 * MIN).toISOString());
    assert.deepEqual(r.target, { kind: 'role', role: 'db-reader' });
    assert.deepEqual([r.ticket, r.session_bound, r.reviews, r.comments], ['INC-1', false, [], []]);
    assert.equal(await requests.get('req_nope'), undefined);

    const bob = { reviewer: 'user:bob@example.com', verdict: 'approve' as const, decision_id: 'd1', at: T0 + MIN, comment: 'ok', human: 'user:bob@example.com' };
    assert.equal(await requests.addReview('req_1', bob), true);
    assert.equal(await requests.addReview('req_1', { ...bob, verdict: 'deny', decision_id: 'd2' }), false, 'a second review by the same reviewer is refused');
    await requests.addReview('req_1', { ...bob, reviewer: 'user:carol@example.com', verdict: 'deny', human: null });
    assert.equal(await requests.approvals('req_1'), 1);
    assert.deepEqual(await requests.recordedHumans('req_1'), { subjectHumans: ['user:alice@example.com'], earlierHumans: ['user:bob@example.com'] });
    assert.deepEqual((await requests.get('req_1'))!.reviews.map((v) => [v.reviewer, v.verdict, v.comment]), [
      ['user:bob@example.com', 'approve', 'ok'],
      ['user:carol@example.com', 'deny', 'ok'],
    ]);

    await requests.setRequiredApprovals('req_1', 2);
    assert.equal(await requests.conclude('req_1', 'approved', T0 + 2 * MIN, 'grt_1'), true);
    assert.equal(await requests.conclude('req_1', 'cancelled', T0 + 3 * MIN, null), false, 'only a pending request is concluded');
    const done = (await requests.get('req_1'))!;
    assert.deepEqual([done.status, done.required_approvals, done.grant_id, done.decided_at], ['approved', 2, 'grt_1', new Date(T0 + 2 * MIN).toISOString()]);
  });

  test('requests: comments keep their order when written concurrently; list filters; expiry windows and one notice', async () => {
    const { requests } = fresh().store;
    await requests.create(request('req_a'));
    await requests.create(request('req_b', { requester: 'user:bob@example.com', created_at: T0 + 1, expires_at: T0 + 10 * MIN }));
    await requests.create(request('req_c', { created_at: T0 + 2, expires_at: T0 + 5 * MIN }));
    await Promise.all(['one', 'two', 'three'].map((text, i) => requests.addComment('req_a', { author: 'user:alice@example.com', at: T0 + i, text })));
    assert.deepEqual((await requests.get('req_a'))!.comments.map((c) => c.text), ['one', 'two', 'three']);

    assert.deepEqual((await requests.list({}, 10)).map((r) => r.id), ['req_c', 'req_b', 'req_a'], 'newest first');
    assert.deepEqual((await requests.list({}, 2)).map((r) => r.id), ['req_c', 'req_b']);
    assert.deepEqual((await requests.list({ requester: 'user:bob@example.com' }, 10)).map((r) => r.id), ['req_b']);
    assert.deepEqual((await requests.list({ reviewableBy: 'user:alice@example.com' }, 10)).map((r) => r.id), ['req_b']);
    await requests.conclude('req_c', 'cancelled', T0, null);
    assert.deepEqual((await requests.list({ status: 'pending' }, 10)).map((r) => r.id), ['req_b', 'req_a']);

    assert.deepEqual(await requests.overdue(T0 + 10 * MIN), ['req_b']);
    assert.deepEqual((await requests.expiringUnnotified(T0 + 5 * MIN, T0 + 60 * MIN)).sort(), ['req_a', 'req_b']);
    assert.equal(await requests.markExpiringNotified('req_a'), true);
    assert.equal(await requests.markExpiringNotified('req_a'), false, 'the notice is marked sent once');
    assert.deepEqual(await requests.expiringUnnotified(T0 + 5 * MIN, T0 + 60 * MIN), ['req_b']);
  });

  test('grants: active-at filter, holders, ended once, due, leases to revoke, session-bound', async () => {
    const { grants } = fresh().store;
    await grants.create(grant('grt_now'));
    await grants.create(grant('grt_later', { start_at: T0 + 30 * MIN, end_at: T0 + 90 * MIN, session_bound: true }));
    await grants.create(grant('grt_bg', { kind: 'break-glass', identity_id: 'user:erin@example.com', revokers: ['team:sre'], target: { kind: 'resource', resource: { type: 'Database', id: 'orders' }, actions: [] } }));
    const g = (await grants.get('grt_now'))!;
    assert.deepEqual([g.status, g.start_at, g.end_at, g.roles, g.grants], ['active', new Date(T0).toISOString(), new Date(T0 + 60 * MIN).toISOString(), [{ type: 'Role', id: 'db-reader' }], ['role:db-reader']]);
    assert.deepEqual((await grants.get('grt_bg'))!.revokers, ['team:sre']);
    assert.equal(await grants.get('grt_nope'), undefined);

    const alice = 'user:alice@example.com';
    assert.deepEqual((await grants.list({ identityId: alice, activeAt: T0 + MIN }, 10)).map((x) => x.id), ['grt_now']);
    assert.deepEqual((await grants.list({ identityId: alice, activeAt: T0 + 45 * MIN }, 10)).map((x) => x.id), ['grt_later', 'grt_now'], 'latest start first');
    assert.deepEqual((await grants.list({ identityId: alice, activeAt: T0 + 60 * MIN }, 10)).map((x) => x.id), ['grt_later'], 'the end is exclusive');
    assert.deepEqual((await grants.list({ kind: 'break-glass' }, 10)).map((x) => x.id), ['grt_bg']);
    assert.deepEqual((await grants.holders()).sort(), [alice, 'user:erin@example.com']);
    assert.deepEqual(await grants.activeSessionBound(alice), ['grt_later']);
    assert.deepEqual((await grants.due(T0 + 60 * MIN)).sort(), ['grt_bg', 'grt_now']);

    assert.equal(await grants.end('grt_now', { at: T0 + 2 * MIN, by: alice, reason: 'done' }), true);
    assert.equal(await grants.end('grt_now', { at: T0 + 3 * MIN, by: 'someone', reason: 'again' }), false, 'an ended grant stays as it ended');
    const ended = (await grants.get('grt_now'))!;
    assert.deepEqual([ended.status, ended.ended_by, ended.end_reason, ended.ended_at], ['ended', alice, 'done', new Date(T0 + 2 * MIN).toISOString()]);
    assert.deepEqual((await grants.list({ identityId: alice, activeAt: T0 + 3 * MIN }, 10)).map((x) => x.id), []);
    assert.deepEqual(await grants.leasesToRevoke(), ['grt_now']);
    await grants.markLeasesRevoked('grt_now');
    assert.deepEqual(await grants.leasesToRevoke(), []);
  });

  test('break-glass reviews: one per grant, closed once, listed by status', async () => {
    const { grants, breakGlass } = fresh().store;
    await grants.create(grant('grt_bg', { kind: 'break-glass' }));
    await breakGlass.open({ id: 'bgr_1', grantId: 'grt_bg', user: 'user:erin@example.com', openedAt: T0 });
    await assert.rejects(breakGlass.open({ id: 'bgr_2', grantId: 'grt_bg', user: 'user:erin@example.com', openedAt: T0 }), 'one review per grant');
    assert.deepEqual((await breakGlass.forGrant('grt_bg'))!.id, 'bgr_1');
    assert.deepEqual((await breakGlass.list('open')).map((r) => r.id), ['bgr_1']);
    assert.equal(await breakGlass.close('bgr_1', { reviewer: 'user:bob@example.com', at: T0 + MIN, summary: 'fine' }), true);
    assert.equal(await breakGlass.close('bgr_1', { reviewer: 'user:carol@example.com', at: T0 + 2 * MIN, summary: 'again' }), false);
    const rv = (await breakGlass.get('bgr_1'))!;
    assert.deepEqual([rv.status, rv.reviewer, rv.summary, rv.user], ['closed', 'user:bob@example.com', 'fine', 'user:erin@example.com']);
    assert.deepEqual(await breakGlass.list('open'), []);
    assert.equal((await breakGlass.list()).length, 1);
  });

  test('webhook outbox: due per endpoint, next attempt leaving out running endpoints, attempts recorded', async () => {
    const { webhooks } = fresh().store;
    await webhooks.enqueue([{ id: 'dlv_a', endpoint: 'chat', eventType: 'request.created', body: '{}' }, { id: 'dlv_b', endpoint: 'tickets', eventType: 'request.created', body: '{}' }], T0);
    assert.equal(await webhooks.pendingCount(), 2);
    assert.deepEqual(await webhooks.due('chat', T0, 10), [{ id: 'dlv_a', endpoint: 'chat', body: '{}', attempts: 0 }]);
    await webhooks.attemptFailed('dlv_a', { status: 'pending', attempts: 1, lastStatus: 500, error: 'HTTP 500', nextAttemptAt: T0 + 1000 });
    assert.deepEqual(await webhooks.due('chat', T0 + 999, 10), []);
    assert.equal(await webhooks.nextAttemptAt([]), T0);
    assert.equal(await webhooks.nextAttemptAt(['tickets']), T0 + 1000);
    assert.equal(await webhooks.nextAttemptAt(['tickets', 'chat']), undefined);
    await webhooks.delivered('dlv_b', { attempts: 1, status: 204, at: T0 + 5 });
    await webhooks.attemptFailed('dlv_a', { status: 'failed', attempts: 2, lastStatus: null, error: 'timeout', nextAttemptAt: T0 + 3000 });
    assert.equal(await webhooks.pendingCount(), 0);
    const [a] = await webhooks.list({ endpoint: 'chat' }, 10);
    assert.deepEqual([a!.status, a!.attempts, a!.last_status, a!.last_error, a!.delivered_at], ['failed', 2, null, 'timeout', null]);
    const [b] = await webhooks.list({ status: 'delivered' }, 10);
    assert.deepEqual([b!.id, b!.last_status, b!.last_error, b!.delivered_at], ['dlv_b', 204, null, new Date(T0 + 5).toISOString()]);
    assert.equal((await webhooks.list({ eventType: 'request.approved' }, 10)).length, 0);
  });

  test('a data dir migrated before the ports keeps its rows and gets the missing version', () => {
    const raw = openDatabase(':memory:');
    migrate(raw, 'access', ACCESS_MIGRATIONS.filter((m) => m.version === 1));
    raw.prepare(`INSERT INTO access_requests (id, requester, target, what, reason, duration_ms, session_bound, status, required_approvals, rules, reviewers, created_at, expires_at)
      VALUES ('req_old', 'user:alice@example.com', '{"kind":"role","role":"r"}', 'role r', 'old', 60000, 0, 'pending', 1, '[]', '[]', 1, 2)`).run();
    new SqliteAccessStore(new SqliteDb(raw));
    new SqliteAccessStore(new SqliteDb(raw)); // opening again applies nothing twice
    assert.deepEqual(raw.prepare("SELECT version FROM schema_migrations WHERE domain = 'access' ORDER BY version").all().map((r) => r.version), [1, 2]);
    assert.equal((raw.prepare("SELECT accountable FROM access_requests WHERE id = 'req_old'").get() as { accountable: string | null }).accountable, null);
  });
});

describe('two processes over one store', () => {
  test('concurrent last approvals through two services make one grant; the other is refused, nothing half-written', async () => {
    const w = await world({ config: { approvals: 1 } });
    // A second process: its own service (own in-process locks) over the same store.
    const other = createAccessService({
      store: w.accessStore, unitOfWork: w.unitOfWork, clock: w.clock, audit: w.audit, decide: w.decide, revokeLeases: async () => ({}),
      config: validateAccessConfig({ approvals: 1 }, {}), webhooks: { notify() {} },
    });
    try {
      const r = await w.service.createRequest(w.actor('alice'), parseCreateRequest({ role: 'db-reader', duration: '1h', reason: 'weekly report' }));
      const results = await Promise.allSettled([w.service.approve(w.actor('bob'), r.id), other.approve(w.actor('carol'), r.id)]);
      const ok = results.filter((x) => x.status === 'fulfilled');
      const refused = results.filter((x): x is PromiseRejectedResult => x.status === 'rejected');
      assert.equal(ok.length, 1, JSON.stringify(results.map((x) => x.status)));
      assert.ok(refused[0]!.reason instanceof RequestNotPending, String(refused[0]!.reason));
      const after = await w.service.requests.get(r.id);
      assert.equal(after.status, 'approved');
      assert.equal(after.reviews.length, 1, 'the refused review was not recorded');
      assert.deepEqual((await w.service.grants.list({ identityId: 'user:alice@example.com' })).map((g) => g.id), [after.grant_id]);
    } finally {
      await other.stop();
      await w.close();
    }
  });
});
