// Issue #8 items 4, 5, 8 over the real decision stack (WasmEngine + DecisionPoint + AuditLog):
// rules govern what a request reaches (credential targets, ancestors, type/env/boundary,
// overlapping rules, break-glass caps, stricter rules at approval time); separation of duties by
// accountable humans; a blank or invisible reason/ticket is no purpose anywhere.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { SeparationOfDuties, createAccessService, parseCreateRequest, validateAccessConfig } from '../../src/access/index.ts';
import type { AccessService } from '../../src/access/index.ts';
import { InvalidInput } from '../../src/common/errors.ts';
import type { EntityUid } from '../../src/policy/engine/types.ts';
import { ORDERS, POLICIES, RESOURCES, world } from './helpers.ts';
import type { World } from './helpers.ts';

const H = 3_600_000;
const EXTRA_RESOURCES = [
  { type: 'Table', id: 'orders.payments', boundary: 'application', environment: 'prod', parents: [{ type: 'Database', id: 'orders' }], attributes: {} },
  { type: 'Database', id: 'ledger', boundary: 'platform', environment: 'prod', parents: [], attributes: {} },
  { type: 'Table', id: 'scratch.pii', boundary: 'application', environment: 'dev', parents: [{ type: 'Database', id: 'scratch' }], attributes: {} },
  { type: 'Database', id: 'sandbox', boundary: 'application', environment: 'dev', parents: [], attributes: {} },
];
const ALL = [...RESOURCES, ...EXTRA_RESOURCES];
const TARGETS: Record<string, EntityUid> = {
  'orders-db': { type: 'Database', id: 'orders' },
  'ledger-db': { type: 'Database', id: 'ledger' },
  'scratch-db': { type: 'Database', id: 'scratch' },
  'sandbox-db': { type: 'Database', id: 'sandbox' },
};
const RULES = {
  rules: [
    { name: 'prod-dbs', match: { resource_type: 'Database', environment: 'prod' }, approvals: 2, max_duration: '4h' },
    { name: 'platform', match: { boundary: 'platform' }, approvals: 3, max_duration: '1h' },
    { name: 'orders-short', match: { resource: 'Database::"orders"' }, approvals: 1, max_duration: '2h' },
    { name: 'prod-admin-ticket', match: { environment: 'prod', action: 'db.admin' }, require_ticket: true },
    { name: 'pii-table', match: { resource: 'Table::"scratch.pii"' }, approvals: 2, max_duration: '30m' },
  ],
  break_glass: { max_duration: '3h' },
};
// Workloads may ask too (for separation of duties between a human and what they own), and
// purpose-gated permits show what a blank purpose does to a decision.
const EXTRA_POLICIES = `
@id("workloads-request")
permit (principal is Workload, action == Action::"access.request", resource);
@id("dba-approves-platform")
permit (principal in Team::"dba", action == Action::"access.approve", resource == Database::"ledger");
@id("dba-approves-stored-credential-requests")
permit (principal in Team::"dba", action == Action::"access.approve", resource == AccessRequest::"credential:orders-db");
@id("scratch-with-reason")
permit (principal, action == Action::"db.select", resource == Database::"scratch") when { context.purpose has reason };
@id("scratch-with-ticket")
permit (principal, action == Action::"db.insert", resource == Database::"scratch") when { context.purpose has ticket };
@id("oncall-dev-break-glass")
permit (principal in Team::"oncall", action == Action::"breakglass.use", resource)
when { resource == Database::"scratch" || resource == Database::"sandbox" };
`;
const BLANKS = ['', '   ', '\t\n', '\u200b', '\u00a0\u2003\u3000', '\u2060\ufeff', '\u200c\u200d', '\u3164', '\u00ad', ' \u2028 ', '\u2800'];

describe('rules govern what a request reaches (8.4)', () => {
  let w: World;
  before(async () => {
    w = await world({ config: RULES, resources: EXTRA_RESOURCES, credentialTargets: TARGETS, policies: POLICIES + EXTRA_POLICIES });
  });
  after(() => w.close());
  const ask = (body: Record<string, unknown>) => w.service.createRequest(w.actor('alice'), parseCreateRequest({ duration: '1h', reason: 'fix it', ticket: 'INC-1', ...body }));

  test('a credential request is matched by the resource its target guards', async () => {
    const r = await ask({ credential: { target: 'orders-db', permission: 'readwrite' } });
    assert.deepEqual([...r.rules].sort(), ['orders-short', 'prod-admin-ticket', 'prod-dbs']);
    assert.equal(r.required_approvals, 2, 'the prod database rule governs the credential');
    assert.deepEqual(r.target, { kind: 'credential', target: 'orders-db', permission: 'readwrite', resource: { type: 'Database', id: 'orders' } });
    // … and it is the same as asking for the resource itself.
    const same = await ask({ resource: 'Database::"orders"', actions: ['db.select'] });
    assert.equal(same.required_approvals, r.required_approvals);
    // A credential may carry any action: the db.admin rule's ticket requirement applies.
    await assert.rejects(ask({ credential: { target: 'orders-db' }, ticket: undefined }), (e: InvalidInput) => e.extra.field === 'ticket');
    // Unknown targets and resources outside the target are refused (no choosing the rules or approvers).
    await assert.rejects(ask({ credential: { target: 'nope-db' } }), (e: InvalidInput) => e.extra.field === 'credential.target');
    await assert.rejects(ask({ credential: { target: 'orders-db', resource: 'Database::"scratch"' } }), (e: InvalidInput) => e.extra.field === 'credential.resource');
    const inside = await ask({ credential: { target: 'orders-db', resource: 'Table::"orders.payments"' } });
    assert.equal(inside.required_approvals, 2);
  });

  test('rules by type, environment and boundary; ancestors count; overlapping rules give the strictest', async () => {
    const table = await ask({ resource: 'Table::"orders.payments"', actions: ['db.select'] });
    assert.deepEqual([...table.rules].sort(), ['orders-short', 'prod-dbs'], 'a table inside the prod database is governed by its rules');
    assert.equal(table.required_approvals, 2);
    await assert.rejects(ask({ resource: 'Table::"orders.payments"', actions: ['db.select'], duration: '3h' }), (e: InvalidInput) => e.extra.field === 'duration' && e.extra.max_duration_ms === 2 * H);

    // ledger is in the platform boundary: asked by someone who lives there (the boundary guard holds for requests too).
    w.users.set('user:paula@example.com', { ...w.users.get('user:alice@example.com')!, id: 'user:paula@example.com', boundary: 'platform' });
    const paula = (body: Record<string, unknown>) => w.service.createRequest(w.actor('paula'), parseCreateRequest({ duration: '1h', reason: 'fix it', ticket: 'INC-1', ...body }));
    await assert.rejects(ask({ credential: { target: 'ledger-db' } }), /not allowed to request/);
    const ledger = await paula({ credential: { target: 'ledger-db' } });
    assert.deepEqual([...ledger.rules].sort(), ['platform', 'prod-admin-ticket', 'prod-dbs']);
    assert.equal(ledger.required_approvals, 3, 'max of the approvals');
    await assert.rejects(paula({ credential: { target: 'ledger-db' }, duration: '2h' }), (e: InvalidInput) => e.extra.max_duration_ms === H);

    const dev = await ask({ credential: { target: 'sandbox-db' }, duration: '8h' });
    assert.deepEqual(dev.rules, []);
    assert.equal(dev.required_approvals, 1);

    // A grant on a database reaches its tables (`resource in`): a rule on one of them governs it.
    for (const body of [{ credential: { target: 'scratch-db' } }, { resource: 'Database::"scratch"', actions: ['db.select'] }]) {
      const r = await ask({ ...body, duration: '30m' });
      assert.deepEqual(r.rules, ['pii-table'], JSON.stringify(body));
      assert.equal(r.required_approvals, 2);
      await assert.rejects(ask({ ...body, duration: '31m' }), (e: InvalidInput) => e.extra.max_duration_ms === 30 * 60_000);
    }
  });

  test('a credential request needs its approvals; the grant lasts what was asked, within the caps', async () => {
    const r = await ask({ credential: { target: 'orders-db', permission: 'readwrite' }, duration: '2h' });
    const one = await w.service.approve(w.actor('bob'), r.id);
    assert.equal(one.status, 'pending', 'one approval is not enough for a prod database credential');
    const two = await w.service.approve(w.actor('carol'), r.id);
    assert.equal(two.status, 'approved');
    const g = await w.service.grants.get(two.grant_id!);
    assert.equal(Date.parse(g.end_at) - Date.parse(g.start_at), 2 * H);
    assert.deepEqual(g.grants, ['credential:orders-db', 'credential:orders-db:readwrite']);
  });

  test('rules in force at approval bind too (a restart with stricter rules): more approvals, shorter grant', async () => {
    const lenient = createAccessService({
      store: w.accessStore, unitOfWork: w.unitOfWork, clock: w.clock, audit: w.audit, decide: w.decide, revokeLeases: async () => ({}),
      config: validateAccessConfig({}, {}),
      resourceInfo: (uid) => ALL.find((x) => x.type === uid.type && x.id === uid.id),
      webhooks: { notify() {} },
    });
    try {
      const r = await lenient.createRequest(w.actor('alice'), parseCreateRequest({ resource: 'Database::"orders"', actions: ['db.select'], duration: '6h', reason: 'backfill' }));
      assert.equal(r.required_approvals, 1);
      const one = await w.service.approve(w.actor('bob'), r.id);
      assert.equal(one.status, 'pending', 'the prod rule now asks for two');
      assert.equal(one.required_approvals, 2);
      const two = await w.service.approve(w.actor('carol'), r.id);
      const g = await w.service.grants.get(two.grant_id!);
      assert.equal(Date.parse(g.end_at) - Date.parse(g.start_at), 2 * H, 'clamped to the strictest cap now in force');

      // A credential request stored without its target's resource (made where targets were unknown)
      // is still matched by that resource when it is approved.
      const old = await lenient.createRequest(w.actor('alice'), parseCreateRequest({ credential: { target: 'orders-db' }, duration: '6h', reason: 'backfill' }));
      assert.equal(old.required_approvals, 1);
      assert.equal(old.target.kind === 'credential' && old.target.resource, undefined);
      // (Its approvers decide on AccessRequest::"credential:orders-db": dba may, by policy.)
      const byOld = await w.service.approve(w.actor('bob'), old.id);
      assert.equal(byOld.status, 'pending', 'the prod rule asks for two, whatever was stored');
      assert.equal(byOld.required_approvals, 2);
    } finally {
      await lenient.stop();
    }
  });

  test('break-glass never outlasts the strictest rule for its target', async () => {
    const erin = w.actor('erin');
    await assert.rejects(w.service.startBreakGlass(erin, { resource: ORDERS, reason: 'orders down', duration_ms: 2.5 * H }), (e: InvalidInput) => e.extra.field === 'duration' && e.extra.max_duration_ms === 2 * H);
    const capped = await w.service.startBreakGlass(erin, { resource: ORDERS, reason: 'orders down' });
    assert.equal(Date.parse(capped.grant.end_at) - Date.parse(capped.grant.start_at), 2 * H, 'default: the strictest cap, not break_glass.max_duration');
    const pii = await w.service.startBreakGlass(erin, { resource: { type: 'Database', id: 'scratch' }, reason: 'scratch down' });
    assert.equal(Date.parse(pii.grant.end_at) - Date.parse(pii.grant.start_at), 30 * 60_000, 'a rule on a table inside caps it');
    const dev = await w.service.startBreakGlass(erin, { resource: { type: 'Database', id: 'sandbox' }, reason: 'sandbox down' });
    assert.equal(Date.parse(dev.grant.end_at) - Date.parse(dev.grant.start_at), 3 * H, 'no rule: break_glass.max_duration');
  });
});

describe('separation of duties counts accountable humans (8.5)', () => {
  let w: World;
  let svc: AccessService;
  before(async () => {
    w = await world({ config: { rules: [{ name: 'prod', match: { environment: 'prod' }, approvals: 2 }] }, policies: POLICIES + EXTRA_POLICIES });
    svc = w.service;
    const base = w.users.get('user:bob@example.com')!;
    const add = (id: string, kind: string, owner: string | null, teams: string[]) => w.users.set(id, { ...base, id, kind, owner, parents: teams.map((t) => ({ type: 'Team', id: t })) });
    add('workload:alice-tool', 'workload', 'user:alice@example.com', ['dba']);
    add('workload:alice-tool-child', 'workload', 'workload:alice-tool', ['dba']);
    add('workload:bob-tool', 'workload', 'user:bob@example.com', ['dba']);
    add('user:bob-admin@example.com', 'user', 'user:bob@example.com', ['dba']);
    add('workload:orphan', 'workload', null, ['dba']);
    add('workload:dba-tool', 'workload', 'team:dba', ['dba']);
    add('workload:loop-a', 'workload', 'workload:loop-b', ['dba']);
    add('workload:loop-b', 'workload', 'workload:loop-a', ['dba']);
  });
  after(() => w.close());
  const request = (who: string) => svc.createRequest(w.actor(who), parseCreateRequest({ resource: 'Database::"orders"', actions: ['db.select'], duration: '1h', reason: 'report' }));
  const refused = (why: string) => (e: SeparationOfDuties) => e instanceof SeparationOfDuties && e.extra.why === why;

  test('the requester under another identity, or what they own (transitively), cannot review', async () => {
    const r = await request('alice');
    await assert.rejects(svc.approve(w.actor('workload:alice-tool'), r.id), refused('same_accountable_human'));
    await assert.rejects(svc.approve(w.actor('workload:alice-tool-child'), r.id), refused('same_accountable_human'));
    await assert.rejects(svc.deny(w.actor('workload:alice-tool'), r.id), refused('same_accountable_human'), 'a deny is a review too');
    assert.equal((await svc.getRequest(r.id)).request.status, 'pending');
    const refusals = (await w.audit.query({ stream: 'admin', type: 'access.review_refused' })).filter((e) => e.payload.request_id === r.id);
    assert.deepEqual(refusals.map((e) => e.payload.why), ['same_accountable_human', 'same_accountable_human', 'same_accountable_human']);
  });

  test('the owner of a requesting workload (or its team) cannot approve it', async () => {
    const byTool = await request('workload:alice-tool');
    await assert.rejects(svc.approve(w.actor('alice'), byTool.id), refused('same_accountable_human'));
    const byTeamTool = await request('workload:dba-tool');
    await assert.rejects(svc.approve(w.actor('bob'), byTeamTool.id), refused('same_accountable_human'), 'bob is in the owning team');
  });

  test('thresholds count distinct humans: a second approval by the same human under another identity is refused', async () => {
    const r = await request('alice');
    assert.equal((await svc.approve(w.actor('workload:bob-tool'), r.id)).status, 'pending');
    await assert.rejects(svc.approve(w.actor('bob'), r.id), refused('already_approved_by_this_human'));
    await assert.rejects(svc.approve(w.actor('user:bob-admin@example.com'), r.id), refused('already_approved_by_this_human'));
    assert.equal((await svc.getRequest(r.id)).request.status, 'pending');
    assert.equal((await svc.approve(w.actor('carol'), r.id)).status, 'approved');
  });

  test('an identity with no single accountable human cannot review', async () => {
    const r = await request('alice');
    await assert.rejects(svc.approve(w.actor('workload:orphan'), r.id), refused('no_accountable_human'));
    await assert.rejects(svc.approve(w.actor('workload:dba-tool'), r.id), refused('no_accountable_human'), 'a team is many people');
    await assert.rejects(svc.approve(w.actor('workload:loop-a'), r.id), refused('no_accountable_human'), 'an owner cycle answers to no one');
  });

  test('after-action review of a break-glass: not by the user under another identity', async () => {
    const erinTool = 'workload:erin-tool';
    w.users.set(erinTool, { ...w.users.get('user:erin@example.com')!, id: erinTool, kind: 'workload', owner: 'user:erin@example.com' });
    w.users.set('user:erin-alt@example.com', { ...w.users.get('user:erin@example.com')!, id: 'user:erin-alt@example.com', owner: 'user:erin@example.com' });
    const bg = await svc.startBreakGlass(w.actor('erin'), { resource: ORDERS, reason: 'orders down', duration_ms: 60_000 });
    await svc.endBreakGlass(w.actor('erin'), bg.grant.id, 'done');
    await assert.rejects(svc.recordBreakGlassReview(w.actor(erinTool), bg.grant.id, 'fine'), refused('same_accountable_human'));
    await assert.rejects(svc.recordBreakGlassReview(w.actor('user:erin-alt@example.com'), bg.grant.id, 'fine'), refused('same_accountable_human'));
    await assert.rejects(svc.recordBreakGlassReview(w.actor('workload:orphan'), bg.grant.id, 'fine'), refused('no_accountable_human'));
    assert.equal((await svc.recordBreakGlassReview(w.actor('bob'), bg.grant.id, 'index rebuilt; fine')).status, 'closed');
  });
});

describe('a blank or invisible reason or ticket is no purpose (8.8)', () => {
  let w: World;
  before(async () => {
    w = await world({ config: { rules: [{ name: 'tickets', match: { resource: 'Database::"orders"' }, require_ticket: true }] }, policies: POLICIES + EXTRA_POLICIES });
  });
  after(() => w.close());

  test('decisions: the server drops it from context.purpose (and from the audit record)', async () => {
    const p = w.users.get('user:dave@example.com')!;
    const decide = (action: string, purpose: { reason?: string; ticket?: string }) =>
      w.dp.decide({ principal: p, claims: {}, authn: w.actor('dave').authn, sourceIp: '127.0.0.1', action, resource: { type: 'Database', id: 'scratch' }, purpose });
    assert.equal((await decide('db.select', { reason: 'weekly report' })).decision, 'allow');
    assert.equal((await decide('db.insert', { ticket: 'CHG-1' })).decision, 'allow');
    for (const blank of BLANKS) {
      const d = await decide('db.select', { reason: blank });
      assert.equal(d.decision, 'deny', `reason ${JSON.stringify(blank)} is no reason`);
      assert.equal((await decide('db.insert', { ticket: blank })).decision, 'deny', `ticket ${JSON.stringify(blank)} is no ticket`);
      await w.audit.flush();
      const ev = (await w.audit.query({ stream: 'authz' })).find((e) => e.payload.decision_id === d.decision_id);
      assert.deepEqual(ev?.payload.purpose, {});
    }
    assert.equal((await decide('db.select', { reason: '  padded  ' })).decision, 'allow');
  });

  test('access requests and break-glass refuse it', async () => {
    for (const blank of BLANKS) {
      await assert.rejects(
        w.service.createRequest(w.actor('alice'), { target: { kind: 'resource', resource: { type: 'Database', id: 'scratch' }, actions: ['db.select'] }, duration_ms: H, reason: blank }),
        (e: InvalidInput) => e.extra.field === 'reason',
        JSON.stringify(blank),
      );
      await assert.rejects(
        w.service.createRequest(w.actor('alice'), { target: { kind: 'resource', resource: ORDERS, actions: ['db.select'] }, duration_ms: H, reason: 'report', ticket: blank }),
        (e: InvalidInput) => e.extra.field === 'ticket',
        JSON.stringify(blank),
      );
      await assert.rejects(w.service.startBreakGlass(w.actor('erin'), { resource: ORDERS, reason: blank }), (e: InvalidInput) => e.extra.field === 'reason', JSON.stringify(blank));
    }
    const ok = await w.service.createRequest(w.actor('alice'), { target: { kind: 'resource', resource: ORDERS, actions: ['db.select'] }, duration_ms: H, reason: ' report\u200b', ticket: ' INC-9 ' });
    assert.equal(ok.ticket, 'INC-9');
  });
});
