// Times never go back within a stream, so since/until are answered as seq ranges by binary search
// on the primary key (no time index). Checked against a plain scan of every record, and on a
// store written before that (migration 2).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DatabaseSync } from 'node:sqlite';
import { AuditLog } from '../../src/audit/log.ts';
import { GENESIS, hashFields, recordCanonical, scratchFields, toRecord, type ChainFields } from '../../src/audit/chain.ts';
import { AUDIT_MIGRATIONS } from '../../src/store/sqlite/audit/schema.ts';
import { ManualClock } from '../../src/common/clock.ts';
import { migrate, openDatabase, type Db } from '../../src/store/sqlite/db.ts';
import { AUDIT_STREAMS, type AuditQuery, type AuditRecord, type AuditStreamName } from '../../src/audit/types.ts';
import { createHash } from 'node:crypto';
import { auditStore, ed25519Key, queryEvents, resolverOf, tamper, tempStore, verifyAll, verifyDataDir } from './helpers.ts';

const key = ed25519Key('time-k1');
const keys = resolverOf(key);
const T0 = Date.parse('2026-05-01T00:00:00Z');
const iso = (ms: number): string => new Date(ms).toISOString();

/** Every stored record, read without any time condition. */
function allRecords(db: Db): AuditRecord[] {
  const rows = db.prepare('SELECT * FROM audit_events ORDER BY stream, seq').all() as unknown as (ChainFields & { hash: string })[];
  return rows.map(toRecord);
}

/** What a query must return, computed by scanning everything (same order rules as queryEvents). */
function scan(all: AuditRecord[], q: AuditQuery): AuditRecord[] {
  const since = q.since === undefined ? undefined : iso(typeof q.since === 'number' ? q.since : Date.parse(q.since));
  const until = q.until === undefined ? undefined : iso(typeof q.until === 'number' ? q.until : Date.parse(q.until));
  const out = all.filter(
    (r) =>
      (q.stream === undefined || r.stream === q.stream) &&
      (since === undefined || r.time >= since) &&
      (until === undefined || r.time < until) &&
      (q.afterSeq === undefined || r.seq > q.afterSeq) &&
      (q.actor === undefined || r.actor === q.actor),
  );
  const cmp = (a: AuditRecord, b: AuditRecord): number =>
    q.stream !== undefined ? a.seq - b.seq : a.time < b.time ? -1 : a.time > b.time ? 1 : a.stream < b.stream ? -1 : a.stream > b.stream ? 1 : a.seq - b.seq;
  out.sort(q.order === 'desc' ? (a, b) => cmp(b, a) : cmp);
  return out.slice(0, q.limit ?? 100);
}

/** Bounds around every distinct stored time: each time, a ms before and after, and outside all. */
function boundaries(all: AuditRecord[]): (string | number)[] {
  const ms = [...new Set(all.map((r) => Date.parse(r.time)))].sort((a, b) => a - b);
  const out: (string | number)[] = [ms[0] - 60_000, ms.at(-1)! + 60_000];
  for (const t of ms) out.push(iso(t), t - 1, t + 1);
  return out;
}

async function assertSameAsScan(db: Db, all: AuditRecord[], label: string): Promise<void> {
  const bounds = boundaries(all);
  const streams: (AuditStreamName | undefined)[] = [undefined, ...AUDIT_STREAMS];
  let checked = 0;
  for (const stream of streams) {
    for (let i = 0; i < bounds.length; i += 2) {
      for (let j = 0; j < bounds.length; j += 3) {
        for (const q of [
          { stream, since: bounds[i], until: bounds[j], limit: 1000 },
          { stream, since: bounds[i], limit: 1000, order: 'desc' as const },
          { stream, until: bounds[j], limit: 7 },
        ]) {
          const got = (await queryEvents(db, q)).map((r) => `${r.stream}/${r.seq}`);
          const want = scan(all, q).map((r) => `${r.stream}/${r.seq}`);
          assert.deepEqual(got, want, `${label}: ${JSON.stringify(q)}`);
          checked++;
        }
      }
    }
    if (stream !== undefined) {
      const q = { stream, since: bounds[5], afterSeq: 3, actor: 'workload:a1', limit: 1000 };
      assert.deepEqual((await queryEvents(db, q)).map((r) => r.seq), scan(all, q).map((r) => r.seq), `${label}: ${JSON.stringify(q)}`);
    }
  }
  assert.ok(checked > 100);
}

for (const writer of ['worker', 'inline'] as const) {
  test(`a time earlier than the stream's last is raised to it before hashing, per stream (${writer})`, async () => {
    const s = tempStore();
    try {
      const clock = new ManualClock(T0);
      const log = new AuditLog(auditStore(s.db), { clock, writer, signer: key.signer, checkpointEvery: 3 });
      const a1 = await log.append({ stream: 'authz', type: 'authz.decision', actor: 'workload:a', payload: { n: 1 } });
      clock.set(T0 - 5_000); // the clock steps back
      const [a2, n1] = await Promise.all([
        log.append({ stream: 'authz', type: 'authz.decision', actor: 'workload:a', payload: { n: 2 } }),
        log.append({ stream: 'authn', type: 'authn.success', actor: 'workload:a', payload: { n: 1 } }),
      ]);
      assert.equal(a1.time, iso(T0));
      assert.equal(a2.time, iso(T0), 'clamped to the stream head');
      assert.equal(n1.time, iso(T0 - 5_000), 'another stream keeps its own time');
      clock.set(T0 + 1_000);
      const a3 = await log.append({ stream: 'authz', type: 'authz.decision', actor: 'workload:a', payload: { n: 3 } });
      assert.equal(a3.time, iso(T0 + 1_000), 'a later time is kept');
      clock.set(T0 - 1);
      const a4 = await log.append({ stream: 'authz', type: 'authz.decision', actor: 'workload:a', payload: { n: 4 } });
      assert.equal(a4.time, iso(T0 + 1_000));
      await log.close();

      // The returned record is the stored one and its hash is over the stored (clamped) time.
      const stored = await queryEvents(s.db, { stream: 'authz', limit: 10 });
      assert.deepEqual(stored, [a1, a2, a3, a4].map((r) => ({ ...r })));
      for (const r of stored) {
        const { hash, payload, ...rest } = r;
        const f: ChainFields = { ...scratchFields(), ...rest, payload: JSON.stringify(payload) };
        assert.equal(createHash('sha256').update(recordCanonical(f)).digest('hex'), hash);
      }
      const head = s.db.prepare("SELECT seq, last_time FROM audit_heads WHERE stream = 'authz'").get() as { seq: number; last_time: string };
      assert.deepEqual({ ...head }, { seq: 4, last_time: iso(T0 + 1_000) });
      assert.equal((await verifyAll(s.db, keys)).ok, true);
      s.db.close();
      assert.equal((await verifyDataDir(s.dir, keys)).ok, true);
    } finally {
      s.cleanup();
    }
  });
}

test('time ranges by binary search equal a scan: every stream, all boundaries, equal times, clock steps back', async () => {
  const s = tempStore();
  try {
    const clock = new ManualClock(T0);
    const log = new AuditLog(auditStore(s.db), { clock });
    let seed = 7;
    const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    for (let i = 0; i < 240; i++) {
      const stream = AUDIT_STREAMS[rnd(3)];
      void log.append({ stream, type: 't.x', actor: `workload:a${rnd(3)}`, payload: { i } });
      const step = rnd(5);
      // Several events share a ms, the clock sometimes goes back (clamped), sometimes jumps.
      if (step === 0) clock.advance(-rnd(4000));
      else if (step < 3) clock.advance(1 + rnd(1500));
      if (rnd(4) === 0) await log.flush();
    }
    await log.flush();
    const all = allRecords(s.db);
    assert.equal(all.length, 240);
    for (const st of AUDIT_STREAMS) {
      const times = all.filter((r) => r.stream === st).map((r) => r.time);
      assert.deepEqual(times, [...times].sort(), `${st}: times never go back`);
    }
    await assertSameAsScan(s.db, all, 'fresh');

    // A row missing from the middle (tampering) does not derail the search.
    tamper(s.path, "DELETE FROM audit_events WHERE stream = 'authz' AND seq = 20");
    await assertSameAsScan(s.db, allRecords(s.db), 'gap');
    await log.close();
  } finally {
    s.cleanup();
  }
});

test('the time index is gone: since/until use the primary key', () => {
  const db = openDatabase(':memory:');
  try {
    new AuditLog(auditStore(db));
    const idx = db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit_events' AND sql IS NOT NULL").all();
    assert.deepEqual(idx.map((r) => r.name).sort(), ['audit_events_actor', 'audit_events_session', 'audit_events_subject']);
  } finally {
    db.close();
  }
});

/** Writes a chained stream the way version-1 code did (no time order, head without last_time). */
function writeLegacy(db: Db, stream: AuditStreamName, times: number[]): void {
  const f = scratchFields(stream);
  let prev = GENESIS[stream];
  const ins = db.prepare('INSERT INTO audit_events (stream, seq, time, type, actor, boundary, subject, decision, payload, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)');
  times.forEach((t, i) => {
    Object.assign(f, { seq: i + 1, time: iso(t), type: 'legacy.event', actor: `workload:a${i % 2}`, payload: `{"i":${i}}`, prev_hash: prev });
    const hash = hashFields(f);
    ins.run(stream, f.seq, f.time, f.type, f.actor, null, null, null, f.payload, prev, hash);
    prev = hash;
  });
  db.prepare('INSERT INTO audit_heads (stream, seq, hash, cp_seq, cp_time) VALUES (?, ?, ?, 0, ?)').run(stream, times.length, prev, T0);
}

test('migration 2 upgrades a version-1 store: old rows unchanged and queryable, new rows ordered', async () => {
  const s = tempStore();
  try {
    migrate(s.db, 'audit', AUDIT_MIGRATIONS.filter((m) => m.version === 1));
    // authz went back in time at seq 4 and 7 (7 is the last step back); authn is in order.
    const authzTimes = [0, 1000, 2000, 1500, 3000, 4000, 2500, 5000, 5000, 6000].map((d) => T0 + d);
    writeLegacy(s.db, 'authz', authzTimes);
    writeLegacy(s.db, 'authn', [0, 10, 20].map((d) => T0 + d));
    const legacy = allRecords(s.db);
    // Offline, un-migrated (CLI on an old data dir): time conditions alone, through the old index.
    const ro = new DatabaseSync(s.path, { readOnly: true });
    try {
      const q = { stream: 'authz' as const, since: T0 + 1500, until: T0 + 4001, limit: 1000 };
      assert.deepEqual(await queryEvents(ro, q), scan(legacy, q));
    } finally {
      ro.close();
    }

    const clock = new ManualClock(T0 + 5500); // earlier than authz's last time (T0 + 6000)
    const log = new AuditLog(auditStore(s.db), { clock, writer: 'worker' });
    const heads = s.db.prepare('SELECT stream, seq, last_time, sorted_from FROM audit_heads ORDER BY stream').all().map((r) => ({ ...r }));
    assert.deepEqual(heads, [
      { stream: 'authn', seq: 3, last_time: iso(T0 + 20), sorted_from: 1 },
      { stream: 'authz', seq: 10, last_time: iso(T0 + 6000), sorted_from: 7 },
    ]);
    const idx = s.db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'audit_events_time'").all();
    assert.equal(idx.length, 0);
    assert.deepEqual(allRecords(s.db), legacy, 'existing records are not rewritten');
    assert.equal((await verifyAll(s.db, keys)).ok, true);

    const z = await log.append({ stream: 'authz', type: 'new.event', actor: 'workload:a1', payload: {} });
    const n = await log.append({ stream: 'authn', type: 'new.event', actor: 'workload:a1', payload: {} });
    assert.equal(z.seq, 11);
    assert.equal(z.time, iso(T0 + 6000), 'clamped to the last legacy time');
    assert.equal(z.prev_hash, legacy.find((r) => r.stream === 'authz' && r.seq === 10)!.hash);
    assert.equal(n.time, iso(T0 + 5500));
    clock.advance(100);
    await Promise.all([1, 2, 3].map((i) => log.append({ stream: 'authz', type: 'new.event', actor: `workload:a${i % 2}`, payload: { i } })));
    await log.close();

    const all = allRecords(s.db);
    assert.equal(all.length, 13 + 5);
    await assertSameAsScan(s.db, all, 'migrated');
    assert.equal((await verifyAll(s.db, keys)).ok, true);
    // Opening again does not re-run the migration.
    const again = new AuditLog(auditStore(s.db));
    assert.equal((s.db.prepare("SELECT sorted_from FROM audit_heads WHERE stream = 'authz'").get() as { sorted_from: number }).sorted_from, 7);
    await again.close();
  } finally {
    s.cleanup();
  }
});
