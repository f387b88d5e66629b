// Three `portcullis server` replicas over one PostgreSQL store (embedded, fsync and synchronous
// commits on): how soon a revocation or a suspension answered by one replica is refused by the
// others (fan-out), and decisions/s with the load spread over 1, 2 and 3 replicas.
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { SignJWT } from 'jose';
import pg from 'pg';
import { freePort } from '../test/credentials/helpers.ts';
import { startCluster } from '../test/store/pg.ts';
import { percentile } from './fixture.ts';

type Emit = (line: Record<string, unknown>) => void;

// PCX_BENCH_QUICK=1: tiny sizes, to check the suite runs to the end.
const QUICK = process.env.PCX_BENCH_QUICK === '1';
const ROUNDS = QUICK ? 5 : 100;
const DURATION_S = QUICK ? 2 : 8;
const WARMUP_S = QUICK ? 1 : 3;
/** Connections in all, split evenly over the replicas under load. */
const CONNECTIONS = 30;
/** How long a poller may wait for a refusal before the round counts as missed. */
const MISS_MS = 5000;
const MAIN = join(import.meta.dirname, '..', 'src', 'cli', 'main.ts');
const BODY = JSON.stringify({ action: 'db.select', resource: { type: 'Database', id: 'orders' } });
const NOTE = 'the replicas, PostgreSQL and the load generator share the machine (2 cores here): no target, compare the columns of one run';

interface Replica {
  name: string;
  url: string;
  child: ChildProcess;
  stderr: string;
}

const ms = (x: number) => +x.toFixed(2);
const sleep = (t: number) => new Promise((r) => setTimeout(r, t));

function summary(values: number[]): { samples: number; p50_ms: number; p99_ms: number; max_ms: number } {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return { samples: 0, p50_ms: NaN, p99_ms: NaN, max_ms: NaN };
  return { samples: s.length, p50_ms: ms(percentile(s, 50)), p99_ms: ms(percentile(s, 99)), max_ms: ms(s.at(-1)!) };
}

async function call(url: string, method: string, body?: unknown, token?: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(url, { method, headers, ...(body !== undefined && { body: JSON.stringify(body) }) });
  const text = await res.text();
  try {
    return { status: res.status, body: JSON.parse(text) as Record<string, unknown> };
  } catch {
    return { status: res.status, body: { text } };
  }
}

/** A witness receiver on loopback (a PostgreSQL store requires audit.witness.url): counts checkpoints. */
function witness(): Promise<{ url: string; received: () => number; server: Server }> {
  let received = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      received++;
      res.writeHead(204).end();
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ url: `http://127.0.0.1:${(server.address() as { port: number }).port}/witness`, received: () => received, server })));
}

async function startReplica(name: string, config: string, env: NodeJS.ProcessEnv): Promise<Replica> {
  const port = await freePort();
  const child = spawn(process.execPath, [MAIN, 'server', '--config', config, '--port', String(port)], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  const r: Replica = { name, url: `http://127.0.0.1:${port}`, child, stderr: '' };
  child.stderr!.on('data', (d: Buffer) => {
    if (r.stderr.length < 65_536) r.stderr += d.toString();
  });
  const t0 = performance.now();
  for (;;) {
    if (child.exitCode !== null) throw new Error(`replica ${name} exited (${child.exitCode}): ${r.stderr.slice(-2000)}`);
    try {
      if ((await fetch(`${r.url}/readyz`)).status === 200) return r;
    } catch {
      /* not listening yet */
    }
    if (performance.now() - t0 > 90_000) throw new Error(`replica ${name} not ready in 90 s: ${r.stderr.slice(-2000)}`);
    await sleep(50);
  }
}

async function stopReplicas(replicas: Replica[]): Promise<void> {
  await Promise.all(
    replicas.map(async (r) => {
      if (r.child.exitCode !== null || r.child.signalCode !== null) return;
      const exited = new Promise((res) => r.child.once('exit', res));
      r.child.kill('SIGTERM');
      const timer = setTimeout(() => r.child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    }),
  );
}

/**
 * Fan-out: each round logs in (on A, B, C in turn), starts a poller on A and one on B calling
 * `POST /v1/authorize` back to back with that session until each has been allowed, then revokes
 * the session on C (or suspends its identity there, as the admin). A sample is the time from C's
 * answer to the first 401 on A (on B); 0 when the poller saw the 401 before C answered.
 */
async function fanOut(emit: Emit, kind: 'revoke' | 'suspend', replicas: Replica[], login: (r: Replica, repo: string) => Promise<string>, admin: string): Promise<void> {
  const [a, b, c] = replicas as [Replica, Replica, Replica];
  const samples: number[][] = [[], []];
  let before = 0;
  let missed = 0;
  let unexpected = 0;
  for (let i = 0; i < ROUNDS; i++) {
    const repo = kind === 'revoke' ? 'acme/fan' : `acme/suspend-${i}`;
    const token = await login(replicas[i % 3]!, repo);
    let stop = false;
    const allowed = [false, false];
    const refusedAt: (number | undefined)[] = [undefined, undefined];
    const poll = async (r: Replica, k: number) => {
      while (!stop && refusedAt[k] === undefined) {
        const res = await fetch(`${r.url}/v1/authorize`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: BODY });
        await res.arrayBuffer();
        const t = performance.now();
        if (res.status === 401) refusedAt[k] = t;
        else if (res.status === 200) allowed[k] = true;
        else unexpected++;
      }
    };
    const pollers = Promise.all([poll(a, 0), poll(b, 1)]);
    const t0 = performance.now();
    while (!(allowed[0] && allowed[1])) {
      if (refusedAt[0] !== undefined || refusedAt[1] !== undefined || performance.now() - t0 > MISS_MS) {
        stop = true;
        await pollers;
        throw new Error(`round ${i}: the session was not allowed on A and B before the ${kind}`);
      }
      await sleep(1);
    }
    const res =
      kind === 'revoke'
        ? await fetch(`${c.url}/v1/sessions/revoke`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ jti: jtiOf(token) }) })
        : await fetch(`${c.url}/v1/identities/${encodeURIComponent(`workload:github/${repo}`)}/suspend`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${admin}` }, body: JSON.stringify({ reason: 'bench' }) });
    const answered = performance.now();
    const text = await res.text();
    if (res.status !== 200) {
      stop = true;
      await pollers;
      throw new Error(`round ${i}: ${kind} on C answered ${res.status}: ${text}`);
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([pollers, new Promise((r) => (timer = setTimeout(r, MISS_MS)))]);
    clearTimeout(timer);
    stop = true;
    await pollers;
    for (const k of [0, 1]) {
      const t = refusedAt[k];
      if (t === undefined) missed++;
      else {
        if (t < answered) before++;
        samples[k]!.push(Math.max(0, t - answered));
      }
    }
  }
  const all = summary([...samples[0]!, ...samples[1]!]);
  emit({
    bench: 'cluster',
    op: kind === 'revoke' ? 'fanout_revoke' : 'fanout_suspend',
    what: kind === 'revoke' ? "session revoked on C (POST /v1/sessions/revoke) → first 401 on A and on B, from C's answer" : "identity suspended on C (admin) → its session's first 401 on A and on B, from C's answer",
    replicas: 3,
    rounds: ROUNDS,
    ...all,
    target_p99_ms: 100,
    met: missed === 0 && all.p99_ms <= 100,
    on_A: summary(samples[0]!),
    on_B: summary(samples[1]!),
    refused_before_answer: before,
    missed,
    unexpected_statuses: unexpected,
  });
}

function jtiOf(token: string): string {
  return (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { jti: string }).jti;
}

interface Load {
  requests: number;
  seconds: number;
  non2xx: number;
  socket_errors: number;
  /** Latency samples: [milliseconds, weight]. */
  samples: [number, number][];
}

function hasWrk(): boolean {
  return spawnSync('wrk', ['--version']).error === undefined;
}

/**
 * wrk's done() prints the run's counts and 1,000 evenly spaced quantiles of its latency (µs) on one
 * line: each stands for a thousandth of that process's requests when the processes are merged.
 */
const WRK_SCRIPT = (token: string) => `wrk.method = "POST"
wrk.body = [==[${BODY}]==]
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = "Bearer ${token}"
done = function(summary, latency, requests)
  local e = summary.errors
  local q = {}
  for k = 0, 999 do q[#q + 1] = latency:percentile((k + 0.5) / 10) end
  io.write(string.format("PCX %d %d %d %d ", summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout) .. table.concat(q, ",") .. "\\n")
end
`;

/** One wrk process per replica (one thread each), the connections split evenly; quantiles merged. */
async function wrkLoad(urls: string[], script: string, seconds: number): Promise<Load> {
  const runs = await Promise.all(
    urls.map(
      (url, i) =>
        new Promise<string>((resolve, reject) => {
          const conns = Math.floor(CONNECTIONS / urls.length) + (i < CONNECTIONS % urls.length ? 1 : 0);
          const child = spawn('wrk', ['-t1', `-c${conns}`, `-d${seconds}s`, '-s', script, `${url}/v1/authorize`], { stdio: ['ignore', 'pipe', 'pipe'] });
          let out = '';
          let err = '';
          child.stdout.on('data', (d: Buffer) => (out += d.toString()));
          child.stderr.on('data', (d: Buffer) => (err += d.toString()));
          child.once('error', reject);
          child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`wrk exited ${code}: ${err}${out}`))));
        }),
    ),
  );
  const load: Load = { requests: 0, seconds: 0, non2xx: 0, socket_errors: 0, samples: [] };
  for (const out of runs) {
    const line = out.split('\n').find((l) => l.startsWith('PCX '));
    if (!line) throw new Error(`no summary from wrk: ${out}`);
    const [, requests, durationUs, non2xx, socketErrors, quantiles] = line.split(' ');
    load.requests += Number(requests);
    load.seconds = Math.max(load.seconds, Number(durationUs) / 1e6);
    load.non2xx += Number(non2xx);
    load.socket_errors += Number(socketErrors);
    for (const us of (quantiles ?? '').split(',').filter(Boolean)) load.samples.push([Number(us) / 1000, Number(requests) / 1000]);
  }
  return load;
}

const LOADGEN = `
const { parentPort, workerData } = require('node:worker_threads');
const { urls, token, body, durationMs, connections } = workerData;
const lat = []; let ok = 0, failed = 0;
const started = performance.now(); const end = Date.now() + durationMs;
async function loop(i) {
  const url = urls[i % urls.length] + '/v1/authorize';
  while (Date.now() < end) {
    const t = performance.now();
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer ' + token }, body });
    await res.arrayBuffer();
    lat.push(performance.now() - t);
    if (res.status === 200) ok++; else failed++;
  }
}
Promise.all(Array.from({ length: connections }, (_, i) => loop(i))).then(() => parentPort.postMessage({ lat, ok, failed, seconds: (performance.now() - started) / 1000 }));
`;

/** Without wrk: keep-alive fetch from a worker thread, connection i on replica i mod n. */
async function fetchLoad(urls: string[], token: string, seconds: number): Promise<Load> {
  const r = await new Promise<{ lat: number[]; ok: number; failed: number; seconds: number }>((resolve, reject) => {
    const w = new Worker(LOADGEN, { eval: true, workerData: { urls, token, body: BODY, durationMs: seconds * 1000, connections: CONNECTIONS } });
    w.once('message', resolve);
    w.once('error', reject);
  });
  return { requests: r.ok + r.failed, seconds: r.seconds, non2xx: r.failed, socket_errors: 0, samples: r.lat.map((l): [number, number] => [l, 1]) };
}

/** The p-th percentile of weighted samples. */
function weightedPercentile(samples: [number, number][], p: number): number {
  const sorted = [...samples].sort((a, b) => a[0] - b[0]);
  const total = sorted.reduce((s, [, w]) => s + w, 0);
  let seen = 0;
  for (const [v, w] of sorted) {
    seen += w;
    if (seen > (p / 100) * total) return v;
  }
  return sorted.at(-1)?.[0] ?? NaN;
}

/** CPU milliseconds a process has used (Linux /proc; 0 when unreadable), and its parent's pid. */
function procStat(pid: number): { cpuMs: number; ppid: number } {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
    // After "pid (comm) ": state ppid … utime (14th field of the line) stime (15th), in 1/100 s.
    return { cpuMs: (Number(fields[11]) + Number(fields[12])) * 10, ppid: Number(fields[1]) };
  } catch {
    return { cpuMs: 0, ppid: 0 };
  }
}

/** CPU milliseconds used by the postmaster and its children (the backends) so far. */
function postgresCpuMs(postmaster: number): number {
  let total = procStat(postmaster).cpuMs;
  for (const d of readdirSync('/proc')) if (/^\d+$/.test(d) && procStat(Number(d)).ppid === postmaster) total += procStat(Number(d)).cpuMs;
  return total;
}

/** Busy and total CPU milliseconds of the whole machine so far (every core). */
function machineCpu(): { busy: number; total: number } {
  let busy = 0;
  let total = 0;
  for (const c of cpus()) {
    const t = c.times.user + c.times.nice + c.times.sys + c.times.irq + c.times.idle;
    total += t;
    busy += t - c.times.idle;
  }
  return { busy, total };
}

export async function run(emit: Emit): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'pcx-bench-cluster-'));
  const cluster = await startCluster({ durable: true });
  const receiver = await witness();
  const admin = new pg.Client({ connectionString: cluster.adminUrl });
  const replicas: Replica[] = [];
  let storeDb: pg.Client | undefined;
  try {
    await admin.connect();
    const settings = await admin.query<{ name: string; setting: string }>("SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'server_version')");
    const server = Object.fromEntries(settings.rows.map((r) => [r.name, r.setting]));
    const postmaster = procStat(Number((await admin.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid)).ppid;
    await admin.query('CREATE DATABASE bench_cluster TEMPLATE pcx_template OWNER portcullis_store');
    const adminUrl = new URL(cluster.adminUrl);
    adminUrl.pathname = '/bench_cluster';
    storeDb = new pg.Client({ connectionString: adminUrl.href });
    await storeDb.connect();

    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const jwk = { ...(publicKey as KeyObject).export({ format: 'jwk' }), kid: 'ci', alg: 'EdDSA', use: 'sig' };
    writeFileSync(join(dir, 'p.cedar'), 'permit (principal is Workload, action == Action::"db.select", resource == Database::"orders");\n');
    const config = join(dir, 'portcullis.yaml');
    writeFileSync(
      config,
      `listen: { host: 127.0.0.1, port: 7070 }
public_url: http://portcullis.bench.test
data_dir: ./data
store: { kind: postgres, url_env: PCX_STORE_URL }
trusts:
  - { name: ci, kind: oidc, issuer: "https://ci.bench", jwks: { keys: [${JSON.stringify(jwk)}] }, audiences: [portcullis], algorithms: [EdDSA], identity: "workload:github/{repository}", boundary: application, environment: prod, owner: team:platform }
resources:
  - { type: Database, id: orders, boundary: application, environment: prod }
policies: ./p.cedar
audit: { fail_closed: true, witness: { url: "${receiver.url}" } }
limits: { login: { per_address: { requests: 100000, window: 60 }, per_key: { requests: 100000, window: 60 } } }
outbound: { allow_private: [127.0.0.0/8] }   # the witness receiver is this process, on loopback
`,
    );
    const env = { ...process.env, PORTCULLIS_MASTER_KEY: Buffer.alloc(32, 7).toString('base64'), PCX_STORE_URL: `${cluster.storeBase}/bench_cluster` };
    // One first (it runs the first keys and prints the bootstrap credential), then the others.
    replicas.push(await startReplica('A', config, env));
    replicas.push(...(await Promise.all([startReplica('B', config, env), startReplica('C', config, env)])));
    const secret = replicas.map((r) => /pcx_bootstrap_[A-Za-z0-9_-]+/.exec(r.stderr)?.[0]).find(Boolean);
    if (!secret) throw new Error('no replica printed the bootstrap credential');
    const boot = await call(`${replicas[0]!.url}/v1/auth/token`, 'POST', { bootstrap: secret });
    if (boot.status !== 200) throw new Error(`bootstrap login: ${boot.status} ${JSON.stringify(boot.body)}`);
    const adminToken = boot.body.session_token as string;
    const login = async (r: Replica, repository: string): Promise<string> => {
      const proof = await new SignJWT({ repository }).setProtectedHeader({ alg: 'EdDSA', kid: 'ci' }).setIssuer('https://ci.bench').setAudience('portcullis').setIssuedAt().setExpirationTime('5m').sign(privateKey);
      const res = await call(`${r.url}/v1/auth/token`, 'POST', { token: proof });
      if (res.status !== 200) throw new Error(`login on ${r.name}: ${res.status} ${JSON.stringify(res.body)}`);
      return res.body.session_token as string;
    };

    await fanOut(emit, 'revoke', replicas, login, adminToken);
    await fanOut(emit, 'suspend', replicas, login, adminToken);

    // Decisions/s over 1, 2, 3 replicas: one session, one policy, durable audit (fail closed).
    const token = await login(replicas[0]!, 'acme/load');
    const wrk = hasWrk();
    const script = join(dir, 'authorize.lua');
    writeFileSync(script, WRK_SCRIPT(token));
    const load = (urls: string[], seconds: number) => (wrk ? wrkLoad(urls, script, seconds) : fetchLoad(urls, token, seconds));
    const authzHead = async () => Number((await storeDb!.query<{ seq: string }>("SELECT seq FROM audit_heads WHERE stream = 'authz'")).rows[0]?.seq ?? 0);
    await load(replicas.map((r) => r.url), WARMUP_S);
    const rows: Record<string, unknown>[] = [];
    for (const n of [1, 2, 3]) {
      const head = await authzHead();
      const cpu0 = { machine: machineCpu(), replicas: replicas.map((r) => procStat(r.child.pid!).cpuMs), pg: postgresCpuMs(postmaster) };
      const l = await load(replicas.slice(0, n).map((r) => r.url), DURATION_S);
      const cpu1 = { machine: machineCpu(), replicas: replicas.map((r) => procStat(r.child.pid!).cpuMs), pg: postgresCpuMs(postmaster) };
      await sleep(200); // appends answered are committed; let the count settle
      const recorded = (await authzHead()) - head;
      // Each row's xmin is the transaction that appended it: rows per commit = the group commits' size.
      const commits = Number((await storeDb.query<{ n: string }>("SELECT count(DISTINCT xmin::text) AS n FROM audit_events WHERE stream = 'authz' AND seq > $1 AND seq <= $2", [head, head + recorded])).rows[0]!.n);
      const done = l.requests - l.non2xx;
      const perDecision = (cpuMs: number) => Math.round((cpuMs * 1000) / Math.max(1, done));
      const row = {
        replicas: n,
        decisions_per_s: Math.round(done / l.seconds),
        p50_ms: ms(weightedPercentile(l.samples, 50)),
        p99_ms: ms(weightedPercentile(l.samples, 99)),
        requests: l.requests,
        errors: l.non2xx + l.socket_errors,
        authz_events_recorded: recorded,
        authz_rows_per_commit: +(recorded / Math.max(1, commits)).toFixed(1),
        // Where the CPU went: the whole machine (other work on it included), the three replicas
        // (idle ones included), PostgreSQL (postmaster and backends).
        machine_cpu_busy: +((cpu1.machine.busy - cpu0.machine.busy) / (cpu1.machine.total - cpu0.machine.total)).toFixed(2),
        replicas_cpu_us_per_decision: perDecision(cpu1.replicas.reduce((a, x, i) => a + x - cpu0.replicas[i]!, 0)),
        pg_cpu_us_per_decision: perDecision(cpu1.pg - cpu0.pg),
      };
      rows.push(row);
      emit({
        bench: 'cluster',
        op: 'decisions',
        ...row,
        connections: CONNECTIONS,
        seconds: +l.seconds.toFixed(2),
        load: wrk ? `wrk -t1 per replica (${CONNECTIONS} connections split evenly)` : `fetch from a worker thread (${CONNECTIONS} keep-alive connections round-robin over the replicas)`,
        audit: 'durable (fail closed), PostgreSQL synchronous_commit',
        note: NOTE,
      });
    }
    emit({
      bench: 'cluster',
      op: 'decisions_side_by_side',
      decisions_per_s: rows.map((r) => r.decisions_per_s),
      p50_ms: rows.map((r) => r.p50_ms),
      p99_ms: rows.map((r) => r.p99_ms),
      machine_cpu_busy: rows.map((r) => r.machine_cpu_busy),
      replicas: [1, 2, 3],
      pg: { server_version: server.server_version, fsync: server.fsync, synchronous_commit: server.synchronous_commit },
      checkpoints_witnessed: receiver.received(),
      note: NOTE,
    });
  } finally {
    await stopReplicas(replicas);
    await storeDb?.end().catch(() => {});
    await admin.end().catch(() => {});
    receiver.server.close();
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.main) await run((l) => console.log(JSON.stringify(l)));
