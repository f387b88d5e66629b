// Credential issuance on the product path (request-time decision, lease recorded, admin audit
// event) next to raw signing with the same key type, with lease writes one transaction each
// ("before" issue #9) and committed in groups ("after"); PostgreSQL role issue/revoke latency and
// the time from a revoke call to the live session ending, against a real PostgreSQL.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPairSync, sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { SignJWT } from 'jose';
import { stringify } from 'yaml';
import pg from 'pg';
import { parseConfig } from '../src/config/load.ts';
import { Broker } from '../src/broker/index.ts';
import type { SessionContext } from '../src/broker/index.ts';
import { startPostgres } from '../test/credentials/helpers.ts';
import { percentile } from './fixture.ts';

type Emit = (line: Record<string, unknown>) => void;
const N = 2000;
const CONCURRENCY = Number(process.env.PCX_BENCH_CONCURRENCY ?? 32);
/** Issuance is measured in rounds, raw signing and both lease-write modes back to back in each. */
const ROUNDS = 6;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/**
 * Runs `n` operations, `concurrency` in flight. Also the CPU time per operation: of this thread
 * (the event loop) and of the whole process (worker threads and the thread pool too).
 */
async function timed(n: number, concurrency: number, op: (i: number) => Promise<unknown>): Promise<{ ops: number; lat: number[]; loopCpuUs: number; cpuUs: number }> {
  const lat: number[] = [];
  let next = 0;
  const started = performance.now();
  const thread0 = process.threadCpuUsage();
  const process0 = process.cpuUsage();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) {
      const i = next++;
      const t = performance.now();
      await op(i);
      lat.push(performance.now() - t);
    }
  }));
  const ops = n / ((performance.now() - started) / 1000);
  const thread = process.threadCpuUsage(thread0);
  const all = process.cpuUsage(process0);
  lat.sort((a, b) => a - b);
  return { ops, lat, loopCpuUs: (thread.user + thread.system) / n, cpuUs: (all.user + all.system) / n };
}

/** Warms the JIT and the caches so neither side of a ratio pays for it. */
async function warm(op: (i: number) => Promise<unknown>): Promise<void> {
  await timed(200, CONCURRENCY, op);
}

export async function run(emit: Emit): Promise<void> {
  const db = await startPostgres();
  const dir = mkdtempSync(join(tmpdir(), 'pcx-bench-creds-'));
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const jwk = { ...(publicKey as KeyObject).export({ format: 'jwk' }), kid: 'bench', alg: 'EdDSA', use: 'sig' };
  writeFileSync(join(dir, 'p.cedar'), `permit (principal == Workload::"workload:github/acme/api", action == Action::"credential.issue", resource)
when { context.purpose has reason && context.credential.ttlSeconds <= 3600 };`);
  const yaml = (dataDir: string) => stringify({
    listen: { host: '127.0.0.1', port: 7999 },
    data_dir: dataDir,
    trusts: [{ name: 'ci', kind: 'oidc', issuer: 'https://ci.bench', jwks: { keys: [jwk] }, audiences: ['portcullis'], algorithms: ['EdDSA'], identity: 'workload:github/{repository}', boundary: 'application', environment: 'prod' }],
    identities: [{ id: 'workload:github/acme/api', kind: 'workload', owner: 'team:payments', boundary: 'application', environment: 'prod' }],
    resources: [
      { type: 'Api', id: 'orders-api', boundary: 'application', environment: 'prod' },
      { type: 'Host', id: 'web-1', boundary: 'application', environment: 'prod' },
      { type: 'Database', id: 'orders-db', boundary: 'application', environment: 'prod' },
    ],
    targets: [
      { name: 'orders-api', kind: 'api', audience: 'https://orders.bench', scopes: ['orders:read'], max_ttl: '30m' },
      { name: 'web-1', kind: 'ssh', hosts: ['127.0.0.1'], principals: { 'workload:github/acme/api': ['deploy'] }, max_ttl: '1h' },
      { name: 'orders-db', kind: 'postgres', host: '127.0.0.1', port: db.port, database: 'orders', admin: { user: db.user, password_env: 'BENCH_PG_PASSWORD' }, permissions: { readonly: 'readonly' }, max_ttl: '1h', connection_limit: 2 },
    ],
    policies: './p.cedar',
  });
  const env = { PORTCULLIS_MASTER_KEY: Buffer.alloc(32, 3).toString('base64'), BENCH_PG_PASSWORD: db.password };
  const rawKey = generateKeyPairSync('ed25519').privateKey;
  const rawJwt = () => new SignJWT({ sub: 'x', scope: 'orders:read', aud: 'https://orders.bench' }).setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt' }).setIssuedAt().setExpirationTime('10m').sign(rawKey);
  const blob = Buffer.alloc(300, 7);
  const rawSsh = async () => sign(null, blob, rawKey);
  const userKey = (generateKeyPairSync('ed25519').publicKey as KeyObject).export({ format: 'jwk' }).x!;
  const line = `ssh-ed25519 ${Buffer.concat([lenPrefixed(Buffer.from('ssh-ed25519')), lenPrefixed(Buffer.from(userKey, 'base64url'))]).toString('base64')} bench`;
  const proof = await new SignJWT({ repository: 'acme/api' }).setProtectedHeader({ alg: 'EdDSA', kid: 'bench' }).setIssuer('https://ci.bench').setAudience('portcullis').setIssuedAt().setExpirationTime('10m').sign(privateKey);
  const open = async (dataDir: string, leaseWrites: 'per-write' | 'inline' | 'worker') => {
    const broker = await Broker.open(parseConfig(yaml(dataDir), dir, env).config, { env, leaseWrites });
    const login = await broker.login({ type: 'jwt', token: proof }, '127.0.0.1');
    const s: SessionContext = await broker.sessionFromToken(login.session_token, '127.0.0.1');
    return { broker, s };
  };

  // Issuance next to raw signing with a key of the same type. "before": each lease change is its
  // own transaction on the event loop (as before issue #9); "after": lease writes committed in
  // groups on the store's connection (the default); "after-worker": in groups by a worker thread
  // with its own connection (the alternative, for comparison). One broker per mode, all open;
  // every round measures raw signing and then each mode back to back, and a mode's fraction of raw
  // is the median of its rounds' ratios — the machine's load drifts, one round's figures share it.
  const kinds = [
    { kind: 'access-token', raw: rawJwt, issue: (b: Broker, s: SessionContext) => b.issueCredential(s, { target: 'orders-api', ttl: '10m', reason: 'bench', scopes: ['orders:read'] }, '127.0.0.1') },
    { kind: 'ssh-certificate', raw: rawSsh, issue: (b: Broker, s: SessionContext) => b.issueCredential(s, { target: 'web-1', ttl: '10m', reason: 'bench', public_key: line }, '127.0.0.1') },
  ];
  const modes = [
    { mode: 'before', lease_writes: 'per-write', ...(await open('./data-before', 'per-write')) },
    { mode: 'after', lease_writes: 'group-commit-inline', ...(await open('./data-after', 'inline')) },
    { mode: 'after-worker', lease_writes: 'group-commit-worker', ...(await open('./data-after-worker', 'worker')) },
  ];
  try {
    for (const k of kinds) {
      await warm(k.raw);
      for (const m of modes) await warm(() => k.issue(m.broker, m.s));
      const raw: number[] = [];
      const rawCpu: number[] = [];
      const per = modes.map(() => ({ ops: [] as number[], ratio: [] as number[], lat: [] as number[], loopCpu: [] as number[], cpu: [] as number[] }));
      for (let r = 0; r < ROUNDS; r++) {
        const base = await timed(N / ROUNDS, CONCURRENCY, k.raw);
        raw.push(base.ops);
        rawCpu.push(base.cpuUs);
        for (const [i, m] of modes.entries()) {
          const issued = await timed(N / ROUNDS, CONCURRENCY, () => k.issue(m.broker, m.s));
          per[i]!.ops.push(issued.ops);
          per[i]!.ratio.push(issued.ops / base.ops);
          per[i]!.lat.push(...issued.lat);
          per[i]!.loopCpu.push(issued.loopCpuUs);
          per[i]!.cpu.push(issued.cpuUs);
        }
      }
      for (const [i, m] of modes.entries()) {
        const p = per[i]!;
        p.lat.sort((a, b) => a - b);
        emit({
          bench: 'credentials', kind: k.kind, mode: m.mode, lease_writes: m.lease_writes, rounds: ROUNDS,
          raw_sign_per_s: Math.round(median(raw)), issued_per_s: Math.round(median(p.ops)), fraction_of_raw: +median(p.ratio).toFixed(2),
          issue_p50_ms: +percentile(p.lat, 50).toFixed(2), issue_p99_ms: +percentile(p.lat, 99).toFixed(2),
          // CPU per operation (medians of the rounds): the event loop's, and all threads' (workers, thread pool).
          loop_cpu_us_per_issue: Math.round(median(p.loopCpu)), cpu_us_per_issue: Math.round(median(p.cpu)), cpu_us_per_raw_sign: Math.round(median(rawCpu)),
        });
      }
      emit({ bench: 'credentials', kind: k.kind, fraction_of_raw_before: +median(per[0]!.ratio).toFixed(2), fraction_of_raw_after: +median(per[1]!.ratio).toFixed(2), target: 0.5 });
    }
    // PostgreSQL figures on the "after" broker; the others are closed (the finally closes the rest).
    const after = modes.find((m) => m.mode === 'after')!;
    for (const m of modes.splice(0)) if (m !== after) await m.broker.close();
    modes.push(after);
    const { broker, s } = after;

    // PostgreSQL: issue and revoke latency, and revoke → live session ended.
    const issueLat: number[] = [];
    const revokeLat: number[] = [];
    const endLat: number[] = [];
    for (let i = 0; i < 40; i++) {
      let t = performance.now();
      const r = await broker.issueCredential(s, { target: 'orders-db', permission: 'readonly', ttl: '10m', reason: 'bench' }, '127.0.0.1');
      issueLat.push(performance.now() - t);
      const c = r.credential as { user: string; password: string };
      const client = new pg.Client({ host: '127.0.0.1', port: db.port, database: 'orders', user: c.user, password: c.password });
      client.on('error', () => {});
      await client.connect();
      await client.query('SELECT 1');
      const ended = new Promise<number>((resolve) => client.once('end', () => resolve(performance.now())));
      t = performance.now();
      await broker.admin.leases.revoke({ ...s, sourceIp: '127.0.0.1' }, { lease: r.lease.id }, 'bench');
      revokeLat.push(performance.now() - t);
      endLat.push((await ended) - t);
    }
    for (const a of [issueLat, revokeLat, endLat]) a.sort((x, y) => x - y);
    emit({
      bench: 'credentials', kind: 'postgres-role', samples: issueLat.length,
      issue_p50_ms: +percentile(issueLat, 50).toFixed(1), issue_p99_ms: +percentile(issueLat, 99).toFixed(1),
      revoke_p50_ms: +percentile(revokeLat, 50).toFixed(1), revoke_p99_ms: +percentile(revokeLat, 99).toFixed(1),
      revoke_to_session_end_p50_ms: +percentile(endLat, 50).toFixed(1), revoke_to_session_end_p99_ms: +percentile(endLat, 99).toFixed(1),
    });
  } finally {
    for (const m of modes) await m.broker.close();
    await db.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

function lenPrefixed(b: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
}
