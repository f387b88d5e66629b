// Issue #8 item 13: queries by identity, actor or subject are index lookups, never a scan of the
// stream, for every query shape (EXPLAIN QUERY PLAN, on a store with statistics so the planner
// would otherwise be free to prefer the primary key); only indexes some query uses exist; and
// the rewritten queries return exactly what a scan of every record returns.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AuditLog } from '../../src/audit/log.ts';
import { toRecord, type ChainFields } from '../../src/audit/chain.ts';
import { normalizeQuery } from '../../src/audit/query.ts';
import { SESSION_RECORDS_SQL, buildQuery } from '../../src/store/sqlite/audit/query.ts';
import { ManualClock } from '../../src/common/clock.ts';
import { openDatabase, type Db } from '../../src/store/sqlite/db.ts';
import { AUDIT_STREAMS, type AuditQuery, type AuditRecord } from '../../src/audit/types.ts';
import { auditStore, queryEvents } from './helpers.ts';

const T0 = Date.parse('2026-05-01T00:00:00Z');
const iso = (ms: number): string => new Date(ms).toISOString();
const ACTORS = ['workload:a0', 'workload:a1', 'workload:a2', 'user:alice@example.com', 'system'];

/** 3 streams, 1,500 events: actors and subjects overlap (some events are about their own actor), equal times, several types. */
async function store(analyze = true): Promise<Db> {
  const db = openDatabase(':memory:');
  const clock = new ManualClock(T0);
  const log = new AuditLog(auditStore(db), { clock });
  let r = 7;
  const rnd = (n: number): number => (((r = (r * 1103515245 + 12345) >>> 0) >>> 16) % n);
  for (let i = 0; i < 1500; i++) {
    if (rnd(3) === 0) clock.advance(rnd(3) * 1000); // runs of equal times
    const stream = AUDIT_STREAMS[rnd(3)]!;
    const actor = ACTORS[rnd(ACTORS.length)]!;
    const subject = rnd(3) === 0 ? undefined : rnd(4) === 0 ? actor : ACTORS[rnd(ACTORS.length)]!;
    void log.append({
      stream,
      type: ['t.one', 't.two', 't.rare'][rnd(10) === 0 ? 2 : rnd(2)]!,
      actor,
      ...(subject !== undefined && { subject }),
      boundary: rnd(2) ? 'platform' : 'application',
      ...(stream === 'authz' && { decision: rnd(2) ? 'allow' : 'deny' }),
      payload: { i },
    });
  }
  await log.close();
  if (analyze) db.exec('ANALYZE'); // with statistics, and without (a live store rarely has any)
  return db;
}

function all(db: Db): AuditRecord[] {
  const rows = db.prepare('SELECT * FROM audit_events ORDER BY stream, seq').all() as unknown as (ChainFields & { hash: string })[];
  return rows.map(toRecord);
}

/** What a query must return, by scanning every record. */
function reference(records: AuditRecord[], q: AuditQuery): AuditRecord[] {
  const since = q.since === undefined ? undefined : iso(Date.parse(String(q.since)));
  const until = q.until === undefined ? undefined : iso(Date.parse(String(q.until)));
  const out = records.filter(
    (r) =>
      (q.stream === undefined || r.stream === q.stream) &&
      (q.identity === undefined || r.actor === q.identity || r.subject === q.identity) &&
      (q.actor === undefined || r.actor === q.actor) &&
      (q.subject === undefined || r.subject === q.subject) &&
      (q.type === undefined || r.type === q.type) &&
      (q.boundary === undefined || r.boundary === q.boundary) &&
      (q.decision === undefined || r.decision === q.decision) &&
      (q.afterSeq === undefined || r.seq > q.afterSeq) &&
      (since === undefined || r.time >= since) &&
      (until === undefined || r.time < until),
  );
  const key = (r: AuditRecord): string => (q.stream !== undefined ? String(r.seq).padStart(10, '0') : `${r.time}|${r.stream}|${String(r.seq).padStart(10, '0')}`);
  out.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  if (q.order === 'desc') out.reverse();
  return out.slice(0, q.limit ?? 100);
}

const SHAPES: [string, AuditQuery, ('audit_events_actor' | 'audit_events_subject')[]][] = [
  ['by actor', { stream: 'authz', actor: 'workload:a1' }, ['audit_events_actor']],
  ['by subject', { stream: 'authz', subject: 'workload:a1' }, ['audit_events_subject']],
  ['by identity (actor or subject)', { stream: 'authz', identity: 'workload:a1' }, ['audit_events_actor', 'audit_events_subject']],
  ['by identity, newest first', { stream: 'admin', identity: 'workload:a1', order: 'desc' }, ['audit_events_actor', 'audit_events_subject']],
  ['by identity with a time range', { stream: 'authz', identity: 'workload:a1', since: iso(T0 + 10_000), until: iso(T0 + 400_000) }, ['audit_events_actor', 'audit_events_subject']],
  ['by identity with a type', { stream: 'authn', identity: 'workload:a1', type: 't.rare' }, ['audit_events_actor', 'audit_events_subject']],
  ['by actor with type, decision, boundary', { stream: 'authz', actor: 'workload:a1', type: 't.one', decision: 'deny', boundary: 'platform' }, ['audit_events_actor']],
  ['by identity, every stream', { identity: 'workload:a1' }, ['audit_events_actor', 'audit_events_subject']],
  ['by actor, every stream, time range', { actor: 'workload:a1', since: iso(T0 + 10_000) }, ['audit_events_actor']],
];

function plan(db: Db, q: AuditQuery): string[] {
  const { sql, params } = buildQuery(db, normalizeQuery(q));
  return (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as { detail: string }[]).map((r) => r.detail);
}

test('every identity query shape is answered from its index, never by scanning the stream (with and without statistics)', async () => {
  for (const analyze of [false, true]) {
    const db = await store(analyze);
    try {
      for (const [name, q, indexes] of SHAPES) {
        const steps = plan(db, q);
        const reads = steps.filter((d) => /\b(SCAN|SEARCH) audit_events\b/.test(d));
        assert.ok(reads.length > 0, name);
        for (const d of reads) {
          assert.match(d, /^SEARCH audit_events USING INDEX audit_events_(actor|subject) \((actor|subject)=\? AND stream=\?/, `${name}: ${d}`);
        }
        for (const idx of indexes) assert.ok(reads.some((d) => d.includes(`USING INDEX ${idx} `)), `${name} uses ${idx}: ${steps.join(' | ')}`);
        if (q.since !== undefined) assert.ok(reads.some((d) => /seq>\? AND seq<\?/.test(d)), `${name}: the time range is a seq range on the index`);
        if (q.stream !== undefined) {
          // Each branch walks its index in seq order and stops at the limit (no sort of every match).
          assert.ok(steps.filter((d) => d.startsWith('CO-ROUTINE')).length === indexes.length, `${name}: ${steps.join(' | ')}`);
        }
      }
    } finally {
      db.close();
    }
  }
});

test('only indexes that a query uses exist on the events', async () => {
  const db = await store();
  try {
    const idx = db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit_events' AND sql IS NOT NULL").all() as { name: string }[];
    const used = new Set(SHAPES.flatMap(([, q]) => plan(db, q).join(' ').match(/audit_events_\w+/g) ?? []));
    // One gateway session's records (AuditReader.sessionRecords) have their own query.
    const session = (db.prepare(`EXPLAIN QUERY PLAN ${SESSION_RECORDS_SQL}`).all('gws_x', 0, null, null, 10) as { detail: string }[]).map((r) => r.detail).join(' ');
    for (const m of session.match(/audit_events_\w+/g) ?? []) used.add(m);
    assert.deepEqual(idx.map((r) => r.name).sort(), [...used].sort());
  } finally {
    db.close();
  }
});

test('index-answered queries return exactly what a scan returns (every shape, limits, order, self-subjects)', async () => {
  const db = await store();
  try {
    const records = all(db);
    let r = 11;
    const rnd = (n: number): number => (((r = (r * 1103515245 + 12345) >>> 0) >>> 16) % n);
    const checked = { nonEmpty: 0, dedup: 0 };
    for (let i = 0; i < 400; i++) {
      const id = ACTORS[rnd(ACTORS.length)]!;
      const q: AuditQuery = {
        ...(rnd(3) > 0 && { stream: AUDIT_STREAMS[rnd(3)]! }),
        ...[{ identity: id }, { actor: id }, { subject: id }, { identity: id, actor: ACTORS[rnd(5)]! }, { actor: id, subject: ACTORS[rnd(5)]! }][rnd(5)]!,
        ...(rnd(3) === 0 && { type: ['t.one', 't.rare'][rnd(2)]! }),
        ...(rnd(4) === 0 && { boundary: 'platform' }),
        ...(rnd(4) === 0 && { decision: 'deny' as const }),
        ...(rnd(3) === 0 && { since: iso(T0 + rnd(600) * 1000) }),
        ...(rnd(3) === 0 && { until: iso(T0 + 300_000 + rnd(600) * 1000) }),
        ...(rnd(2) === 0 && { order: 'desc' as const }),
        limit: [1, 5, 100, 1000][rnd(4)]!,
      };
      if (q.stream !== undefined && rnd(4) === 0) q.afterSeq = rnd(300);
      const got = await queryEvents(db, q);
      assert.deepEqual(got, reference(records, q), JSON.stringify(q));
      if (got.length > 0) checked.nonEmpty++;
      if (got.some((e) => e.actor === e.subject)) checked.dedup++;
    }
    assert.ok(checked.nonEmpty > 200 && checked.dedup > 20, JSON.stringify(checked));

    // A stream with rows from before times were kept in order (sorted_from > 1): still exact.
    db.exec("UPDATE audit_events SET time = '2026-04-30T00:00:00.000Z' WHERE stream = 'authn' AND seq IN (40, 80)");
    db.exec("UPDATE audit_heads SET sorted_from = 81 WHERE stream = 'authn'");
    const legacy = all(db);
    for (const q of [{ identity: ACTORS[0]! }, { actor: ACTORS[1]!, limit: 3 }, { identity: ACTORS[2]!, order: 'desc' as const, limit: 7 }, { identity: ACTORS[0]!, limit: 1 }]) {
      assert.deepEqual(await queryEvents(db, q), reference(legacy, q), JSON.stringify(q));
    }
  } finally {
    db.close();
  }
});
