import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { openDatabase } from '../../src/store/sqlite/db.ts';
import { AuditLog } from '../../src/audit/log.ts';
import { AuditWriteFailed } from '../../src/audit/errors.ts';
import { GENESIS } from '../../src/audit/chain.ts';
import { canonicalJson } from '../../src/audit/canonical.ts';
import { InvalidInput } from '../../src/common/errors.ts';
import { ManualClock } from '../../src/common/clock.ts';
import type { AuditEventInput, AuditRecord } from '../../src/audit/types.ts';
import { auditStore, tempStore, verifyAll } from './helpers.ts';

const ev = (stream: AuditEventInput['stream'], i: number): AuditEventInput => ({
  stream,
  type: `${stream}.test`,
  actor: `workload:acme/${i % 3}`,
  payload: { i },
});

test('each stream has its own sequence from 1 and its own hash chain', async () => {
  const s = tempStore();
  try {
    const log = new AuditLog(auditStore(s.db), { clock: new ManualClock() });
    const recs = await Promise.all([ev('authn', 0), ev('authz', 1), ev('authn', 2), ev('admin', 3), ev('authn', 4)].map((e) => log.append(e)));
    assert.deepEqual(recs.map((r) => [r.stream, r.seq]), [['authn', 1], ['authz', 1], ['authn', 2], ['admin', 1], ['authn', 3]]);
    assert.equal(recs[0].prev_hash, GENESIS.authn);
    assert.equal(recs[1].prev_hash, GENESIS.authz);
    assert.equal(recs[2].prev_hash, recs[0].hash);
    assert.equal(recs[4].prev_hash, recs[2].hash);
    assert.equal(recs[0].time, '2026-01-01T12:00:00.000Z');
    // hash = sha256(canonical JSON of the record without `hash`)
    for (const r of recs) {
      const { hash, ...rest } = r;
      assert.equal(hash, createHash('sha256').update(canonicalJson(rest)).digest('hex'));
    }
    assert.deepEqual(await log.head('authn'), { seq: 3, hash: recs[4].hash });
    assert.deepEqual(await log.head('admin'), { seq: 1, hash: recs[3].hash });
    const later = await log.append(ev('authn', 5));
    assert.equal(later.seq, 4);
    assert.equal(later.prev_hash, recs[4].hash);
    await log.close();
  } finally {
    s.cleanup();
  }
});

test('group commit: one tick is one transaction, durable after resolve (reopen and read)', async () => {
  const s = tempStore();
  try {
    const log = new AuditLog(auditStore(s.db));
    let commits = 0;
    log.onAppend(() => commits++);
    const recs = await Promise.all(Array.from({ length: 500 }, (_, i) => log.append(ev('authz', i))));
    assert.equal(commits, 1);
    assert.equal(recs.at(-1)!.seq, 500);
    // Read back through a fresh connection after closing the writer's.
    s.db.close();
    const db2 = openDatabase(s.path);
    const n = db2.prepare("SELECT COUNT(*) AS n FROM audit_events WHERE stream = 'authz'").get() as { n: number };
    assert.equal(n.n, 500);
    const log2 = new AuditLog(auditStore(db2));
    assert.deepEqual(await log2.head('authz'), { seq: 500, hash: recs.at(-1)!.hash });
    const next = await log2.append(ev('authz', 501));
    assert.equal(next.seq, 501);
    assert.equal(next.prev_hash, recs.at(-1)!.hash);
    assert.equal((await verifyAll(db2, () => undefined)).ok, true);
    await log2.close();
    db2.close();
  } finally {
    s.cleanup();
  }
});

test('appends in separate ticks are separate batches but one chain', async () => {
  const s = tempStore();
  try {
    const log = new AuditLog(auditStore(s.db));
    const out: AuditRecord[] = [];
    for (let i = 0; i < 20; i++) out.push(await log.append(ev('admin', i)));
    assert.deepEqual(out.map((r) => r.seq), Array.from({ length: 20 }, (_, i) => i + 1));
    for (let i = 1; i < out.length; i++) assert.equal(out[i].prev_hash, out[i - 1].hash);
    await log.close();
  } finally {
    s.cleanup();
  }
});

test('fail closed: a closed database rejects the append', async () => {
  const s = tempStore();
  try {
    const log = new AuditLog(auditStore(s.db));
    await log.append(ev('authn', 1));
    s.db.close();
    await assert.rejects(log.append(ev('authn', 2)), (e: unknown) => e instanceof AuditWriteFailed && e.code === 'unavailable' && e.status === 503);
  } finally {
    s.cleanup();
  }
});

for (const writer of ['inline', 'worker'] as const) {
  test(`a failed write rejects every promise of its batch and writes none of it (${writer})`, async () => {
    const s = tempStore();
    try {
      const log = new AuditLog(auditStore(s.db), { writer });
      await Promise.all([1, 2, 3].map((i) => log.append(ev('authz', i))));
      // A real SQLite failure in the middle of a batch.
      s.db.exec("CREATE TRIGGER audit_fail BEFORE INSERT ON audit_events WHEN NEW.type = 'boom' BEGIN SELECT RAISE(ABORT, 'disk says no'); END");
      const tick = Array.from({ length: 10 }, (_, i) => log.append(i === 5 ? { ...ev('authz', i), type: 'boom' } : ev('authz', i)));
      const results = await Promise.allSettled(tick);
      assert.equal(results.every((r) => r.status === 'rejected' && r.reason instanceof AuditWriteFailed), true);
      assert.equal((await log.head('authz')).seq, 3);
      const n = s.db.prepare('SELECT COUNT(*) AS n FROM audit_events').get() as { n: number };
      assert.equal(n.n, 3);
      s.db.exec('DROP TRIGGER audit_fail');
      assert.equal((await log.append(ev('authz', 4))).seq, 4, 'the log recovers once the cause is gone');
      assert.equal((await log.verify(() => undefined)).ok, true);
      await log.close();
    } finally {
      s.cleanup();
    }
  });
}

test('invalid input is refused on its own; the rest of the tick is written', async () => {
  const s = tempStore();
  try {
    const log = new AuditLog(auditStore(s.db));
    const bad: unknown[] = [
      { ...ev('authn', 0), stream: 'other' },
      { ...ev('authn', 0), type: '' },
      { ...ev('authn', 0), actor: '' },
      { ...ev('authn', 0), decision: 'maybe' },
      { ...ev('authn', 0), payload: [] },
      { ...ev('authn', 0), payload: { n: NaN } },
      { ...ev('authn', 0), payload: { big: 'x'.repeat(70_000) } },
    ];
    const results = await Promise.allSettled([...bad.map((b) => log.append(b as AuditEventInput)), log.append(ev('authn', 1))]);
    for (const r of results.slice(0, -1)) assert.equal(r.status === 'rejected' && r.reason instanceof InvalidInput, true);
    assert.equal(results.at(-1)!.status, 'fulfilled');
    assert.equal((await log.head('authn')).seq, 1);
    await log.close();
  } finally {
    s.cleanup();
  }
});

test('after close() appends are refused', async () => {
  const s = tempStore();
  try {
    const log = new AuditLog(auditStore(s.db));
    const p = log.append(ev('authn', 1));
    await log.close(); // flushes what was queued
    assert.equal((await p).seq, 1);
    await assert.rejects(log.append(ev('authn', 2)), AuditWriteFailed);
  } finally {
    s.cleanup();
  }
});

test('durability=full sets synchronous=FULL (inline writer); store leaves it', () => {
  const s = tempStore();
  try {
    const get = () => (s.db.prepare('PRAGMA synchronous').get() as { synchronous: number }).synchronous;
    new AuditLog(auditStore(s.db), { durability: 'store', writer: 'inline' });
    assert.equal(get(), 1);
    new AuditLog(auditStore(s.db), { writer: 'inline' });
    assert.equal(get(), 2);
  } finally {
    s.cleanup();
  }
});

test('odd characters in identities (controls, lone surrogates, non-BMP) round-trip and verify', async () => {
  const s = tempStore();
  try {
    const log = new AuditLog(auditStore(s.db));
    const rec = await log.append({ stream: 'authn', type: 'authn.failure', actor: 'user:a\nb\t"c"\u0001', subject: 'x\ud800y', boundary: 'b😀', payload: { k: 'v\ud800', ['\u0000']: 1 } });
    assert.equal(rec.subject, 'x\ufffdy');
    assert.deepEqual((await log.query({ stream: 'authn' }))[0], rec);
    assert.equal((await log.verify(() => undefined)).ok, true);
    await log.close();
  } finally {
    s.cleanup();
  }
});

test('worker: a big tick is cut into chunks written while the rest is prepared; one chain', async () => {
  const s = tempStore();
  try {
    const log = new AuditLog(auditStore(s.db), { writer: 'worker' });
    let commits = 0;
    log.onAppend(() => commits++);
    const recs = await Promise.all(Array.from({ length: 5000 }, (_, i) => log.append(ev(i % 2 ? 'authz' : 'authn', i))));
    assert.ok(commits >= 2, `${commits} commits`);
    assert.deepEqual(recs.filter((r) => r.stream === 'authz').map((r) => r.seq), Array.from({ length: 2500 }, (_, i) => i + 1));
    assert.equal((await verifyAll(s.db, () => undefined)).ok, true);
    await log.close();
  } finally {
    s.cleanup();
  }
});

test('requests queued behind each other are written as one transaction and answered each', async () => {
  const { ChainWriter } = await import('../../src/store/sqlite/audit/writer.ts');
  const { FIELDS } = await import('../../src/audit/linker.ts');
  const s = tempStore();
  try {
    new AuditLog(auditStore(s.db)); // migrates
    const w = new ChainWriter(s.db, { enabled: false, every: 1000, intervalMs: 1000 });
    const wire = (stream: string, time: string, i: number): (string | null)[] => [stream, time, 't.x', 'workload:a', null, null, null, `{"i":${i}}`];
    const reqs = [
      { events: [...wire('authz', '2026-01-01T00:00:02.000Z', 1), ...wire('authn', '2026-01-01T00:00:00.000Z', 2)], checkpoints: [], now: 1, checkpoint: 'none' as const },
      { events: wire('authz', '2026-01-01T00:00:01.000Z', 3), checkpoints: [], now: 2, checkpoint: 'none' as const },
    ];
    assert.equal(reqs[0].events.length, 2 * FIELDS);
    const [a, b] = w.writeAll(reqs);
    assert.deepEqual(a.seqs, [1, 1]);
    assert.deepEqual(a.clamped, []);
    assert.deepEqual(b.seqs, [2]);
    assert.deepEqual(b.clamped, [[0, '2026-01-01T00:00:02.000Z']], 'clamped index is relative to its request');
    assert.equal(b.prevs[0], a.hashes[0]);
    assert.equal((await verifyAll(s.db, () => undefined)).ok, true);
    // One fails, all fail: nothing of either is stored.
    s.db.exec("CREATE TRIGGER boom BEFORE INSERT ON audit_events WHEN NEW.payload = '{\"i\":9}' BEGIN SELECT RAISE(ABORT, 'no'); END");
    assert.throws(() => w.writeAll([{ ...reqs[1], events: wire('authz', 'x', 8) }, { ...reqs[1], events: wire('authn', 'x', 9) }]));
    assert.equal((s.db.prepare('SELECT COUNT(*) AS n FROM audit_events').get() as { n: number }).n, 3);
  } finally {
    s.cleanup();
  }
});

test('expect(): a batch waits for announced appends, so appends of different turns share one commit', async () => {
  const s = tempStore();
  try {
    // A wide window, so that a loaded machine cannot make the turns below fall outside it.
    const log = new AuditLog(auditStore(s.db), { writer: 'inline', gather: { minMs: 60_000, maxMs: 60_000 } });
    const batches: number[][] = [];
    log.onAppend((rs) => batches.push(rs.map((r) => r.payload.i as number)));
    const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
    // Not announced: each turn's appends are their own commit.
    const a = log.append(ev('session', 1));
    await turn();
    const b = log.append(ev('session', 2));
    await Promise.all([a, b]);
    assert.deepEqual(batches, [[1], [2]]);
    // Announced: the first append waits for the other session's, made turns later; then both go in one commit.
    batches.length = 0;
    const done = log.expect();
    const c = log.append(ev('session', 3));
    await turn();
    await turn();
    assert.deepEqual(batches, [], 'nothing is written while an announced append is outstanding');
    const d = log.append(ev('session', 4));
    done();
    await Promise.all([c, d]);
    assert.deepEqual(batches, [[3, 4]]);
    // Withdrawn without an append: the waiting batch goes at once.
    batches.length = 0;
    const withdrawn = log.expect();
    const e = log.append(ev('session', 5));
    await turn();
    withdrawn();
    log.append(ev('session', 6)).catch(() => {});
    await e;
    await log.flush();
    assert.deepEqual(batches.flat(), [5, 6]);
    await log.close();
  } finally {
    s.cleanup();
  }
});

test('expect(): an announced append that does not come is not waited for beyond the window', async () => {
  const s = tempStore();
  try {
    const log = new AuditLog(auditStore(s.db), { writer: 'inline', gather: { minMs: 5, maxMs: 5 } });
    log.expect(); // never withdrawn
    const r = await log.append(ev('session', 1)); // resolves: written once the window ends
    assert.equal(r.seq, 1);
    await log.close();
  } finally {
    s.cleanup();
  }
});
