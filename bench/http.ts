// HTTP decision throughput with durable audit: a real server on loopback, a load generator in a
// worker thread (the other core), keep-alive connections, bounded in count and time.
import { Worker } from 'node:worker_threads';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPairSync } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { SignJWT } from 'jose';
import { stringify } from 'yaml';
import { parseConfig } from '../src/config/load.ts';
import { serve } from '../src/cli/serve.ts';
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
    const result = await new Promise<{ lat: number[]; ok: number; failed: number; allow: number }>((resolve, reject) => {
      const w = new Worker(LOADGEN, { eval: true, workerData: { url: `${running.url}/v1/authorize`, token: session_token, bodies, durationMs: DURATION_MS, concurrency: CONCURRENCY } });
      w.once('message', resolve);
      w.once('error', reject);
    });
    result.lat.sort((a, b) => a - b);
    await running.broker.audit.flush();
    const recorded = running.broker.audit.head('authz').seq;
    emit({
      bench: 'http', engine, policies, concurrency: CONCURRENCY, audit: 'durable (fail closed)',
      decisions_per_s: Math.round(result.ok / (DURATION_MS / 1000)), p50_ms: +percentile(result.lat, 50).toFixed(2), p99_ms: +percentile(result.lat, 99).toFixed(2),
      errors: result.failed, allow: result.allow, authz_events_recorded: recorded,
    });
  } finally {
    await running.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run(emit: Emit): Promise<void> {
  await one(emit, 'wasm', 1000);
  await one(emit, 'compiled', 1000);
}
