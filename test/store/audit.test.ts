// The audit store's contract (src/audit/ports.ts) over SQLite and PostgreSQL: appenders link onto
// what is stored and report the last stored checkpoint with each due one, ignore a checkpoint sent
// twice, store nothing of a failed batch and apply batches in order; two replicas appending to one
// stream make one gap-free chain; on PostgreSQL a batch is answered, and a read returns rows,
// only once the WAL holding them is flushed; odd strings are stored exactly; queries match a scan
// of every record; verification catches edited, deleted, reordered and truncated rows (a server
// crash: audit-crash.test.ts). Only the audit domain is opened (its tables,
// through its own store class), with a second connection to play the attacker.
import assert from 'node:assert/strict';
import type pg from 'pg';
import { AuditLog } from '../../src/audit/log.ts';
import { normalizeQuery } from '../../src/audit/query.ts';
import { verifyAll } from '../../src/audit/verify.ts';
import { ManualClock } from '../../src/common/clock.ts';
import type { AppendBatch, AuditStore } from '../../src/audit/ports.ts';
import type { PreparedEvent } from '../../src/audit/prepare.ts';
import { AUDIT_STREAMS, type AuditQuery, type AuditRecord, type AuditStreamName } from '../../src/audit/types.ts';
import { openDatabase, SqliteDb } from '../../src/store/sqlite/db.ts';
import { SqliteAuditStore } from '../../src/store/sqlite/audit/index.ts';
import { PgDb } from '../../src/store/postgres/db.ts';
import { pgAuditStore } from '../../src/store/postgres/audit.ts';
import { ed25519Key, resolverOf, tamper as sqliteTamper, tempStore } from '../audit/helpers.ts';
import { adminClient, freshStoreUrl } from './pg.ts';
import { forEachStore, type StoreKind } from './stores.ts';

/** One audit database, its first store, and what a test does around it. */
interface AuditDb {
  store: AuditStore;
  /** Another store on the same database: a second replica. */
  replica(): Promise<AuditStore>;
  /** Runs SQL on a connection of its own (the attacker, or a test forcing a failure). */
  sql(text: string): Promise<void>;
  /** Makes inserting the event with this payload fail (a trigger). */
  failOnPayload(payload: string): Promise<void>;
  /** PostgreSQL: a superuser connection of its own, to inspect the server (WAL positions). */
  admin?: pg.Client;
  close(): Promise<void>;
}

async function openAuditDb(kind: StoreKind): Promise<AuditDb> {
  if (kind === 'sqlite') {
    const t = tempStore();
    const conns = [new SqliteDb(t.db)];
    return {
      store: new SqliteAuditStore(conns[0]),
      replica: async () => {
        const c = new SqliteDb(openDatabase(t.path));
        conns.push(c);
        return new SqliteAuditStore(c);
      },
      sql: async (text) => sqliteTamper(t.path, text),
      failOnPayload: async (payload) =>
        sqliteTamper(t.path, `CREATE TRIGGER boom BEFORE INSERT ON audit_events WHEN NEW.payload = '${payload}' BEGIN SELECT RAISE(ABORT, 'no'); END`),
      close: async () => {
        for (const c of conns.slice(1)) c.close();
        t.cleanup();
      },
    };
  }
  const url = await freshStoreUrl();
  const dbs = [await PgDb.open(url, { pool: 4 })];
  const admin = await adminClient(new URL(url).pathname.slice(1));
  const stores = [pgAuditStore(dbs[0])];
  return {
    store: stores[0],
    replica: async () => {
      const db = await PgDb.open(url, { pool: 4 });
      dbs.push(db);
      const s = pgAuditStore(db);
      stores.push(s);
      return s;
    },
    sql: async (text) => void (await admin.query(text)),
    admin,
    failOnPayload: async (payload) => {
      await admin.query(`CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.payload = '${payload}' THEN RAISE EXCEPTION 'no'; END IF; RETURN NEW; END $$`);
      await admin.query('CREATE TRIGGER boom BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION boom()');
    },
    close: async () => {
      for (const s of stores) await s.close();
      for (const db of dbs) await db.close();
      await admin.end();
    },
  };
}

/** Declares a test over both stores with a fresh audit database. */
function auditTest(name: string, fn: (a: AuditDb, kind: StoreKind) => Promise<void>): void {
  forEachStore(name, async (_open, kind) => {
    const a = await openAuditDb(kind);
    try {
      await fn(a, kind);
    } finally {
      await a.close();
    }
  });
}

const key = ed25519Key('store-k1');
const ev = (i: number, stream: AuditStreamName = 'authz') => ({ stream, type: 'authz.decision', actor: 'workload:a', payload: { i } });
const prepared = (i: number, stream: AuditStreamName = 'admin'): PreparedEvent => ({
  stream,
  time: '2026-01-01T00:00:00.000Z',
  type: 't.x',
  actor: 'a',
  boundary: null,
  subject: null,
  decision: null,
  payload: `{"i":${i}}`,
});
const batch = (events: PreparedEvent[], extra: Partial<AppendBatch> = {}): AppendBatch => ({ events, checkpoints: [], now: 0, checkpoint: 'none', ...extra });
const NO_CHECKPOINTS = { enabled: false, every: 1000, intervalMs: 1000 };

async function checkpoints(store: AuditStore, stream: AuditStreamName): Promise<[number, number][]> {
  const [s] = await store.scanStreams({ streams: [stream] });
  return s.checkpoints.map((c) => [c.seq, c.prev_seq]);
}

for (const writer of ['inline', 'worker'] as const) {
  auditTest(`after a restart the first checkpoint links to the last one stored (${writer})`, async ({ store }) => {
    const first = new AuditLog(store, { signer: key.signer, checkpointEvery: 5, writer, clock: new ManualClock() });
    await Promise.all(Array.from({ length: 12 }, (_, i) => first.append(ev(i))));
    await first.flush();
    await first.close(); // stores 5, 10 and a final 12
    const appender = store.appender({ policy: { enabled: true, every: 5, intervalMs: 3_600_000 }, durability: 'full', writer });
    const r = await appender.append(batch([], { checkpoint: 'force' }));
    assert.deepEqual(r.due, [], 'nothing unsigned');
    const more = await appender.append(batch(Array.from({ length: 5 }, (_, i) => prepared(i, 'authz'))));
    assert.deepEqual(more.seqs, [13, 14, 15, 16, 17]);
    assert.deepEqual(
      more.due.map((d) => [d.stream, d.seq, d.prevStored]),
      [['authz', 17, 12]],
    );
    await appender.close();

    const second = new AuditLog(store, { signer: key.signer, checkpointEvery: 5, writer, clock: new ManualClock() });
    await Promise.all(Array.from({ length: 4 }, (_, i) => second.append(ev(i))));
    await second.close();
    assert.deepEqual(await checkpoints(store, 'authz'), [[5, 0], [10, 5], [12, 10], [21, 12]]);
    // 13..17 were appended without a signer: the checkpoint at 21 covers them.
    assert.equal((await verifyAll(store, resolverOf(key))).ok, true);
  });

  auditTest(`a checkpoint sent again is ignored, and a failed batch stores nothing (${writer})`, async (a) => {
    const { store } = a;
    const appender = store.appender({ policy: NO_CHECKPOINTS, durability: 'store', writer });
    const r = await appender.append(batch([prepared(1), prepared(2)]));
    const cp = { stream: 'admin', seq: 2, hash: r.hashes[1]!, time: '2026-01-01T00:00:00.000Z', prev_seq: 0, kid: 'k', sig: 'x' };
    await appender.append(batch([prepared(3)], { checkpoints: [cp] }));
    await appender.append(batch([prepared(4)], { checkpoints: [cp] }));
    assert.deepEqual(await checkpoints(store, 'admin'), [[2, 0]]);
    await a.failOnPayload('{"i":6}');
    await assert.rejects(appender.append(batch([prepared(5), prepared(6)])));
    const last = (await store.query(normalizeQuery({ stream: 'admin', order: 'desc', limit: 1 })))[0]!;
    assert.equal(last.seq, 4);
    assert.deepEqual(await store.head('admin'), { seq: 4, hash: last.hash });
    // The chain goes on from the last committed batch.
    assert.deepEqual((await appender.append(batch([prepared(7)]))).seqs, [5]);
    await appender.close();
  });
}

auditTest('an empty stream has no head; a head is the last committed event', async ({ store }) => {
  for (const s of AUDIT_STREAMS) assert.equal(await store.head(s), undefined);
  const log = new AuditLog(store);
  const recs = await Promise.all([log.append(ev(1)), log.append(ev(2)), log.append(ev(3, 'admin'))]);
  await log.close();
  assert.deepEqual(await store.head('authz'), { seq: 2, hash: recs[1]!.hash });
  assert.deepEqual(await store.head('admin'), { seq: 1, hash: recs[2]!.hash });
  assert.equal(await store.head('authn'), undefined);
  const [scan] = await store.scanStreams({ streams: ['authn'] });
  assert.equal(scan.head, undefined);
  assert.equal(scan.scan.count, 0);
});

auditTest('batches in flight at once are applied in the order given', async ({ store }) => {
  const appender = store.appender({ policy: NO_CHECKPOINTS, durability: 'store', writer: 'worker' });
  const results = await Promise.all(
    Array.from({ length: 12 }, (_, k) => appender.append(batch(Array.from({ length: 50 }, (_, i) => prepared(k * 50 + i, k % 3 === 0 ? 'authn' : 'admin'))))),
  );
  await appender.close();
  const seqs = { authn: 0, admin: 0 } as Record<string, number>;
  results.forEach((r, k) => {
    const s = k % 3 === 0 ? 'authn' : 'admin';
    assert.deepEqual(r.seqs, Array.from({ length: 50 }, (_, i) => seqs[s] + i + 1), `batch ${k}`);
    seqs[s] += 50;
  });
  const page = await store.query(normalizeQuery({ stream: 'admin', limit: 1000 }));
  assert.deepEqual(
    page.map((r) => r.payload.i),
    results.flatMap((_, k) => (k % 3 === 0 ? [] : Array.from({ length: 50 }, (_, i) => k * 50 + i))),
  );
});

auditTest('two replicas appending to one stream at once make one gap-free chain that verifies', async (a, kind) => {
  const other = await a.replica();
  // One replica signs checkpoints (the leader), the other only appends.
  const leader = new AuditLog(a.store, { signer: key.signer, checkpointEvery: 100 });
  const follower = new AuditLog(other, {});
  const N = 1500;
  const got: Record<'leader' | 'follower', AuditRecord[]> = { leader: [], follower: [] };
  const verdicts: boolean[] = [];
  const run = async (name: 'leader' | 'follower', log: AuditLog): Promise<void> => {
    for (let i = 0; i < N; i += 100) {
      const recs = await Promise.all(Array.from({ length: 100 }, (_, j) => log.append({ ...ev(i + j), actor: name, ...(j % 10 === 0 && { stream: 'admin' as const }) })));
      got[name].push(...recs);
    }
  };
  // Verification while both append sees each stream as of one snapshot: head and rows agree.
  const verifying = (async () => {
    while (got.leader.length + got.follower.length < 2 * N) {
      verdicts.push((await verifyAll(a.store, resolverOf(key))).ok);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  await Promise.all([run('leader', leader), run('follower', follower), verifying]);
  await follower.close();
  await leader.close();

  for (const stream of ['authz', 'admin'] as const) {
    const all = [...got.leader, ...got.follower].filter((r) => r.stream === stream);
    assert.deepEqual(
      all.map((r) => r.seq).sort((x, y) => x - y),
      Array.from({ length: all.length }, (_, i) => i + 1),
      `${stream}: every seq once, none missing`,
    );
    for (const name of ['leader', 'follower'] as const) {
      const own = got[name].filter((r) => r.stream === stream).map((r) => r.seq);
      assert.deepEqual(own, [...own].sort((x, y) => x - y), `${name}'s appends keep their order in ${stream}`);
    }
  }
  if (kind === 'postgres') {
    // The replicas really interleaved (each batch locked the head in turn).
    const leaderSeqs = new Set(got.leader.filter((r) => r.stream === 'authz').map((r) => r.seq));
    let switches = 0;
    for (let s = 2; s <= 2 * N * 0.9; s++) if (leaderSeqs.has(s) !== leaderSeqs.has(s - 1)) switches++;
    assert.ok(switches >= 4, `${switches} switches between replicas`);
  }
  const v = await verifyAll(other, resolverOf(key));
  assert.equal(v.ok, true, JSON.stringify(v));
  const authz = v.streams.find((s) => s.stream === 'authz')!;
  assert.equal(authz.lastSeq, authz.signedThrough, 'the leader checkpointed the follower\'s events too');
  assert.ok(verdicts.length > 0 && verdicts.every(Boolean), `verdicts during appends: ${verdicts.join(',')}`);
});

auditTest('a replica whose clock is behind continues the stream at its last time', async (a) => {
  const ahead = new AuditLog(a.store, { clock: new ManualClock(Date.parse('2026-05-01T00:00:10Z')) });
  const behind = new AuditLog(await a.replica(), { clock: new ManualClock(Date.parse('2026-05-01T00:00:00Z')) });
  const first = await ahead.append(ev(1));
  const second = await behind.append(ev(2));
  const other = await behind.append(ev(3, 'admin'));
  await ahead.close();
  await behind.close();
  assert.deepEqual([first.seq, second.seq], [1, 2]);
  assert.equal(second.time, first.time, 'clamped to the shared head');
  assert.equal(other.time, '2026-05-01T00:00:00.000Z', 'another stream keeps its own time');
  assert.deepEqual((await a.store.query(normalizeQuery({ stream: 'authz' }))).map((r) => r.time), [first.time, first.time]);
  assert.equal((await verifyAll(a.store, () => undefined)).ok, true);
});

forEachStore('an append waits while another transaction holds the stream\'s head, and goes on when it ends', async (_open, kind) => {
  if (kind !== 'postgres') return; // SQLite serialises writers on its file lock
  const a = await openAuditDb(kind);
  try {
    const log = new AuditLog(a.store);
    await log.append(ev(0));
    await a.sql("BEGIN; SELECT seq FROM audit_heads WHERE stream = 'authz' FOR UPDATE");
    let done = false;
    const pending = log.append(ev(1)).then((r) => ((done = true), r));
    await new Promise((r) => setTimeout(r, 100));
    const admin = await log.append(ev(2, 'admin')); // a batch on another stream is not held up
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(done, false, 'waits on the locked head');
    assert.equal(admin.seq, 1);
    await a.sql('ROLLBACK');
    assert.equal((await pending).seq, 2);
    await log.close();
  } finally {
    await a.close();
  }
});

// The appender commits without waiting for the WAL flush (the heads are released sooner) and
// answers after a grouped flush; reads wait for one too. `flushed` is read as soon as the answer
// arrives; the commit record's end comes from the WAL itself (pg_walinspect). The tests' server
// runs with synchronous_commit off, so nothing but that flush would have written the WAL so soon.
forEachStore('a batch is answered, and a read returns rows, only once the WAL holding them is flushed', async (_open, kind) => {
  if (kind !== 'postgres') return; // SQLite: the commit is the fsync
  const a = await openAuditDb(kind);
  const admin = a.admin!;
  const one = async <T>(text: string, params: unknown[] = []): Promise<T> => (await admin.query(text, params)).rows[0] as T;
  /**
   * Whether the WAL was flushed at `flushed` through the commit record of the transaction that
   * wrote this row (its xmin). pg_walinspect reads only flushed WAL: a commit it cannot find yet
   * was not flushed even now.
   */
  const covered = async (flushed: string, from: string, table: string, where: string): Promise<string | true> => {
    const w = await one<{ e: string; ok: boolean } | undefined>(
      `SELECT w.end_lsn::text AS e, $2::pg_lsn >= w.end_lsn AS ok FROM ${table} t, pg_get_wal_records_info($1::pg_lsn, pg_current_wal_insert_lsn()) w ` +
        `WHERE ${where} AND w.xid = t.xmin AND w.resource_manager = 'Transaction' AND w.record_type = 'COMMIT'`,
      [from, flushed],
    );
    return w === undefined ? 'its commit record is not flushed yet' : w.ok || `the WAL was flushed to ${flushed}, its commit record ends at ${w.e}`;
  };
  const flushLsn = async (): Promise<string> => (await one<{ f: string }>('SELECT pg_current_wal_flush_lsn()::text AS f')).f;
  try {
    await a.sql('CREATE EXTENSION pg_walinspect');
    const from = (await one<{ l: string }>('SELECT pg_current_wal_insert_lsn()::text AS l')).l;
    const appender = a.store.appender({ policy: NO_CHECKPOINTS, durability: 'full', writer: 'inline' });
    await appender.append(batch([prepared(0)])); // connections open
    for (let i = 1; i <= 10; i++) {
      // Several batches in flight at once, each checked as it is answered.
      const answered = await Promise.all(
        Array.from({ length: 3 }, (_, k) => appender.append(batch([prepared(i * 10 + k)])).then(async (r) => ({ seq: r.seqs[0]!, flushed: await flushLsn() }))),
      );
      for (const { seq, flushed } of answered) {
        assert.equal(await covered(flushed, from, 'audit_events', `t.stream = 'admin' AND t.seq = ${seq}`), true, `batch at seq ${seq} when answered`);
      }
    }
    await appender.close();

    // A row committed without waiting for the flush (as another replica's batch is) is read only
    // once the WAL is flushed past it: through a query, the head, and a verification scan.
    await a.sql('SET synchronous_commit = off');
    const reads: [string, () => Promise<unknown>][] = [
      ['query', () => a.store.query(normalizeQuery({ stream: 'authz', limit: 10 }))],
      ['head', () => a.store.head('authz')],
      ['scan', () => a.store.scanStreams({ streams: ['authz'] })],
    ];
    let seq = 0;
    for (const [name, read] of reads) {
      for (let k = 0; k < 3; k++) {
        seq++;
        await a.sql(
          'INSERT INTO audit_events (stream, seq, time, type, actor, payload, prev_hash, hash) ' +
            `VALUES ('authz', ${seq}, '2026-01-01T00:00:00.000Z', 't', 'a', '{}', 'p', 'h${seq}')`,
        );
        await a.sql(`UPDATE audit_heads SET seq = ${seq}, hash = 'h${seq}' WHERE stream = 'authz'`);
        const flushed = await read().then(flushLsn);
        for (const [table, where] of [
          ['audit_events', `t.stream = 'authz' AND t.seq = ${seq}`],
          ['audit_heads', "t.stream = 'authz'"],
        ] as const) {
          assert.equal(await covered(flushed, from, table, where), true, `${name} returned a row of ${table}`);
        }
      }
    }
    assert.equal((await a.store.query(normalizeQuery({ stream: 'authz', limit: 10 }))).length, seq);
  } finally {
    await a.close();
  }
});

/** 30 authz events, checkpoints every 10, verified; then `sql` tampers and verify must name `bad`. */
function tamperCase(name: string, sqls: string[], bad: number, reason: RegExp): void {
  auditTest(`verify catches ${name}`, async (a) => {
    const log = new AuditLog(a.store, { signer: key.signer, checkpointEvery: 10, clock: new ManualClock() });
    await Promise.all(Array.from({ length: 30 }, (_, i) => log.append(ev(i))));
    await log.close();
    assert.equal((await verifyAll(a.store, resolverOf(key))).ok, true);
    for (const s of sqls) await a.sql(s);
    const v = (await verifyAll(a.store, resolverOf(key))).streams.find((s) => s.stream === 'authz')!;
    assert.equal(v.ok, false);
    assert.equal(v.firstBadSeq, bad, v.reason);
    assert.match(v.reason!, reason);
  });
}

tamperCase('an edited payload', [`UPDATE audit_events SET payload = '{"i":99}' WHERE stream = 'authz' AND seq = 15`], 15, /does not match its hash/);
tamperCase('a deleted middle row', ["DELETE FROM audit_events WHERE stream = 'authz' AND seq = 15"], 15, /seq 15 is missing/);
tamperCase(
  'two rows swapped (their seqs exchanged)',
  [
    "UPDATE audit_events SET seq = -15 WHERE stream = 'authz' AND seq = 15",
    "UPDATE audit_events SET seq = 15 WHERE stream = 'authz' AND seq = 16",
    "UPDATE audit_events SET seq = 16 WHERE stream = 'authz' AND seq = -15",
  ],
  15,
  /seq 15/,
);
tamperCase('a deleted tail', ["DELETE FROM audit_events WHERE stream = 'authz' AND seq > 25"], 26, /events from seq 26 (to 30 )?are missing/);
tamperCase(
  'a deleted tail with its head row rewound',
  [
    "DELETE FROM audit_events WHERE stream = 'authz' AND seq > 25",
    "UPDATE audit_heads SET seq = 25, hash = (SELECT hash FROM audit_events WHERE stream = 'authz' AND seq = 25) WHERE stream = 'authz'",
  ],
  26,
  /events from seq 26 are missing \(signed checkpoint at seq 30\)/,
);
tamperCase('a deleted head row', ["DELETE FROM audit_heads WHERE stream = 'authz'"], 31, /head row is missing/);

auditTest('strings with quotes, backslashes, braces and separators are stored and hashed exactly', async ({ store }) => {
  const odd = ['a\'b', 'a"b', 'a\\b', '\\', '"', "'", '{x,y}', 'NULL', 'null', '', ' ', 'a,b', '\n\t\r', 'é😀\u2028', '$1', '\\"\'{}'];
  const log = new AuditLog(store);
  const append = (v: string, i: number) =>
    log.append({ stream: 'authz', type: `t.${i}`, actor: `user:${v}`, subject: v === '' ? undefined : v, boundary: v || 'b', decision: 'allow', payload: { v, [v]: [v] } });
  // One small batch, then one of 160 events (PostgreSQL writes them as literals, then as parameters).
  const recs = await Promise.all(odd.map(append));
  recs.push(...(await Promise.all(Array.from({ length: 10 }, () => odd).flat().map(append))));
  await log.close();
  assert.deepEqual(await store.query(normalizeQuery({ stream: 'authz', limit: 1000 })), recs);
  assert.deepEqual(
    recs.map((r) => r.actor),
    Array.from({ length: 11 }, () => odd.map((v) => `user:${v}`)).flat(),
  );
  assert.equal((await verifyAll(store, () => undefined)).ok, true);
});

auditTest('an event whose identity holds U+0000 is stored (as U+FFFD) and verifies', async ({ store }) => {
  const log = new AuditLog(store);
  const rec = await log.append({ stream: 'authn', type: 'authn.failure', actor: 'user:a\u0000b', subject: 'x\ud800', payload: { k: 'v\u0000', ['\u0000']: 1 } });
  const next = await log.append(ev(1, 'authn'));
  await log.close();
  assert.equal(rec.actor, 'user:a\ufffdb');
  assert.equal(next.seq, 2);
  assert.deepEqual((await store.query(normalizeQuery({ stream: 'authn' })))[0], rec);
  assert.equal((await verifyAll(store, () => undefined)).ok, true);
});

// Queries: every filter, both orders, limits and afterSeq, against a scan of every record.

const T0 = Date.parse('2026-05-01T00:00:00Z');
const iso = (ms: number): string => new Date(ms).toISOString();
const ACTORS = ['workload:a0', 'workload:a1', 'workload:a2', 'user:alice@example.com', 'system'];

/** 3 streams, 1,200 events: actors and subjects overlap, runs of equal times, several types. */
async function fill(store: AuditStore): Promise<void> {
  const clock = new ManualClock(T0);
  const log = new AuditLog(store, { clock });
  let r = 7;
  const rnd = (n: number): number => ((r = (r * 1103515245 + 12345) >>> 0) >>> 16) % n;
  for (let i = 0; i < 1200; i++) {
    if (rnd(3) === 0) clock.advance(rnd(3) * 1000);
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
    if (i % 200 === 0) await new Promise((res) => setImmediate(res)); // several batches
  }
  await log.close();
}

async function everything(store: AuditStore): Promise<AuditRecord[]> {
  const out: AuditRecord[] = [];
  for (const stream of AUDIT_STREAMS) out.push(...(await store.query(normalizeQuery({ stream, limit: 1000 }))));
  return out;
}

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
  const k = (r: AuditRecord): string => (q.stream !== undefined ? String(r.seq).padStart(10, '0') : `${r.time}|${r.stream}|${String(r.seq).padStart(10, '0')}`);
  out.sort((x, y) => (k(x) < k(y) ? -1 : k(x) > k(y) ? 1 : 0));
  if (q.order === 'desc') out.reverse();
  return out.slice(0, q.limit ?? 100);
}

auditTest('queries return exactly what a scan of every record returns (filters, orders, limits, paging)', async (a) => {
  const { store } = a;
  await fill(store);
  const records = await everything(store);
  assert.equal(records.length, 1200);
  const q = (query: AuditQuery): Promise<AuditRecord[]> => store.query(normalizeQuery(query));
  let r = 11;
  const rnd = (n: number): number => ((r = (r * 1103515245 + 12345) >>> 0) >>> 16) % n;
  const checked = { nonEmpty: 0, identity: 0 };
  for (let i = 0; i < 300; i++) {
    const id = ACTORS[rnd(ACTORS.length)]!;
    const query: AuditQuery = {
      ...(rnd(3) > 0 && { stream: AUDIT_STREAMS[rnd(3)]! }),
      ...[{}, { identity: id }, { actor: id }, { subject: id }, { identity: id, actor: ACTORS[rnd(5)]! }, { actor: id, subject: ACTORS[rnd(5)]! }][rnd(6)]!,
      ...(rnd(3) === 0 && { type: ['t.one', 't.rare'][rnd(2)]! }),
      ...(rnd(4) === 0 && { boundary: 'platform' }),
      ...(rnd(4) === 0 && { decision: 'deny' as const }),
      ...(rnd(3) === 0 && { since: iso(T0 + rnd(500) * 1000) }),
      ...(rnd(3) === 0 && { until: iso(T0 + 250_000 + rnd(500) * 1000) }),
      ...(rnd(2) === 0 && { order: 'desc' as const }),
      limit: [1, 5, 100, 1000][rnd(4)]!,
    };
    if (query.stream !== undefined && rnd(4) === 0) query.afterSeq = rnd(300);
    const got = await q(query);
    assert.deepEqual(got, reference(records, query), JSON.stringify(query));
    if (got.length > 0) checked.nonEmpty++;
    if (got.length > 0 && (query.identity ?? query.actor ?? query.subject) !== undefined) checked.identity++;
  }
  assert.ok(checked.nonEmpty > 150 && checked.identity > 80, JSON.stringify(checked));

  // Paging a stream with afterSeq visits every matching record once, in order.
  const paged: AuditRecord[] = [];
  for (let after = 0; ; ) {
    const page = await q({ stream: 'authz', identity: ACTORS[1]!, afterSeq: after, limit: 7 });
    paged.push(...page);
    if (page.length < 7) break;
    after = page.at(-1)!.seq;
  }
  assert.deepEqual(paged, reference(records, { stream: 'authz', identity: ACTORS[1]!, limit: 1000 }));

  // A stream with rows from before times were kept in order (sorted_from > 1, e.g. copied from
  // an old store): still exact.
  await a.sql("UPDATE audit_events SET time = '2026-04-30T00:00:00.000Z' WHERE stream = 'authn' AND seq IN (40, 80)");
  await a.sql("UPDATE audit_heads SET sorted_from = 81 WHERE stream = 'authn'");
  const legacy = await everything(store);
  for (const query of [
    { identity: ACTORS[0]! },
    { actor: ACTORS[1]!, limit: 3 },
    { identity: ACTORS[2]!, order: 'desc' as const, limit: 7 },
    { stream: 'authn' as const, since: iso(T0 - 86_400_000), until: iso(T0 + 1000) },
    { since: iso(T0 - 86_400_000), until: iso(T0 + 100_000), limit: 1000 },
  ]) {
    assert.deepEqual(await q(query), reference(legacy, query), JSON.stringify(query));
  }
});
