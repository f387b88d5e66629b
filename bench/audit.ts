// Audit throughput on a real SQLite file: chained appends, each awaited until durable
// (synchronous=FULL, group commit), and verification (every hash recomputed, checkpoint
// signatures checked) online, offline, and offline in parallel. Then on PostgreSQL (an embedded
// cluster with fsync on): durable appends against plain batched INSERTs of the same rows into the
// same server, and two and three replicas appending at once.
import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase, SqliteDb } from '../src/store/sqlite/db.ts';
import { AUDIT_DB_FILE } from '../src/store/sqlite/index.ts';
import { SqliteAuditStore } from '../src/store/sqlite/audit/index.ts';
import { openAuditReader } from '../src/store/sqlite/audit/offline.ts';
import { AuditLog } from '../src/audit/log.ts';
import { verifyAll, verifyStream, type VerifyOptions } from '../src/audit/verify.ts';
import { queryEvents } from '../src/audit/query.ts';
import type { AuditEventInput, AuditQuery, AuditRecord, AuditVerification, CheckpointSigner, PublicKeyResolver } from '../src/audit/types.ts';
import pg from 'pg';
import { PgDb } from '../src/store/postgres/db.ts';
import { pgAuditStore } from '../src/store/postgres/audit.ts';
import { startCluster } from '../test/store/pg.ts';

// PCX_BENCH_QUICK=1: tiny sizes, to check the suite runs to the end (test/bench/run.test.ts).
const QUICK = process.env.PCX_BENCH_QUICK === '1';
const EVENTS = QUICK ? 4_000 : 200_000;
const WINDOW = 1_000; // appends issued per tick
const DEPTH = 4; // windows awaiting durability at once, as concurrent requests would be
const SERIAL = QUICK ? 50 : 1_000;
/** Size of the store the identity queries run against (PCX_BENCH_AUDIT_QUERY_EVENTS). */
const QUERY_EVENTS = QUICK ? 20_000 : Number(process.env.PCX_BENCH_AUDIT_QUERY_EVENTS ?? 1_000_000);
const IDENTITIES = 1_000;

function event(i: number): AuditEventInput {
  return {
    stream: 'authz',
    type: 'authz.decision',
    actor: `workload:github/acme/api-${i % 50}`,
    boundary: 'platform',
    decision: i % 7 === 0 ? 'deny' : 'allow',
    payload: { action: 'db.select', resource: 'Table::"orders"', policies: ['p-17'], decision_id: `d-${i}`, policy_version: 3 },
  };
}

interface Timing {
  seconds: number;
  /** CPU of all threads (this one and the writer worker) per event, and of this thread alone. */
  cpuUs: number;
  mainCpuUs: number;
}

async function appendAll(log: AuditLog, offset: number, events = EVENTS): Promise<Timing> {
  const t = performance.now();
  const c0 = process.cpuUsage();
  const m0 = process.threadCpuUsage();
  const inFlight: Promise<AuditRecord[]>[] = [];
  for (let i = 0; i < events; i += WINDOW) {
    const batch: Promise<AuditRecord>[] = new Array(Math.min(WINDOW, events - i));
    for (let j = 0; j < batch.length; j++) batch[j] = log.append(event(offset + i + j));
    inFlight.push(Promise.all(batch));
    if (inFlight.length >= DEPTH) await inFlight.shift();
    else await new Promise((r) => setImmediate(r)); // let the next window be a new tick
  }
  await Promise.all(inFlight);
  const c = process.cpuUsage(c0);
  const m = process.threadCpuUsage(m0);
  return { seconds: (performance.now() - t) / 1000, cpuUs: (c.user + c.system) / events, mainCpuUs: (m.user + m.system) / events };
}

/** `portcullis audit verify --data DIR`: the audit store opened read-only, verified (serially, or in parallel). */
async function verifyOffline(dir: string, keys: PublicKeyResolver, opts: VerifyOptions = {}): Promise<AuditVerification> {
  const reader = openAuditReader(dir);
  try {
    return await verifyAll(reader, keys, opts);
  } finally {
    reader.close();
  }
}

export async function run(emit: (line: Record<string, unknown>) => void): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-bench-audit-'));
  // The audit streams' own file, where the offline reader looks for them.
  const db = new SqliteDb(openDatabase(join(dir, AUDIT_DB_FILE)));
  const store = new SqliteAuditStore(db);
  try {
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    const jwk = publicKey.export({ format: 'jwk' });
    const keys = (kid: string) => (kid === 'bench' ? jwk : undefined);
    const signer = { kid: 'bench', sign: (d: Uint8Array) => sign(null, d, privateKey) };

    for (const writer of ['worker', 'inline'] as const) {
      const log = new AuditLog(store, { signer, checkpointEvery: 1000, writer });
      await log.append({ ...event(0), stream: 'admin' }); // start the writer before timing
      const r = await appendAll(log, 0);
      emit({
        bench: 'audit',
        op: 'append',
        writer,
        events: EVENTS,
        in_flight: WINDOW * DEPTH,
        durability: 'fsync',
        seconds: round(r.seconds),
        events_per_s: Math.round(EVENTS / r.seconds),
        // Robust to a busy machine: what one core could sustain, and event-loop time per event.
        cpu_us_per_event: round(r.cpuUs),
        main_thread_cpu_us_per_event: round(r.mainCpuUs),
      });
      await log.close();
    }

    // One caller awaiting each append alone: one commit (fsync) per event, the latency floor.
    const log = new AuditLog(store, { signer, checkpointEvery: 1000, writer: 'inline' });
    let t = performance.now();
    for (let i = 0; i < SERIAL; i++) await log.append({ ...event(i), stream: 'admin' });
    let s = (performance.now() - t) / 1000;
    emit({ bench: 'audit', op: 'append_serial', events: SERIAL, in_flight: 1, seconds: round(s), events_per_s: Math.round(SERIAL / s) });
    await log.close();

    t = performance.now();
    const v = await verifyStream(store, 'authz', keys);
    s = (performance.now() - t) / 1000;
    if (!v.ok) throw new Error(`bench chain did not verify: ${v.reason}`);
    emit({ bench: 'audit', op: 'verify', events: v.events, checkpoints: v.checkpoints, seconds: round(s), events_per_s: Math.round(v.events / s) });

    db.close(); // server down: offline verification
    t = performance.now();
    const off = await verifyOffline(dir, keys);
    s = (performance.now() - t) / 1000;
    const n = off.streams.reduce((a, x) => a + x.events, 0);
    if (!off.ok) throw new Error('bench store did not verify offline');
    emit({ bench: 'audit', op: 'verify_offline', events: n, seconds: round(s), events_per_s: Math.round(n / s) });

    const threads = Math.min(availableParallelism(), 4);
    t = performance.now();
    const par = await verifyOffline(dir, keys, { parallel: true, threads });
    s = (performance.now() - t) / 1000;
    if (!par.ok) throw new Error('bench store did not verify in parallel');
    emit({ bench: 'audit', op: 'verify_offline_parallel', threads, events: n, seconds: round(s), events_per_s: Math.round(n / s) });
  } finally {
    if (db.isOpen) db.close();
    rmSync(dir, { recursive: true, force: true });
  }
  await queries(emit);
  await postgres(emit);
}

/**
 * Query latency by identity at QUERY_EVENTS events in the authz stream (1,000 identities as
 * actors, a third of events also about a subject): each shape as the API runs it, and the
 * pre-#8 query (actor OR subject, planner's choice: a scan of the stream) as the baseline.
 */
export async function queries(emit: (line: Record<string, unknown>) => void): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-bench-audit-q-'));
  const db = new SqliteDb(openDatabase(join(dir, AUDIT_DB_FILE)));
  const store = new SqliteAuditStore(db);
  try {
    db.raw.exec('PRAGMA synchronous = OFF'); // building the store is not what is measured
    const log = new AuditLog(store, { durability: 'store', checkpointEvery: 10_000 });
    const t0 = performance.now();
    for (let i = 0; i < QUERY_EVENTS; i += 10_000) {
      const batch: Promise<AuditRecord>[] = [];
      for (let j = i; j < Math.min(i + 10_000, QUERY_EVENTS); j++) {
        const e = event(j);
        e.actor = `workload:svc-${j % IDENTITIES}`;
        if (j % 3 === 0) e.subject = `workload:svc-${(j * 7) % IDENTITIES}`;
        batch.push(log.append(e));
      }
      await Promise.all(batch);
    }
    await log.close();
    emit({ bench: 'audit', op: 'query_store_built', events: QUERY_EVENTS, seconds: round((performance.now() - t0) / 1000) });
    // A time range over the second half of the build (a seq range found by binary search).
    const mid = new Date(Date.now() - (performance.now() - t0) / 2).toISOString();
    const end = new Date(Date.now() + 1000).toISOString();
    const shapes: [string, (k: number) => AuditQuery][] = [
      ['identity', (k) => ({ stream: 'authz', identity: `workload:svc-${k}`, order: 'desc', limit: 100 })],
      ['actor', (k) => ({ stream: 'authz', actor: `workload:svc-${k}`, order: 'desc', limit: 100 })],
      ['subject', (k) => ({ stream: 'authz', subject: `workload:svc-${k}`, order: 'desc', limit: 100 })],
      ['identity_time_range', (k) => ({ stream: 'authz', identity: `workload:svc-${k}`, since: mid, until: end, limit: 100 })],
      ['identity_type', (k) => ({ stream: 'authz', identity: `workload:svc-${k}`, type: 'authz.decision', limit: 100 })],
      ['identity_all_streams', (k) => ({ identity: `workload:svc-${k}`, order: 'desc', limit: 100 })],
    ];
    const old = db.raw.prepare(
      'SELECT stream, seq, time, type, actor, boundary, subject, decision, payload, prev_hash, hash FROM audit_events ' +
        "WHERE stream = 'authz' AND (actor = ? OR subject = ?) ORDER BY seq DESC LIMIT 100",
    );
    const samples = QUICK ? 5 : 50;
    const measure = async (fn: (k: number) => unknown): Promise<{ p50: number; p99: number; max: number }> => {
      const ms: number[] = [];
      for (let i = 0; i < samples; i++) {
        const k = (i * 37) % IDENTITIES;
        const t = performance.now();
        await fn(k);
        ms.push(performance.now() - t);
      }
      ms.sort((a, b) => a - b);
      return { p50: round(ms[Math.floor(ms.length / 2)]!), p99: round(ms[Math.min(ms.length - 1, Math.floor(ms.length * 0.99))]!), max: round(ms.at(-1)!) };
    };
    // Each shape twice over the same identities: the first pass reads pages from disk (cold),
    // the second from the page cache (warm), which is what a busy server mostly sees.
    for (const [shape, q] of shapes) {
      const rows = (await queryEvents(store, q(1))).length;
      const cold = await measure((k) => queryEvents(store, q(k)));
      const m = await measure((k) => queryEvents(store, q(k)));
      emit({ bench: 'audit', op: 'query', shape, events: QUERY_EVENTS, rows, samples, p50_ms: m.p50, p99_ms: m.p99, max_ms: m.max, cold_p50_ms: cold.p50, cold_max_ms: cold.max });
    }
    const cold = await measure((k) => old.all(`workload:svc-${k}`, `workload:svc-${k}`));
    const b = await measure((k) => old.all(`workload:svc-${k}`, `workload:svc-${k}`));
    emit({ bench: 'audit', op: 'query', shape: 'identity_before_item_13', events: QUERY_EVENTS, samples, p50_ms: b.p50, p99_ms: b.p99, max_ms: b.max, cold_p50_ms: cold.p50, cold_max_ms: cold.max });
  } finally {
    if (db.isOpen) db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const round = (x: number): number => Math.round(x * 1000) / 1000;

/** Rows per plain INSERT, and connections inserting at once: the appender's chunk and connections. */
const PLAIN_BATCH = 2000;
const PLAIN_CONNECTIONS = 2;
const COLUMNS = ['stream', 'seq', 'time', 'type', 'actor', 'boundary', 'subject', 'decision', 'payload', 'prev_hash', 'hash'] as const;
const PLAIN_INSERT =
  `INSERT INTO audit_events (${COLUMNS.join(', ')}) ` +
  'SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[])';

/**
 * The PostgreSQL audit store on an embedded cluster with fsync and synchronous commits on (as in
 * production; the cluster shares the two cores with this process). `pg_append`: AuditLog appends
 * to authz, each awaited until committed, as in the SQLite case. `pg_plain_insert`: the same rows,
 * read back, inserted into an identical empty table of another database of the same server in
 * batches of the appender's chunk over as many connections, each INSERT its own commit: what the
 * chain, the head locks and the linking cost on top. `pg_append_replicas`: 2 and 3 AuditLogs on
 * their own pools (as many replicas; in this one process) appending to the same stream at once.
 */
export async function postgres(emit: (line: Record<string, unknown>) => void): Promise<void> {
  const cluster = await startCluster({ durable: true });
  const admin = new pg.Client({ connectionString: cluster.adminUrl });
  await admin.connect();
  let n = 0;
  const database = async (): Promise<string> => {
    const name = `bench_audit_${++n}`;
    await admin.query(`CREATE DATABASE ${name} TEMPLATE pcx_template OWNER portcullis_store`);
    return `${cluster.storeBase}/${name}`;
  };
  try {
    const settings = await admin.query<{ name: string; setting: string }>("SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'server_version')");
    const server = Object.fromEntries(settings.rows.map((r) => [r.name, r.setting]));
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    const jwk = publicKey.export({ format: 'jwk' });
    const keys = (kid: string) => (kid === 'bench' ? jwk : undefined);
    const signer: CheckpointSigner = { kid: 'bench', sign: (d: Uint8Array) => sign(null, d, privateKey) };

    // One replica, then the same rows as plain INSERTs.
    const url = await database();
    const db = await PgDb.open(url, { pool: 4 });
    const store = pgAuditStore(db);
    try {
      const log = new AuditLog(store, { signer, checkpointEvery: 1000 });
      await log.append({ ...event(0), stream: 'admin' }); // connect before timing
      const r = await appendAll(log, 0);
      await log.close();
      const rate = Math.round(EVENTS / r.seconds);
      emit({
        bench: 'audit',
        op: 'pg_append',
        store: 'postgres',
        server_version: server.server_version,
        fsync: server.fsync,
        replicas: 1,
        events: EVENTS,
        in_flight: WINDOW * DEPTH,
        durability: 'synchronous_commit',
        seconds: round(r.seconds),
        events_per_s: rate,
        cpu_us_per_event: round(r.cpuUs),
      });

      const rows = await db.query<Record<(typeof COLUMNS)[number], string | number | null>>(`SELECT ${COLUMNS.join(', ')} FROM audit_events WHERE stream = 'authz' ORDER BY seq`);
      const plainDb = await PgDb.open(await database(), { pool: PLAIN_CONNECTIONS });
      try {
        // Same durability as the appender: COMMIT waits for the WAL flush.
        await Promise.all(Array.from({ length: PLAIN_CONNECTIONS }, () => plainDb.query("SELECT set_config('synchronous_commit', 'on', false)")));
        await plainDb.query(PLAIN_INSERT, COLUMNS.map((c) => [rows[0]![c]]).map((v, i) => (i === 1 ? [0] : v))); // warm up (seq 0: not in the rows)
        const t = performance.now();
        let next = 0;
        await Promise.all(
          Array.from({ length: PLAIN_CONNECTIONS }, async () => {
            for (let i = (next += PLAIN_BATCH) - PLAIN_BATCH; i < rows.length; i = (next += PLAIN_BATCH) - PLAIN_BATCH) {
              const part = rows.slice(i, i + PLAIN_BATCH);
              await plainDb.query(PLAIN_INSERT, COLUMNS.map((c) => part.map((row) => row[c])));
            }
          }),
        );
        const s = (performance.now() - t) / 1000;
        const plain = Math.round(rows.length / s);
        emit({ bench: 'audit', op: 'pg_plain_insert', store: 'postgres', events: rows.length, batch: PLAIN_BATCH, connections: PLAIN_CONNECTIONS, seconds: round(s), events_per_s: plain, append_ratio: round(rate / plain) });
      } finally {
        await plainDb.close();
      }

      const t = performance.now();
      const v = await verifyStream(store, 'authz', keys);
      const s = (performance.now() - t) / 1000;
      if (!v.ok) throw new Error(`bench chain did not verify on PostgreSQL: ${v.reason}`);
      emit({ bench: 'audit', op: 'pg_verify', store: 'postgres', events: v.events, checkpoints: v.checkpoints, seconds: round(s), events_per_s: Math.round(v.events / s) });
    } finally {
      await store.close();
      await db.close();
    }

    // Several replicas on one stream: the same total of events, split between them.
    for (const replicas of [2, 3]) {
      const shared = await database();
      const dbs = await Promise.all(Array.from({ length: replicas }, () => PgDb.open(shared, { pool: 4 })));
      const stores = dbs.map((d) => pgAuditStore(d));
      try {
        // One replica signs checkpoints (the leader); the others only append.
        const logs = stores.map((st, i) => new AuditLog(st, i === 0 ? { signer, checkpointEvery: 1000 } : {}));
        await Promise.all(logs.map((l) => l.append({ ...event(0), stream: 'admin' })));
        const per = Math.floor(EVENTS / replicas);
        const t = performance.now();
        const each = await Promise.all(logs.map((l, i) => appendAll(l, i * per, per)));
        const s = (performance.now() - t) / 1000;
        for (const l of logs.slice(1)) await l.close();
        await logs[0]!.close();
        const v = await verifyStream(stores[0]!, 'authz', keys);
        if (!v.ok || v.events !== per * replicas) throw new Error(`the replicas' chain did not verify: ${v.reason ?? `${v.events} events`}`);
        emit({
          bench: 'audit',
          op: 'pg_append_replicas',
          store: 'postgres',
          replicas,
          events: per * replicas,
          in_flight: WINDOW * DEPTH * replicas,
          seconds: round(s),
          events_per_s: Math.round((per * replicas) / s),
          per_replica_events_per_s: each.map((e) => Math.round(per / e.seconds)),
          verified: v.ok,
        });
      } finally {
        for (const st of stores) await st.close();
        for (const d of dbs) await d.close();
      }
    }
  } finally {
    await admin.end();
    await cluster.stop();
  }
}

if (import.meta.main) await run((l) => console.log(JSON.stringify(l)));
