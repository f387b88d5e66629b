// Access requests, approvals and grants over a real DecisionPoint + WasmEngine + AuditLog.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ApproverNotAllowed, RequestNotAllowed, RequestNotPending, SelfApproval, parseCreateRequest, validateAccessConfig } from '../../src/access/index.ts';
import type { AccessRequest } from '../../src/access/index.ts';
import { InvalidInput } from '../../src/common/errors.ts';
import { ORDERS, RecordingNotifier, world } from './helpers.ts';
import type { World } from './helpers.ts';

const CONFIG = {
  pending_ttl: '1h',
  rules: [
    { name: 'prod-db-admin', match: { environment: 'prod', action: 'db.admin' }, approvals: 2, max_duration: '4h', require_ticket: true, reviewers: ['user:bob@example.com', 'user:carol@example.com'] },
  ],
};

describe('access requests', () => {
  let w: World;
  let notes: RecordingNotifier;
  before(async () => {
    notes = new RecordingNotifier();
    w = await world({ config: CONFIG, notifier: notes });
  });
  after(() => w.close());

  const adminOrders = (extra: Record<string, unknown> = {}) =>
    parseCreateRequest({ resource: 'Database::"orders"', actions: ['db.admin'], duration: '2h', reason: 'fix stuck migration', ticket: 'INC-42', ...extra });

  test('validation: reason, ticket when the rule demands it, duration cap', async () => {
    const alice = w.actor('alice');
    assert.throws(() => parseCreateRequest({ resource: 'Database::"orders"', actions: ['db.admin'], duration: '2h' }), (e: InvalidInput) => e.extra.field === 'reason');
    assert.throws(() => parseCreateRequest({ role: 'x', resource: 'Database::"orders"', duration: '1h', reason: 'r' }), InvalidInput);
    await assert.rejects(w.service.createRequest(alice, adminOrders({ ticket: undefined })), (e: InvalidInput) => e.extra.field === 'ticket' && /prod-db-admin/.test(e.message));
    await assert.rejects(w.service.createRequest(alice, adminOrders({ duration: '5h' })), (e: InvalidInput) => e.extra.field === 'duration');
    await assert.rejects(w.service.createRequest(alice, { ...adminOrders(), reason: '   ' }), InvalidInput);
  });

  test('policy must allow access.request', async () => {
    const svc = w.service;
    // bob is a User too, so allowed; a Cedar deny comes from a principal the policy does not cover.
    w.users.set('agent:x', { ...w.users.get('user:dave@example.com')!, id: 'agent:x', kind: 'agent' });
    await assert.rejects(svc.createRequest({ ...w.actor('dave'), id: 'agent:x' }, adminOrders()), RequestNotAllowed);
  });

  test('two approvals from other allowed users turn a request into a grant; self and non-approvers refused', async () => {
    const alice = w.actor('alice');
    const r = await w.service.createRequest(alice, adminOrders());
    assert.equal(r.status, 'pending');
    assert.equal(r.required_approvals, 2);
    assert.deepEqual(r.rules, ['prod-db-admin']);
    assert.match((await w.service.getRequest(r.id)).status, /^waiting for 2 approvals: bob@example.com \(pending\), carol@example.com \(pending\) — expires in 1 h$/);

    // Before the grant, db.admin on orders is denied.
    assert.equal((await w.decideData(alice, 'db.admin', ORDERS)).decision, 'deny');

    await assert.rejects(w.service.approve(alice, r.id), SelfApproval);
    await assert.rejects(w.service.approve(w.actor('dave'), r.id), ApproverNotAllowed);

    w.clock.advance(8 * 60_000);
    const one = await w.service.approve(w.actor('bob'), r.id, 'looks right');
    assert.equal(one.status, 'pending');
    assert.equal((await w.service.getRequest(r.id)).status, 'waiting for 2 approvals (1 more needed): bob@example.com (approved), carol@example.com (pending) — expires in 52 min');
    await assert.rejects(w.service.approve(w.actor('bob'), r.id), /already reviewed/);

    const two = await w.service.approve(w.actor('carol'), r.id);
    assert.equal(two.status, 'approved');
    assert.ok(two.grant_id);
    assert.match((await w.service.getRequest(r.id)).status, /^approved by bob@example.com, carol@example.com; grant active — ends in 2 h$/);
    await assert.rejects(w.service.approve(w.actor('carol'), r.id), RequestNotPending);

    const ctx = await w.service.activeGrants(alice.id);
    assert.deepEqual(ctx.grants, ['Database::orders:db.admin']);
    assert.deepEqual(ctx.grantIds, [two.grant_id]);
    assert.equal(ctx.breakGlass, false);
    // The login from 8 minutes ago is too old for db.admin (step-up forbid); a fresh MFA login is allowed.
    const stale = await w.decideData(alice, 'db.admin', ORDERS);
    assert.deepEqual([stale.decision, stale.reasons], ['deny', ['admin-needs-recent-mfa']]);
    assert.equal((await w.decideData(w.actor('alice'), 'db.admin', ORDERS)).decision, 'allow');
    // Another user is unaffected.
    assert.equal((await w.decideData(w.actor('dave'), 'db.admin', ORDERS)).decision, 'deny');

    // The grant ends on time: stops counting at once, and the sweep revokes its leases.
    w.clock.advance(2 * 3_600_000);
    assert.deepEqual((await w.service.activeGrants(alice.id)).grants, []);
    assert.deepEqual((await w.decideData(w.actor('alice'), 'db.admin', ORDERS)).reasons, []);
    const swept = await w.service.sweep();
    assert.deepEqual(swept.endedGrants, [two.grant_id]);
    assert.deepEqual(w.revoked.map((x) => x.grantId), [two.grant_id]);
    assert.equal(w.revoked[0]!.by, 'system:expiry');

    const types = (await w.audit.query({ stream: 'admin' })).map((e) => e.type);
    for (const t of ['access.requested', 'access.review_refused', 'access.approval', 'grant.created', 'grant.ended']) assert.ok(types.includes(t), t);
    assert.deepEqual(notes.types().filter((t) => t.startsWith('request.')), ['request.created', 'request.approved']);
  });

  test('revocation by an approver ends the grant and revokes its leases; the holder cannot be revoked by a stranger', async () => {
    const alice = w.actor('alice');
    const r = await w.service.createRequest(alice, adminOrders());
    await w.service.approve(w.actor('bob'), r.id);
    const done = await w.service.approve(w.actor('carol'), r.id);
    await assert.rejects(w.service.revokeGrant(w.actor('dave'), done.grant_id!, 'no'), /not allowed/);
    const before = w.revoked.length;
    const g = await w.service.revokeGrant(w.actor('bob'), done.grant_id!, 'incident closed');
    assert.equal(g.status, 'ended');
    assert.equal(g.ended_by, 'user:bob@example.com');
    assert.deepEqual(w.revoked.slice(before), [{ grantId: g.id, by: 'user:bob@example.com', reason: `grant ${g.id} ended: incident closed` }]);
    assert.equal((await w.decideData(alice, 'db.admin', ORDERS)).decision, 'deny');
    assert.ok((await w.audit.query({ stream: 'admin', type: 'grant.revoked' })).length === 1);
  });

  test('role requests: one approval by policy, temporary Role parent, session-bound grant ends on logout', async () => {
    const alice = w.actor('alice');
    const r = await w.service.createRequest(alice, parseCreateRequest({ role: 'db-reader', duration: '1h', reason: 'report', session_bound: true }));
    assert.equal(r.required_approvals, 1);
    assert.equal((await w.service.getRequest(r.id)).status, 'waiting for 1 approval — expires in 1 h');
    const ok = await w.service.approve(w.actor('bob'), r.id);
    assert.equal(ok.status, 'approved');
    const ctx = await w.service.activeGrants(alice.id);
    assert.deepEqual(ctx.parents, [{ type: 'Role', id: 'db-reader' }]);
    assert.ok(ctx.grants.includes('role:db-reader'));
    assert.equal((await w.decideData(alice, 'db.select', ORDERS)).decision, 'allow');
    const ended = await w.service.onLogout(alice.id);
    assert.equal(ended.length, 1);
    assert.equal(ended[0]!.end_reason, 'requester logged out (session-bound grant)');
    assert.equal((await w.decideData(alice, 'db.select', ORDERS)).decision, 'deny');
  });

  test('a future start time: the grant exists but does not count until it starts', async () => {
    const alice = w.actor('alice');
    const start = w.clock.now() + 30 * 60_000;
    const r = await w.service.createRequest(alice, parseCreateRequest({ role: 'db-reader', duration: '1h', reason: 'night job', start_at: new Date(start).toISOString() }));
    const ok = await w.service.approve(w.actor('carol'), r.id);
    assert.match((await w.service.getRequest(ok.id)).status, /grant starts in 30 min/);
    assert.deepEqual((await w.service.activeGrants(alice.id)).grants, []);
    w.clock.advance(31 * 60_000);
    assert.deepEqual((await w.service.activeGrants(alice.id)).grants, ['role:db-reader']);
    await w.service.revokeGrant(alice, ok.grant_id!, 'done early');
  });

  test('pending requests expire (with one expiring notice first); deny, cancel, comment', async () => {
    const alice = w.actor('alice');
    const a = await w.service.createRequest(alice, adminOrders());
    const b = await w.service.createRequest(alice, adminOrders());
    const c = await w.service.createRequest(alice, adminOrders());
    w.clock.advance(52 * 60_000);
    const s1 = await w.service.sweep();
    assert.deepEqual(new Set(s1.expiring), new Set([a.id, b.id, c.id]));
    assert.deepEqual((await w.service.sweep()).expiring, []); // once only

    await w.service.comment(alice, b.id, 'ping');
    await w.service.comment(w.actor('bob'), b.id, 'why not a read-only role?');
    await assert.rejects(w.service.comment(w.actor('dave'), b.id, 'hi'), /not allowed/);
    const denied = await w.service.deny(w.actor('bob'), b.id, 'use the reader role');
    assert.equal(denied.status, 'denied');
    assert.equal(denied.comments.length, 2);
    assert.equal((await w.service.getRequest(b.id)).status, 'denied by bob@example.com: use the reader role');
    await assert.rejects(w.service.cancel(w.actor('bob'), c.id), /only the requester/);
    assert.equal((await w.service.cancel(alice, c.id)).status, 'cancelled');

    w.clock.advance(9 * 60_000);
    await assert.rejects(w.service.approve(w.actor('bob'), a.id), (e: RequestNotPending) => e.extra.state === 'expired');
    const got: AccessRequest = (await w.service.getRequest(a.id)).request;
    assert.equal(got.status, 'expired');
    assert.equal((await w.service.getRequest(a.id)).status, 'expired without enough approvals (0 of 2)');
    for (const t of ['request.expiring', 'request.denied', 'request.cancelled', 'request.expired']) assert.ok(notes.types().includes(t), t);
    assert.ok((await w.service.listRequests({ status: 'expired' })).some((x) => x.request.id === a.id));
  });

  test('config validation names the field', () => {
    assert.throws(() => validateAccessConfig({ rules: [{ name: 'x', match: {} }] }, {}), (e: InvalidInput) => e.extra.field === 'access.rules[0].match');
    assert.throws(() => validateAccessConfig({ rules: [{ name: 'x', match: { role: 'r' }, approvals: 0 }] }, {}), (e: InvalidInput) => e.extra.field === 'access.rules[0].approvals');
    assert.throws(() => validateAccessConfig({ break_glass: { max_duration: '5h' } }, {}), (e: InvalidInput) => e.extra.field === 'access.break_glass.max_duration');
    assert.throws(() => validateAccessConfig({ webhooks: { endpoints: [{ name: 'c', url: 'http://chat.example/x', secret_env: 'S' }] } }, { S: 'x'.repeat(32) }), (e: InvalidInput) => e.extra.field === 'access.webhooks.endpoints[0].url');
    assert.throws(() => validateAccessConfig({ webhooks: { endpoints: [{ name: 'c', url: 'https://chat.example/x', secret: 'inline' }] } }, {}), (e: InvalidInput) => e.extra.field === 'access.webhooks.endpoints[0].secret');
    assert.throws(() => validateAccessConfig({ webhooks: { endpoints: [{ name: 'c', url: 'https://chat.example/x', secret_env: 'S' }] } }, {}), (e: InvalidInput) => e.extra.field === 'access.webhooks.endpoints[0].secret_env');
    assert.throws(() => validateAccessConfig({ bogus: 1 }, {}), (e: InvalidInput) => e.extra.field === 'access.bogus');
    const ok = validateAccessConfig({ webhooks: { endpoints: [{ name: 'c', url: 'https://chat.example/x', secret_env: 'S', events: ['request.created'] }] } }, { S: 'x'.repeat(32) });
    assert.equal(ok.pending_ttl_ms, 3_600_000);
    assert.equal(ok.break_glass.max_duration_ms, 3_600_000);
  });
});
