// HTTP decision throughput with durable audit: a real server on loopback, a load generator in a
// worker thread (the other core), keep-alive connections, bounded in count and time.
import { Worker } from 'node:worker_threads';
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPairSync } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { SignJWT } from 'jose';
import { stringify } from 'yaml';
import { parseConfig } from '../src/config/load.ts';
import { serve } from '../src/cli/serve.ts';
import { brokerInternals } from '../src/broker/internals.ts';
import { databases, percentile, policyFiles, requestMix } from './fixture.ts';

type Emit = (line: Record<string, unknown>) => void;
const DURATION_MS = 6000;
const WARMUP_MS = 2000;
/** The AuthZEN case: rounds of each API in turn. */
const ROUNDS = 4;
const ROUND_MS = 2000;
const CONCURRENCY = 32;

const LOADGEN = `
const { parentPort, workerData } = require('node:worker_threads');
const { url, token, bodies, durationMs, concurrency } = workerData;
const lat = []; let ok = 0, failed = 0, allow = 0, i = 0;
const end = Date.now() + durationMs;
async function loop() {
  while (Date.now() < end) {
    const body = bodies[i++ % bodies.length];
    const t = performance.now();
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer ' + token }, body });
    const d = await res.json();
    lat.push(performance.now() - t);
    if (res.status === 200) { ok++; if (d.decision === 'allow') allow++; } else failed++;
  }
}
Promise.all(Array.from({ length: concurrency }, loop)).then(() => parentPort.postMessage({ lat, ok, failed, allow }));
`;

/** The AuthZEN application (PEP) of the bench: asks about the bench workload with the same bodies. */
const PEP = 'workload:github/acme/pep';
const SUBJECT = 'workload:github/acme/svc-1';

async function one(emit: Emit, engine: 'wasm' | 'compiled', policies: number, authzen: boolean): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'pcx-bench-http-'));
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const jwk = { ...(publicKey as KeyObject).export({ format: 'jwk' }), kid: 'bench', alg: 'EdDSA', use: 'sig' };
  // The AuthZEN app may ask the decision point; nothing else changes for /v1/authorize.
  writeFileSync(join(dir, 'bench.cedar'), `${policyFiles(policies)[0]!.text}\n@id("pep-asks") permit (principal == Workload::"${PEP}", action == Action::"pdp.query", resource == ControlPlane::"pdp");\n`);
  const yaml = stringify({
    listen: { host: '127.0.0.1', port: 0 },
    data_dir: './data',
    engine,
    trusts: [{ name: 'ci', kind: 'oidc', issuer: 'https://ci.bench', jwks: { keys: [jwk] }, audiences: ['portcullis'], algorithms: ['EdDSA'], identity: 'workload:github/{repository}', boundary: 'application', environment: 'prod' }],
    identities: [
      { id: SUBJECT, kind: 'workload', owner: 'team:x', boundary: 'application', environment: 'prod', parents: ['Team::"team-1"'] },
      { id: PEP, kind: 'workload', owner: 'team:x', boundary: 'application', environment: 'prod' },
    ],
    resources: databases(),
    policies: './bench.cedar',
    authzen: { rate_limit: { requests: 100_000_000, window: '1m' } },
  });
  const running = await serve(parseConfig(yaml, dir), { quiet: true, env: { PORTCULLIS_MASTER_KEY: Buffer.alloc(32, 1).toString('base64') } });
  try {
    const login = async (repository: string) => {
      const proof = await new SignJWT({ repository }).setProtectedHeader({ alg: 'EdDSA', kid: 'bench' }).setIssuer('https://ci.bench').setAudience('portcullis').setIssuedAt().setExpirationTime('5m').sign(privateKey);
      const r = await fetch(`${running.url}/v1/auth/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: proof }) });
      return ((await r.json()) as { session_token: string }).session_token;
    };
    const session_token = await login('acme/svc-1');
    const mix = requestMix(1000);
    const bodies = mix.map((r) => JSON.stringify({ action: r.action, resource: { type: 'Database', id: `db-${r.db}` }, context: { purpose: r.purpose } }));
    const load = (path: string, token: string, b: string[], ms = DURATION_MS) => (hasWrk() ? wrk(running.url, path, token, b, dir, ms) : fetchLoad(running.url, path, token, b, ms));
    const { audit } = brokerInternals(running.broker);
    const pep = authzen ? await login('acme/pep') : '';
    const evaluations = mix.map((r) => JSON.stringify({ subject: { type: 'workload', id: SUBJECT.slice('workload:'.length) }, action: { name: r.action }, resource: { type: 'Database', id: `db-${r.db}` }, context: { purpose: r.purpose } }));
    if (authzen) {
      // Warm both paths up (JIT, caches) before anything is measured: the first run of a fresh server is slower.
      await load('/v1/authorize', session_token, bodies, WARMUP_MS);
      await load('/access/v1/evaluation', pep, evaluations, WARMUP_MS);
      await audit.flush();
    }
    const line = await load('/v1/authorize', session_token, bodies);
    await audit.flush();
    emit({ bench: 'http', engine, policies, concurrency: CONCURRENCY, audit: 'durable (fail closed)', ...line, authz_events_recorded: (await audit.head('authz')).seq });
    if (!authzen) return;
    // AuthZEN: the same decisions (same subject, actions, resources, purposes) asked by an app
    // about the workload; each also decides the app's pdp.query and records one event with both.
    // Interleaved rounds on the same server: on a machine shared with other work the load changes
    // from second to second, and both APIs see the same changes.
    const rounds: { authorize: Record<string, unknown>; authzen: Record<string, unknown> }[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const a = await load('/v1/authorize', session_token, bodies, ROUND_MS);
      const z = await load('/access/v1/evaluation', pep, evaluations, ROUND_MS);
      rounds.push({ authorize: a, authzen: z });
    }
    await audit.flush();
    const sum = (k: 'authorize' | 'authzen', f: string) => rounds.reduce((n, r) => n + (r[k][f] as number), 0);
    const perS = (k: 'authorize' | 'authzen') => Math.round(sum(k, 'decisions_per_s') / ROUNDS);
    const cpu = (k: 'authorize' | 'authzen') => Math.round(sum(k, 'server_cpu_us_per_request') / ROUNDS);
    emit({
      bench: 'http', api: 'authzen', engine, policies, concurrency: CONCURRENCY, rounds: `${ROUNDS} × (${ROUND_MS / 1000} s /v1/authorize, ${ROUND_MS / 1000} s /access/v1/evaluation)`,
      evaluations_per_s: perS('authzen'), authorize_per_s: perS('authorize'),
      ratio_to_authorize: +(sum('authzen', 'decisions_per_s') / sum('authorize', 'decisions_per_s')).toFixed(3),
      ...(hasWrk() && { server_cpu_us_per_request: { authorize: cpu('authorize'), authzen: cpu('authzen') }, cpu_ratio_to_authorize: +(cpu('authorize') / cpu('authzen')).toFixed(3) }),
      errors: sum('authzen', 'errors') + sum('authorize', 'errors'),
      per_round: rounds.map((r) => [r.authorize.decisions_per_s, r.authzen.decisions_per_s]),
      target: 0.8,
    });
  } finally {
    await running.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

function hasWrk(): boolean {
  return spawnSync('wrk', ['--version']).error === undefined;
}

/** wrk (C, one thread on the other core) drives the load: the client costs far less than the server. */
async function wrk(url: string, path: string, token: string, bodies: string[], dir: string, durationMs = DURATION_MS): Promise<Record<string, unknown>> {
  const script = join(dir, `load-${path.replaceAll('/', '_')}.lua`);
  writeFileSync(
    script,
    `local bodies = {${bodies.map((b) => `[==[${b}]==]`).join(',')}}\n` +
      `local i = 0\nrequest = function()\n  i = i + 1\n  return wrk.format("POST", "${path}", {["content-type"] = "application/json", ["authorization"] = "Bearer ${token}"}, bodies[(i % #bodies) + 1])\nend\n`,
  );
  // Asynchronously: the server under test runs on this thread's event loop. Its CPU per request
  // (this process: event loop and audit writer thread; wrk is another process) is steadier than
  // the rate on a machine shared with other work.
  const cpu = process.cpuUsage();
  const r = await promisify(execFile)('wrk', ['-t1', `-c${CONCURRENCY}`, `-d${durationMs / 1000}s`, '--latency', '-s', script, `${url}${path}`], { encoding: 'utf8' });
  const used = process.cpuUsage(cpu);
  const out = r.stdout;
  const num = (re: RegExp) => Number(re.exec(out)?.[1] ?? NaN);
  const requests = num(/(\d+) requests in/);
  const ms = (p: string) => {
    const m = new RegExp(`\\s${p}%\\s+([\\d.]+)(us|ms|s)`).exec(out);
    return m ? +(Number(m[1]) * (m[2] === 'us' ? 0.001 : m[2] === 's' ? 1000 : 1)).toFixed(2) : NaN;
  };
  return {
    load: 'wrk -t1',
    decisions_per_s: Math.round(num(/Requests\/sec:\s+([\d.]+)/)),
    p50_ms: ms('50'),
    p99_ms: ms('99'),
    errors: num(/Non-2xx or 3xx responses:\s+(\d+)/) || 0,
    server_cpu_us_per_request: Math.round((used.user + used.system) / requests),
  };
}

/** Without wrk: fetch from a worker thread (the client then costs about as much as the server). */
async function fetchLoad(url: string, path: string, token: string, bodies: string[], durationMs = DURATION_MS): Promise<Record<string, unknown>> {
  const result = await new Promise<{ lat: number[]; ok: number; failed: number }>((resolve, reject) => {
    const w = new Worker(LOADGEN, { eval: true, workerData: { url: `${url}${path}`, token, bodies, durationMs, concurrency: CONCURRENCY } });
    w.once('message', resolve);
    w.once('error', reject);
  });
  result.lat.sort((a, b) => a - b);
  return {
    load: 'fetch (worker thread; install wrk for a lighter client)',
    decisions_per_s: Math.round(result.ok / (durationMs / 1000)),
    p50_ms: +percentile(result.lat, 50).toFixed(2),
    p99_ms: +percentile(result.lat, 99).toFixed(2),
    errors: result.failed,
  };
}

export async function run(emit: Emit): Promise<void> {
  // Each engine with its AuthZEN evaluation case (docs/benchmarks.md).
  await one(emit, 'wasm', 1000, true);
  await one(emit, 'compiled', 1000, true);
}
