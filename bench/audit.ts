// Audit throughput on a real SQLite file: chained appends, each awaited until durable
// (synchronous=FULL, group commit), and verification (every hash recomputed, checkpoint
// signatures checked) online, offline, and offline in parallel.
import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase } from '../src/store/sqlite.ts';
import { AuditLog } from '../src/audit/log.ts';
import { verifyDataDir, verifyStream } from '../src/audit/verify.ts';
import { verifyDataDirParallel } from '../src/audit/verify-parallel.ts';
import type { AuditEventInput, AuditRecord } from '../src/audit/types.ts';

const EVENTS = 200_000;
const WINDOW = 1_000; // appends issued per tick
const DEPTH = 4; // windows awaiting durability at once, as concurrent requests would be
const SERIAL = 1_000;

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

export async function run(emit: (line: Record<string, unknown>) => void): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-bench-audit-'));
  const db = openDatabase(join(dir, 'portcullis.db'));
  try {
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    const jwk = publicKey.export({ format: 'jwk' });
    const keys = (kid: string) => (kid === 'bench' ? jwk : undefined);
    const signer = { kid: 'bench', sign: (d: Uint8Array) => sign(null, d, privateKey) };

    for (const writer of ['worker', 'inline'] as const) {
      const log = new AuditLog(db, { signer, checkpointEvery: 1000, writer });
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
    const log = new AuditLog(db, { signer, checkpointEvery: 1000, writer: 'inline' });
    let t = performance.now();
    for (let i = 0; i < SERIAL; i++) await log.append({ ...event(i), stream: 'admin' });
    let s = (performance.now() - t) / 1000;
    emit({ bench: 'audit', op: 'append_serial', events: SERIAL, in_flight: 1, seconds: round(s), events_per_s: Math.round(SERIAL / s) });
    await log.close();

    t = performance.now();
    const v = verifyStream(db, 'authz', keys);
    s = (performance.now() - t) / 1000;
    if (!v.ok) throw new Error(`bench chain did not verify: ${v.reason}`);
    emit({ bench: 'audit', op: 'verify', events: v.events, checkpoints: v.checkpoints, seconds: round(s), events_per_s: Math.round(v.events / s) });

    db.close(); // server down: offline verification
    t = performance.now();
    const off = verifyDataDir(dir, keys);
    s = (performance.now() - t) / 1000;
    const n = off.streams.reduce((a, x) => a + x.events, 0);
    if (!off.ok) throw new Error('bench store did not verify offline');
    emit({ bench: 'audit', op: 'verify_offline', events: n, seconds: round(s), events_per_s: Math.round(n / s) });

    const threads = Math.min(availableParallelism(), 4);
    t = performance.now();
    const par = await verifyDataDirParallel(dir, keys, { threads });
    s = (performance.now() - t) / 1000;
    if (!par.ok) throw new Error('bench store did not verify in parallel');
    emit({ bench: 'audit', op: 'verify_offline_parallel', threads, events: n, seconds: round(s), events_per_s: Math.round(n / s) });
  } finally {
    if (db.isOpen) db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const round = (x: number): number => Math.round(x * 1000) / 1000;

if (import.meta.main) await run((l) => console.log(JSON.stringify(l)));
