// The signals domain's storage contract over both stores: a fact keeps its latest event whatever
// order events arrive in (also from two replicas at once), and another replica's view follows.
import assert from 'node:assert/strict';
import { forEachStore } from './stores.ts';
import { withReplicas } from './replicas.ts';
import { SignalFacts, UNKNOWN_SIGNALS } from '../../src/signals/facts.ts';
import type { SignalFact } from '../../src/signals/ports.ts';

const fact = (value: string, eventAt: number, o: Partial<SignalFact> = {}): SignalFact => ({ identityId: 'workload:a', kind: 'device_compliance', value, eventAt, transmitter: 'idp', ...o });

forEachStore('signal facts: the latest event is kept, older ones change nothing', async (open) => {
  const s = await open();
  const repo = s.signals.facts;
  assert.equal(await repo.put(fact('not-compliant', 100)), true);
  assert.equal(await repo.put(fact('compliant', 50)), false, 'an older event arriving late');
  assert.equal(await repo.put(fact('compliant', 101)), true);
  assert.equal(await repo.put(fact('aal2', 10, { kind: 'assurance_level' })), true);
  assert.equal(await repo.put(fact('compliant', 5, { identityId: 'workload:b' })), true);
  assert.deepEqual((await repo.list('workload:a')).sort((x, y) => x.kind.localeCompare(y.kind)), [fact('aal2', 10, { kind: 'assurance_level' }), fact('compliant', 101)]);
  assert.equal((await repo.list()).length, 3);
});

forEachStore('signal facts: two replicas storing at once keep the later event, and both views follow', async (open, kind) => {
  await withReplicas(kind, open, async (a, b) => {
    const fa = new SignalFacts({ repository: a.signals.facts, changes: a.changes, unitOfWork: a });
    const fb = new SignalFacts({ repository: b.signals.facts, changes: b.changes, unitOfWork: b });
    await fa.load();
    await fb.load();
    assert.deepEqual(fb.of('workload:a'), UNKNOWN_SIGNALS, 'absence is explicit');
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? fa : fb).record(fact(i % 3 === 0 ? 'compliant' : 'not-compliant', 1000 + i))));
    assert.equal(results[19], true, 'the latest event is always kept');
    const stored = await a.signals.facts.list('workload:a');
    assert.deepEqual(stored, [fact('not-compliant', 1019)]);
    // The other replica's view follows its notice (PostgreSQL). SQLite has one process (one view):
    // the two views here share one store without notices, so they re-read it.
    if (kind === 'sqlite') await Promise.all([fa.load(), fb.load()]);
    for (let i = 0; i < 100 && (fa.of('workload:a').device_compliance_at !== 1019 || fb.of('workload:a').device_compliance_at !== 1019); i++) await new Promise((r) => setTimeout(r, 20));
    for (const f of [fa, fb]) assert.deepEqual(f.of('workload:a'), { ...UNKNOWN_SIGNALS, device_compliance: 'not-compliant', device_compliant: false, device_compliance_at: 1019 });
  });
});
