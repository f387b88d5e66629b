// Break-glass over the real decision stack, with revokers notified through a real signed webhook.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BreakGlassNotEligible, NotARevoker, ReviewNotAllowed, parseBreakGlass } from '../../src/access/index.ts';
import { InvalidInput } from '../../src/common/errors.ts';
import { ORDERS, world } from './helpers.ts';
import type { World } from './helpers.ts';
import { startReceiver } from './receiver.ts';
import type { Receiver } from './receiver.ts';

const SECRET = 'pager-secret-0123456789';

describe('break-glass', () => {
  let w: World;
  let pager: Receiver;
  before(async () => {
    pager = await startReceiver(SECRET);
    w = await world({
      config: {
        break_glass: { max_duration: '1h', revokers: ['user:frank@example.com', 'team:dba'] },
        webhooks: { backoff_base: '20ms', endpoints: [{ name: 'pager', url: pager.url, secret_env: 'PAGER_SECRET', events: ['breakglass.started', 'breakglass.ended', 'breakglass.reviewed'] }] },
      },
      env: { PAGER_SECRET: SECRET },
    });
  });
  after(async () => {
    await w?.close();
    await pager?.close();
  });

  test('only eligible identities and targets; reason mandatory; duration capped', async () => {
    await assert.rejects(w.service.startBreakGlass(w.actor('alice'), { resource: ORDERS, reason: 'prod down' }), BreakGlassNotEligible);
    await assert.rejects(w.service.startBreakGlass(w.actor('erin'), { resource: { type: 'Database', id: 'scratch' }, reason: 'x' }), BreakGlassNotEligible);
    await assert.rejects(w.service.startBreakGlass(w.actor('erin'), { resource: ORDERS, reason: '  ' }), (e: InvalidInput) => e.extra.field === 'reason');
    await assert.rejects(w.service.startBreakGlass(w.actor('erin'), { resource: ORDERS, reason: 'x', duration_ms: 2 * 3_600_000 }), (e: InvalidInput) => e.extra.field === 'duration');
    assert.throws(() => parseBreakGlass({ target: 'Database::"orders"', reason: 'x', duration: '5h' }), InvalidInput);
    assert.ok((await w.audit.query({ stream: 'admin', type: 'breakglass.refused' })).length >= 2);
  });

  test('allowed without approval, tagged breakGlass, revokers notified, ended by a named revoker, review by someone else', async () => {
    const erin = w.actor('erin');
    assert.equal((await w.decideData(erin, 'db.admin', ORDERS)).decision, 'deny');
    const { grant, review } = await w.service.startBreakGlass(erin, parseBreakGlass({ target: 'Database::"orders"', reason: 'orders db refusing writes, INC-7' }));
    assert.equal(grant.kind, 'break-glass');
    assert.equal(Date.parse(grant.end_at) - Date.parse(grant.start_at), 3_600_000);
    assert.deepEqual(grant.revokers, ['user:frank@example.com', 'team:dba']);
    assert.equal(review.status, 'open');

    // Revokers are told at once, over a signed webhook.
    const hook = await pager.waitFor('breakglass.started');
    assert.equal(hook.valid, true);
    assert.equal(hook.body.data.user, erin.id);
    assert.deepEqual(hook.body.data.revokers, ['user:frank@example.com', 'team:dba']);

    // Every action under it is tagged in the authz stream.
    const ctx = await w.service.activeGrants(erin.id, undefined, ORDERS);
    assert.equal(ctx.breakGlass, true);
    assert.deepEqual(ctx.grants, ['breakglass:Database::orders']);
    assert.equal((await w.service.activeGrants(erin.id, undefined, { type: 'Database', id: 'scratch' })).breakGlass, false);
    const d = await w.decideData(erin, 'db.admin', ORDERS);
    assert.equal(d.decision, 'allow');
    const rec = (await w.audit.query({ stream: 'authz' })).find((e) => e.payload.decision_id === d.decision_id)!;
    assert.equal(rec.payload.breakGlass, true);

    // No renewal while active.
    await assert.rejects(w.service.startBreakGlass(erin, { resource: ORDERS, reason: 'again' }), /cannot be renewed/);

    // Review cannot be recorded while active, nor by the user.
    await assert.rejects(w.service.recordBreakGlassReview(w.actor('bob'), grant.id, 'ok'), ReviewNotAllowed);

    // Only named revokers (or the user) can end it.
    await assert.rejects(w.service.endBreakGlass(w.actor('dave'), grant.id, 'meddling'), NotARevoker);
    const ended = await w.service.endBreakGlass(w.actor('frank'), grant.id, 'incident handed to DBA');
    assert.equal(ended.status, 'ended');
    assert.equal(ended.ended_by, 'user:frank@example.com');
    assert.deepEqual(w.revoked.at(-1), { grantId: grant.id, by: 'user:frank@example.com', reason: `grant ${grant.id} ended: incident handed to DBA` });
    assert.equal((await w.decideData(erin, 'db.admin', ORDERS)).decision, 'deny');
    await pager.waitFor('breakglass.ended');

    assert.deepEqual((await w.service.breakGlassReviews('open')).map((r) => r.grant_id), [grant.id]);
    await assert.rejects(w.service.recordBreakGlassReview(erin, grant.id, 'all fine'), ReviewNotAllowed);
    assert.equal((await w.service.breakGlassReviews('open')).length, 1);
    const closed = await w.service.recordBreakGlassReview(w.actor('carol'), grant.id, 'writes restored; root cause disk full; runbook updated');
    assert.equal(closed.status, 'closed');
    assert.equal(closed.reviewer, 'user:carol@example.com');
    assert.equal((await w.service.breakGlassReviews('open')).length, 0);
    await assert.rejects(w.service.recordBreakGlassReview(w.actor('bob'), grant.id, 'again'), /already recorded/);
    await pager.waitFor('breakglass.reviewed');

    const types = (await w.audit.query({ stream: 'admin' })).map((e) => e.type);
    for (const t of ['breakglass.started', 'breakglass.revoke_refused', 'breakglass.revoked', 'breakglass.reviewed']) assert.ok(types.includes(t), t);
  });

  test('it always ends: the cap expires it even if nobody acts; team revokers; a new break-glass afterwards', async () => {
    const erin = w.actor('erin');
    const { grant } = await w.service.startBreakGlass(erin, { resource: ORDERS, reason: 'again at night', duration_ms: 30 * 60_000 });
    w.clock.advance(30 * 60_000);
    assert.equal((await w.service.activeGrants(erin.id, undefined, ORDERS)).breakGlass, false);
    assert.equal((await w.decideData(w.actor('erin'), 'db.admin', ORDERS)).decision, 'deny');
    const swept = await w.service.sweep();
    assert.ok(swept.endedGrants.includes(grant.id));
    assert.ok(w.revoked.some((r) => r.grantId === grant.id && r.by === 'system:expiry'));
    // The review stays open after expiry too.
    assert.ok((await w.service.breakGlassReviews('open')).some((r) => r.grant_id === grant.id));

    const next = await w.service.startBreakGlass(w.actor('erin'), { resource: ORDERS, reason: 'third time' });
    const ended = await w.service.endBreakGlass(w.actor('bob'), next.grant.id, ''); // bob is in team:dba
    assert.equal(ended.ended_by, 'user:bob@example.com');
    assert.ok(await w.service.webhooks!.idle(60_000));
    assert.ok((await w.service.webhooks!.deliveries()).every((x) => x.status === 'delivered'));
  });
});
