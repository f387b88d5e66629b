// The policy version repository's contract over both stores: versions numbered one past the
// newest, never shared or skipped even when two replicas append at once; files round-trip
// exactly; list is newest first without files.
import assert from 'node:assert/strict';
import { forEachStore } from './stores.ts';
import { withReplicas } from './replicas.ts';
import type { PolicyVersion } from '../../src/policy/ports.ts';
import type { PolicyFile } from '../../src/policy/policy-set.ts';

const FILES: PolicyFile[] = [
  { name: 'demo.cedar', origin: 'config', text: 'permit (principal, action, resource)\nwhen { resource.tier == "é ✓" };\n' },
  { name: 'api.cedar', origin: 'api', text: '' },
];

function version(i: number, files: PolicyFile[] = FILES): Omit<PolicyVersion, 'version'> {
  return { created_at: `2026-01-01T00:00:${String(i).padStart(2, '0')}.000Z`, actor: `user:${i}`, reason: `r${i}`, digest: `d${i}`, files };
}

forEachStore('policy versions: numbered from 1, one past the newest; get, newest and list agree; files round-trip', async (open) => {
  const v = (await open()).policy.versions;
  assert.equal(await v.newest(), undefined);
  assert.deepEqual(await v.list(), []);
  assert.equal(await v.get(1), undefined);
  const first = await v.append(version(1));
  assert.deepEqual(first, { version: 1, ...version(1) });
  const second = await v.append(version(2, []));
  assert.equal(second.version, 2);
  assert.deepEqual(await v.get(1), first);
  assert.deepEqual(await v.get(2), { version: 2, ...version(2, []) });
  assert.deepEqual(await v.newest(), second);
  assert.equal(await v.get(3), undefined);
  assert.deepEqual(await v.list(), [
    { version: 2, created_at: version(2).created_at, actor: 'user:2', reason: 'r2', digest: 'd2' },
    { version: 1, created_at: version(1).created_at, actor: 'user:1', reason: 'r1', digest: 'd1' },
  ]);
  // The returned version is a copy: changing the caller's array afterwards changes nothing stored.
  const files = [...FILES];
  const third = await v.append(version(3, files));
  files.pop();
  assert.equal(third.files.length, 2);
  assert.equal((await v.get(3))!.files.length, 2);
});

forEachStore('policy versions: appends racing inside one store and from two replicas never share or skip a number', async (open, kind) => {
  await withReplicas(kind, open, async (a, b) => {
    const appended = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? a : b).policy.versions.append(version(i))));
    const numbers = appended.map((x) => x.version).sort((x, y) => x - y);
    assert.deepEqual(numbers, Array.from({ length: 20 }, (_, i) => i + 1), 'versions 1..20, each once');
    for (const x of appended) assert.deepEqual(await (x.version % 2 === 0 ? a : b).policy.versions.get(x.version), x, 'each number holds what its append returned');
    assert.equal((await b.policy.versions.newest())!.version, 20);
    assert.deepEqual((await a.policy.versions.list()).map((x) => x.version), Array.from({ length: 20 }, (_, i) => 20 - i));
  });
});

forEachStore('policy versions: an append inside a unit of work that rolls back leaves no version and no gap', async (open) => {
  const s = await open();
  await s.policy.versions.append(version(1));
  await assert.rejects(
    s.transaction(async () => {
      assert.equal((await s.policy.versions.append(version(2))).version, 2);
      throw new Error('rolled back');
    }),
    /rolled back/,
  );
  assert.equal((await s.policy.versions.newest())!.version, 1);
  assert.equal((await s.policy.versions.append(version(3))).version, 2, 'the number is reused: none skipped');
});
