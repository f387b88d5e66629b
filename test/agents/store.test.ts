// The agents domain's repositories over both stores (profiles and assignments round-trip, filters,
// the compare-and-set end that two replicas race on) and the service's rules on them: a
// sub-assignment only narrows its parent, ending one ends everything under it, expiry is read
// from the clock.
import assert from 'node:assert/strict';
import { forEachStore } from '../store/stores.ts';
import { withReplicas } from '../store/replicas.ts';
import { ManualClock } from '../../src/common/clock.ts';
import { AgentService } from '../../src/agents/service.ts';
import type { AgentProfile, Assignment } from '../../src/agents/types.ts';
import { ASSIGNMENT_ID_RE } from '../../src/agents/types.ts';
import { InvalidInput } from '../../src/common/errors.ts';

const T0 = Date.parse('2026-03-02T10:00:00Z');
const PROFILE: AgentProfile = { id: 'agent:helper', sponsor: 'user:sam', model: 'claude-sonnet-4', provider: 'anthropic', tools: ['crm/*', 'docs/search'], createdAt: T0, updatedAt: T0 };
const ROW: Assignment = {
  id: 'asg_AAAAAAAAAAAAAAAAAAAA', agentId: 'agent:helper', delegatorId: 'user:alice', sponsorId: 'user:sam', intent: 'ticket 42 — résumé ✓',
  tools: ['crm/search'], audiences: ['https://mcp.crm.test/mcp'], createdAt: T0, expiresAt: T0 + 3_600_000, status: 'active', depth: 1,
};

forEachStore('agents: profiles round-trip; put replaces all but created_at', async (open) => {
  const { agents } = await open();
  assert.equal(await agents.profiles.get(PROFILE.id), undefined);
  await agents.profiles.put(PROFILE);
  assert.deepEqual(await agents.profiles.get(PROFILE.id), PROFILE);
  const bare: AgentProfile = { ...PROFILE, id: 'agent:bare', model: null, provider: null, tools: [] };
  await agents.profiles.put(bare);
  const next = { ...PROFILE, sponsor: 'user:tess', tools: [], model: null, createdAt: T0 + 5, updatedAt: T0 + 10 };
  await agents.profiles.put(next);
  assert.deepEqual(await agents.profiles.get(PROFILE.id), { ...next, createdAt: T0 });
  assert.deepEqual((await agents.profiles.list()).map((p) => p.id), ['agent:bare', 'agent:helper']);
  assert.deepEqual(await agents.profiles.get('agent:bare'), bare);
});

forEachStore('agents: assignments round-trip, filter, and end once', async (open) => {
  const { agents } = await open();
  const sub: Assignment = { ...ROW, id: 'asg_BBBBBBBBBBBBBBBBBBBB', agentId: 'agent:sub', parentId: ROW.id, depth: 2, createdAt: T0 + 1 };
  await agents.assignments.insert(ROW);
  await agents.assignments.insert(sub);
  assert.deepEqual(await agents.assignments.get(ROW.id), ROW);
  assert.deepEqual(await agents.assignments.get(sub.id), sub);
  assert.deepEqual((await agents.assignments.list()).map((a) => a.id), [sub.id, ROW.id], 'newest first');
  assert.deepEqual((await agents.assignments.list({ parentId: ROW.id })).map((a) => a.id), [sub.id]);
  assert.deepEqual((await agents.assignments.list({ agentId: 'agent:helper' })).map((a) => a.id), [ROW.id]);
  assert.deepEqual((await agents.assignments.list({ delegatorId: 'user:alice', sponsorId: 'user:sam' }, 1)).map((a) => a.id), [sub.id], 'limit');
  const ended = await agents.assignments.end(ROW.id, T0 + 100, 'done');
  assert.deepEqual(ended, { ...ROW, status: 'ended', endedAt: T0 + 100, endedReason: 'done' });
  assert.equal(await agents.assignments.end(ROW.id, T0 + 200, 'again'), undefined, 'ended once');
  assert.deepEqual((await agents.assignments.list({ status: 'active' })).map((a) => a.id), [sub.id]);
});

forEachStore('agents: two replicas ending one assignment at once: exactly one ends it', async (open, kind) => {
  await withReplicas(kind, open, async (a, b) => {
    await a.agents.assignments.insert(ROW);
    const results = await Promise.all([a, b, a, b].map((s, i) => s.agents.assignments.end(ROW.id, T0 + i, `by ${i}`)));
    assert.equal(results.filter((r) => r !== undefined).length, 1);
    assert.equal((await b.agents.assignments.get(ROW.id))!.status, 'ended');
  });
});

forEachStore('agents service: sub-assignments only narrow, ending cascades, expiry follows the clock, hostile input is refused', async (open) => {
  const store = await open();
  const clock = new ManualClock(T0);
  const svc = new AgentService({ store, clock });
  const base = { agentId: 'agent:helper', delegatorId: 'user:alice', sponsorId: 'user:sam', intent: 'triage', tools: ['crm/*'], audiences: ['https://mcp.crm.test/mcp'], ttlMs: 600_000 };
  const parent = await svc.create(base);
  assert.match(parent.id, ASSIGNMENT_ID_RE);
  const child = await svc.create({ ...base, agentId: 'agent:sub', tools: ['crm/search'], ttlMs: 3_600_000, parent });
  assert.equal(child.depth, 2);
  assert.equal(child.expiresAt, parent.expiresAt, 'never outlives its parent');
  const narrowing: [string, Partial<typeof base>][] = [
    ['a wider tool', { tools: ['docs/*'] }],
    ['another audience', { audiences: ['https://other.test/mcp'] }],
    ['another delegator', { delegatorId: 'user:mallory' }],
  ];
  for (const [what, input] of narrowing) {
    await assert.rejects(svc.create({ ...base, agentId: 'agent:sub', ...input, parent }), InvalidInput, what);
  }
  for (const bad of [{ intent: '' }, { intent: 'a\nb' }, { tools: [] }, { tools: ['crm'] }, { tools: ['crm/../x'] }, { audiences: ['urn:x'] }, { audiences: ['https://a.test/#f'] }, { ttlMs: 48 * 3_600_000 }, { ttlMs: 10 }]) {
    await assert.rejects(svc.create({ ...base, ...bad }), InvalidInput, JSON.stringify(bad));
  }
  const grandchild = await svc.create({ ...base, agentId: 'agent:sub2', tools: ['crm/search'], parent: child });
  assert.equal(grandchild.depth, 3);
  assert.deepEqual((await svc.withDescendants(parent.id)).sort(), [parent.id, child.id, grandchild.id].sort());
  const ended = await svc.end(parent.id, 'done');
  assert.deepEqual(ended.map((a) => a.id).sort(), [parent.id, child.id, grandchild.id].sort());
  assert.equal((await svc.get(grandchild.id))!.status, 'ended');
  const other = await svc.create(base);
  clock.advance(600_000);
  assert.equal((await svc.get(other.id))!.status, 'expired');
  assert.deepEqual(await svc.list({ live: true }), []);
  assert.equal(await svc.get("asg_' OR 1=1 --"), undefined);
});
