// An action the schema does not declare is a caller's mistake, not a decision: 400 unknown_action
// naming it and suggesting close names (single and batch, over HTTP), recorded as no decision.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness } from './harness.ts';
import type { Harness } from './harness.ts';
import { closest } from '../../src/broker/authorization.ts';

describe('unknown actions over HTTP', () => {
  let h: Harness;
  let token: string;
  before(async () => {
    h = await startHarness();
    token = await h.loginCi();
  });
  after(async () => h?.close());

  const orders = { type: 'Database', id: 'orders' };

  it('typos, a truncated and a made-up action: 400 unknown_action naming it; never a deny', async () => {
    const cases: [string, string | undefined][] = [
      ['db.selct', 'db.select'],
      ['db.selectt', 'db.select'],
      ['ssh.logni', 'ssh.login'],
      ['frobnicate.everything', undefined],
      ['db.sel', 'db.select'],
      ['access.aprove', 'access.approve'],
    ];
    for (const [action, suggestion] of cases) {
      const r = await h.post('/v1/authorize', { action, resource: orders, context: { purpose: { reason: 'x' } } }, token);
      assert.equal(r.status, 400, `${action}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.code, 'unknown_action');
      assert.equal(r.body.field, 'action');
      assert.ok(String(r.body.detail).includes(`unknown action "${action}"`), r.body.detail);
      if (suggestion) {
        assert.ok(r.body.suggestions.includes(suggestion), `${action} → ${JSON.stringify(r.body.suggestions)}`);
        assert.match(r.body.detail, new RegExp(`did you mean .*"${suggestion.replace('.', '\\.')}"`));
      } else assert.deepEqual(r.body.suggestions, []);
    }
    const known = await h.post('/v1/authorize', { action: 'db.select', resource: orders, context: { purpose: { reason: 'x' } } }, token);
    assert.equal(known.status, 200);
    assert.equal(known.body.decision, 'allow');
    // Action groups are actions too.
    const group = await h.post('/v1/authorize', { action: 'db.read', resource: orders }, token);
    assert.equal(group.status, 200, JSON.stringify(group.body));
  });

  it('batch: the bad item is named by index and nothing is decided', async () => {
    await h.running.broker.audit.flush();
    const before = (await h.running.broker.audit.query({ stream: 'authz' })).length;
    const r = await h.post('/v1/authorize/batch', { requests: [{ action: 'db.select', resource: orders }, { action: 'db.updte', resource: orders }] }, token);
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.equal(r.body.code, 'unknown_action');
    assert.equal(r.body.field, 'requests[1].action');
    assert.ok(r.body.suggestions.includes('db.update'));
    await h.running.broker.audit.flush();
    assert.equal((await h.running.broker.audit.query({ stream: 'authz' })).length, before, 'no half-decided batch');
  });

  it('suggestions: close names only, at most three, best first', () => {
    const known = ['db.select', 'db.insert', 'db.update', 'db.delete', 'ssh.login', 'api.call'];
    assert.deepEqual(closest('db.selct', known)[0], 'db.select');
    assert.ok(closest('db.selct', known).length <= 3);
    assert.deepEqual(closest('completely-different', known), []);
  });
});
