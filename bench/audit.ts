// Audit throughput: chained, durable appends (awaiting each commit, synchronous=FULL) and
// verification (recompute every hash and check the checkpoints) on a real SQLite file.
import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase } from '../src/store/sqlite.ts';
import { AuditLog } from '../src/audit/log.ts';
import { verifyDataDir, verifyStream } from '../src/audit/verify.ts';
import type { AuditEventInput } from '../src/audit/types.ts';

const EVENTS = 200_000;
const WINDOW = 2_000; // appends in flight per tick: one group commit each
const SERIAL = 2_000;

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

export async function run(emit: (line: Record<string, unknown>) => void): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-bench-audit-'));
  const db = openDatabase(join(dir, 'portcullis.db'));
  try {
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    const jwk = publicKey.export({ format: 'jwk' });
    const keys = (kid: string) => (kid === 'bench' ? jwk : undefined);
    const log = new AuditLog(db, { signer: { kid: 'bench', sign: (d) => sign(null, d, privateKey) }, checkpointEvery: 1000 });

    let t = performance.now();
    for (let i = 0; i < EVENTS; i += WINDOW) {
      const batch: Promise<unknown>[] = new Array(WINDOW);
      for (let j = 0; j < WINDOW; j++) batch[j] = log.append(event(i + j));
      await Promise.all(batch);
    }
    let s = (performance.now() - t) / 1000;
    emit({ bench: 'audit', op: 'append', events: EVENTS, in_flight: WINDOW, durability: 'fsync', seconds: round(s), events_per_s: Math.round(EVENTS / s) });

    // One caller awaiting each append alone: the worst case, one commit (fsync) per event.
    t = performance.now();
    for (let i = 0; i < SERIAL; i++) await log.append({ ...event(i), stream: 'admin' });
    s = (performance.now() - t) / 1000;
    emit({ bench: 'audit', op: 'append_serial', events: SERIAL, in_flight: 1, seconds: round(s), events_per_s: Math.round(SERIAL / s) });
    await log.close();

    t = performance.now();
    const v = verifyStream(db, 'authz', keys);
    s = (performance.now() - t) / 1000;
    if (!v.ok) throw new Error(`bench chain did not verify: ${v.reason}`);
    emit({ bench: 'audit', op: 'verify', events: v.events, checkpoints: v.checkpoints, seconds: round(s), events_per_s: Math.round(v.events / s) });

    db.close();
    t = performance.now();
    const off = verifyDataDir(dir, keys);
    s = (performance.now() - t) / 1000;
    const n = off.streams.reduce((a, x) => a + x.events, 0);
    if (!off.ok) throw new Error('bench store did not verify offline');
    emit({ bench: 'audit', op: 'verify_offline', events: n, seconds: round(s), events_per_s: Math.round(n / s) });
  } finally {
    if (db.isOpen) db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const round = (x: number): number => Math.round(x * 1000) / 1000;

if (import.meta.main) await run((l) => console.log(JSON.stringify(l)));
