// Audit throughput on a real SQLite file: chained appends, each awaited until durable
// (synchronous=FULL, group commit), and verification (every hash recomputed, checkpoint
// signatures checked) online, offline, and offline in parallel.
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
import type { AuditEventInput, AuditQuery, AuditRecord, AuditVerification, PublicKeyResolver } from '../src/audit/types.ts';

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

async function appendAll(log: AuditLog, offset: number): Promise<Timing> {
  const t = performance.now();
  const c0 = process.cpuUsage();
  const m0 = process.threadCpuUsage();
  const inFlight: Promise<AuditRecord[]>[] = [];
  for (let i = 0; i < EVENTS; i += WINDOW) {
    const batch: Promise<AuditRecord>[] = new Array(WINDOW);
    for (let j = 0; j < WINDOW; j++) batch[j] = log.append(event(offset + i + j));
    inFlight.push(Promise.all(batch));
    if (inFlight.length >= DEPTH) await inFlight.shift();
    else await new Promise((r) => setImmediate(r)); // let the next window be a new tick
  }
  await Promise.all(inFlight);
  const c = process.cpuUsage(c0);
  const m = process.threadCpuUsage(m0);
  return { seconds: (performance.now() - t) / 1000, cpuUs: (c.user + c.system) / EVENTS, mainCpuUs: (m.user + m.system) / EVENTS };
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

if (import.meta.main) await run((l) => console.log(JSON.stringify(l)));
