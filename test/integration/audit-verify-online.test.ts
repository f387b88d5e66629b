// Issue #8 item 12: GET /v1/audit/verify of a large stream runs in worker threads, so decisions
// keep being answered while it runs. Asserted by order, not by time: decisions must complete
// before the verification's answer arrives (a verification on the event loop answers first).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness } from './harness.ts';
import type { AuditRecord } from '../../src/audit/types.ts';
import type { Harness } from './harness.ts';
import { TEST_STORE } from '../store/pg.ts';

const BIG = 120_000; // authz events: verifying them takes many decision round trips

describe('online audit verification off the event loop', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness('', {}, undefined, { audit: '{ fail_closed: true, checkpoint_every: 1000 }' });
  });
  after(async () => h.close());

  it('GET /v1/audit/verify runs off the event loop: decisions answer while it runs', { skip: TEST_STORE === 'postgres' ? 'watches for the SQLite scan worker threads (PostgreSQL scans page by page between awaits)' : false }, async () => {
    const audit = h.running.broker.audit;
    // A large authz stream, written through the real log (checkpoints signed and witnessed).
    for (let i = 0; i < BIG; i += 5000) {
      const batch: Promise<AuditRecord>[] = [];
      for (let j = 0; j < 5000; j++) batch.push(audit.append({ stream: 'authz', type: 'authz.decision', actor: `workload:w${j % 50}`, decision: 'allow', payload: { i: i + j } }));
      await Promise.all(batch);
    }
    await audit.flush();
    const admin = await h.admin();
    const session = await h.loginCi();

    // The verification has started once its first scanning thread exists (the route's own
    // permission checks and flush come before it and do not count).
    let scanning = false;
    const onWorker = (): void => {
      scanning = true;
    };
    process.on('worker', onWorker);
    let verifyDone = false;
    const verify = h.get('/v1/audit/verify', admin).finally(() => {
      verifyDone = true;
    });
    // Decisions are answered while verification runs: counted only if they complete after it
    // started scanning and before its answer arrived.
    let answeredDuring = 0;
    for (let n = 0; n < 1000 && !verifyDone; n++) {
      const r = await h.post('/v1/authorize', { action: 'db.select', resource: { type: 'Database', id: 'orders' }, context: { purpose: { reason: 'report' } } }, session);
      assert.equal(r.status, 200);
      assert.equal(r.body.decision, 'allow');
      if (scanning && !verifyDone) answeredDuring++;
    }
    const v = await verify;
    process.off('worker', onWorker);
    assert.equal(v.status, 200);
    assert.equal(v.body.ok, true, JSON.stringify(v.body));
    assert.ok(answeredDuring >= 3, `only ${answeredDuring} decisions answered while verification ran`);
    const authz = v.body.streams.find((s: { stream: string }) => s.stream === 'authz');
    assert.ok(authz.events >= BIG, JSON.stringify(authz));
  });
});
