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

async function one(emit: Emit, engine: 'wasm' | 'compiled', policies: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'pcx-bench-http-'));
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const jwk = { ...(publicKey as KeyObject).export({ format: 'jwk' }), kid: 'bench', alg: 'EdDSA', use: 'sig' };
  writeFileSync(join(dir, 'bench.cedar'), policyFiles(policies)[0]!.text);
  const yaml = stringify({
    listen: { host: '127.0.0.1', port: 0 },
    data_dir: './data',
    engine,
    trusts: [{ name: 'ci', kind: 'oidc', issuer: 'https://ci.bench', jwks: { keys: [jwk] }, audiences: ['portcullis'], algorithms: ['EdDSA'], identity: 'workload:github/{repository}', boundary: 'application', environment: 'prod' }],
    identities: [{ id: 'workload:github/acme/svc-1', kind: 'workload', owner: 'team:x', boundary: 'application', environment: 'prod', parents: ['Team::"team-1"'] }],
    resources: databases(),
    policies: './bench.cedar',
  });
  const running = await serve(parseConfig(yaml, dir), { quiet: true, env: { PORTCULLIS_MASTER_KEY: Buffer.alloc(32, 1).toString('base64') } });
  try {
    const proof = await new SignJWT({ repository: 'acme/svc-1' }).setProtectedHeader({ alg: 'EdDSA', kid: 'bench' }).setIssuer('https://ci.bench').setAudience('portcullis').setIssuedAt().setExpirationTime('5m').sign(privateKey);
    const login = await fetch(`${running.url}/v1/auth/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: proof }) });
    const { session_token } = (await login.json()) as { session_token: string };
    const bodies = requestMix(1000).map((r) => JSON.stringify({ action: r.action, resource: { type: 'Database', id: `db-${r.db}` }, context: { purpose: r.purpose } }));
    const line = hasWrk()
      ? await wrk(running.url, session_token, bodies, dir)
      : await fetchLoad(running.url, session_token, bodies);
    const { audit } = brokerInternals(running.broker);
    await audit.flush();
    emit({ bench: 'http', engine, policies, concurrency: CONCURRENCY, audit: 'durable (fail closed)', ...line, authz_events_recorded: (await audit.head('authz')).seq });
  } finally {
    await running.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

function hasWrk(): boolean {
  return spawnSync('wrk', ['--version']).error === undefined;
}

/** wrk (C, one thread on the other core) drives the load: the client costs far less than the server. */
async function wrk(url: string, token: string, bodies: string[], dir: string): Promise<Record<string, unknown>> {
  const script = join(dir, 'authorize.lua');
  writeFileSync(
    script,
    `local bodies = {${bodies.map((b) => `[==[${b}]==]`).join(',')}}\n` +
      `local i = 0\nrequest = function()\n  i = i + 1\n  return wrk.format("POST", "/v1/authorize", {["content-type"] = "application/json", ["authorization"] = "Bearer ${token}"}, bodies[(i % #bodies) + 1])\nend\n`,
  );
  // Asynchronously: the server under test runs on this thread's event loop.
  const r = await promisify(execFile)('wrk', ['-t1', `-c${CONCURRENCY}`, `-d${DURATION_MS / 1000}s`, '--latency', '-s', script, `${url}/v1/authorize`], { encoding: 'utf8' });
  const out = r.stdout;
  const num = (re: RegExp) => Number(re.exec(out)?.[1] ?? NaN);
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
  };
}

/** Without wrk: fetch from a worker thread (the client then costs about as much as the server). */
async function fetchLoad(url: string, token: string, bodies: string[]): Promise<Record<string, unknown>> {
  const result = await new Promise<{ lat: number[]; ok: number; failed: number }>((resolve, reject) => {
    const w = new Worker(LOADGEN, { eval: true, workerData: { url: `${url}/v1/authorize`, token, bodies, durationMs: DURATION_MS, concurrency: CONCURRENCY } });
    w.once('message', resolve);
    w.once('error', reject);
  });
  result.lat.sort((a, b) => a - b);
  return {
    load: 'fetch (worker thread; install wrk for a lighter client)',
    decisions_per_s: Math.round(result.ok / (DURATION_MS / 1000)),
    p50_ms: +percentile(result.lat, 50).toFixed(2),
    p99_ms: +percentile(result.lat, 99).toFixed(2),
    errors: result.failed,
  };
}

export async function run(emit: Emit): Promise<void> {
  await one(emit, 'wasm', 1000);
  await one(emit, 'compiled', 1000);
}
