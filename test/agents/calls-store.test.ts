// The calls counted per assignment (MCP budgets and taint) over both stores: reserve reads the
// history and counts in one step, a cap refuses without counting, release takes a call (and its
// taint) back, prune forgets ended and expired assignments — and two replicas reserving at once
// for one assignment never both slip under one cap, and each sees the other's taint in some order.
import assert from 'node:assert/strict';
import { forEachStore } from '../store/stores.ts';
import { withReplicas } from '../store/replicas.ts';
import type { Assignment } from '../../src/agents/types.ts';

const T0 = Date.parse('2026-03-02T10:00:00Z');
const ASG: Assignment = {
  id: 'asg_CCCCCCCCCCCCCCCCCCCC', agentId: 'agent:helper', delegatorId: 'user:alice', sponsorId: 'user:sam', intent: 'ticket 42',
  tools: ['files/*'], audiences: ['https://mcp.test/mcp'], createdAt: T0, expiresAt: T0 + 3_600_000, status: 'active', depth: 1,
};
let n = 0;
const call = (tool: string, labels: string[], at: number, o: Partial<{ assignmentId: string; expiresAt: number }> = {}) => ({ id: `call_${++n}`, assignmentId: ASG.id, tool, labels, at, expiresAt: ASG.expiresAt, ...o });

forEachStore('agent calls: reserve counts and returns the history before; a cap refuses; release takes the call back; prune forgets', async (open) => {
  const { agents } = await open();
  await agents.assignments.insert(ASG);
  const first = await agents.calls.reserve(call('files/fetch', ['untrusted-input'], T0), T0 - 60_000, 0);
  assert.deepEqual(first, { id: first.id, labels: [], called: [], recent: 0 });
  assert.ok(first.id);
  const second = await agents.calls.reserve(call('files/write', ['writes'], T0 + 1), T0 + 1 - 60_000, 2);
  assert.deepEqual({ ...second, id: undefined }, { id: undefined, labels: ['untrusted-input'], called: ['files/fetch'], recent: 0 });
  await agents.calls.reserve(call('files/write', ['writes'], T0 + 2), T0 + 2 - 60_000, 2);
  const over = await agents.calls.reserve(call('files/write', ['writes'], T0 + 3), T0 + 3 - 60_000, 2);
  assert.equal(over.id, undefined, 'the cap is reached: not counted');
  assert.equal(over.recent, 2);
  // Outside the window the old calls no longer count against the budget; the taint stays.
  const later = await agents.calls.reserve(call('files/write', ['writes'], T0 + 70_000), T0 + 10_000, 2);
  assert.ok(later.id);
  assert.deepEqual({ labels: later.labels, called: later.called, recent: later.recent }, { labels: ['untrusted-input', 'writes'], called: ['files/fetch', 'files/write'], recent: 0 });
  assert.deepEqual(await agents.calls.history(ASG.id, T0 - 60_000), { labels: ['untrusted-input', 'writes'], called: ['files/fetch', 'files/write'], recent: { 'files/fetch': 1, 'files/write': 3 } });
  // Released (refused after all): the untrusted read no longer taints, nor counts.
  await agents.calls.release(first.id!);
  await agents.calls.release(first.id!);
  assert.deepEqual(await agents.calls.history(ASG.id, T0 - 60_000), { labels: ['writes'], called: ['files/write'], recent: { 'files/write': 3 } });
  // Another assignment's calls are its own; expired and ended assignments are pruned.
  const other = { ...ASG, id: 'asg_DDDDDDDDDDDDDDDDDDDD', expiresAt: T0 + 10 };
  await agents.assignments.insert(other);
  await agents.calls.reserve(call('files/fetch', ['untrusted-input'], T0, { assignmentId: other.id, expiresAt: other.expiresAt }), T0 - 60_000, 0);
  assert.deepEqual((await agents.calls.history(other.id, T0 - 60_000)).called, ['files/fetch']);
  assert.equal(await agents.calls.prune(T0 + 5), 0, 'nothing ended or expired yet');
  assert.equal(await agents.calls.prune(T0 + 10), 1, 'the expired assignment');
  assert.deepEqual(await agents.calls.history(other.id, 0), { labels: [], called: [], recent: {} });
  assert.equal((await agents.calls.history(ASG.id, 0)).called.length, 1, 'the live one is kept');
  await agents.assignments.end(ASG.id, T0 + 20, 'done');
  assert.equal(await agents.calls.prune(T0 + 20), 3);
  assert.deepEqual(await agents.calls.history(ASG.id, 0), { labels: [], called: [], recent: {} });
});

forEachStore('agent calls: two replicas reserving for one assignment at once count every call, never past the cap', async (open, kind) => {
  await withReplicas(kind, open, async (a, b) => {
    await a.agents.assignments.insert(ASG);
    const cap = 7;
    const rs = await Promise.all(Array.from({ length: 24 }, (_, i) => (i % 2 ? a : b).agents.calls.reserve(call('files/add', [`l${i}`], T0 + i), T0 - 60_000, cap)));
    const counted = rs.filter((r) => r.id !== undefined);
    assert.equal(counted.length, cap, 'exactly the cap is counted across replicas');
    // Serialised: the counted calls saw 0, 1, … cap-1 before them, each number once.
    assert.deepEqual(counted.map((r) => r.recent).sort((x, y) => x - y), Array.from({ length: cap }, (_, i) => i));
    // And each saw the history of the calls counted before it: the first none, the others the tool.
    for (const r of counted) assert.deepEqual(r.called, r.recent === 0 ? [] : ['files/add']);
    const h = await b.agents.calls.history(ASG.id, T0 - 60_000);
    assert.equal(h.recent['files/add'], cap);
    // Without a cap, every concurrent call counts.
    await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).agents.calls.reserve(call('files/read', [], T0 + i), T0 - 60_000, 0)));
    assert.equal((await a.agents.calls.history(ASG.id, T0 - 60_000)).recent['files/read'], 10);
  });
});
