// In-process decisions on the product path (context built from verified facts, engine, authz
// audit record made durable) next to a direct cedar-wasm call on the same requests.
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase, SqliteDb } from '../src/store/sqlite/db.ts';
import { SqliteAuditStore } from '../src/store/sqlite/audit/index.ts';
import { SqlitePolicyStore } from '../src/store/sqlite/policy.ts';
import { AuditLog } from '../src/audit/log.ts';
import { PolicyStore } from '../src/policy/store.ts';
import { DecisionPoint } from '../src/policy/decision-point.ts';
import type { DecisionInput } from '../src/policy/decision-point.ts';
import { actionEntities, compilePolicySet } from '../src/policy/policy-set.ts';
import { principalEntity, resourceEntity } from '../src/policy/entities.ts';
import { createEngine } from '../src/policy/engine/select.ts';
import type { EngineKind } from '../src/policy/engine/types.ts';
import { databases, percentile, policyFiles, requestMix } from './fixture.ts';

type Emit = (line: Record<string, unknown>) => void;
const REQUESTS = 20_000;
const CONCURRENCY = 64;

function inputs(): DecisionInput[] {
  const now = Math.floor(Date.now() / 1000);
  return requestMix(REQUESTS).map((r) => ({
    principal: { id: `workload:github/acme/svc-${r.w}`, kind: 'workload', boundary: 'application', environment: 'prod', owner: 'team:x', labels: {}, parents: [{ type: 'Team', id: `team-${r.w % 40}` }] },
    claims: { ref: 'refs/heads/main' },
    authn: { method: 'oidc', trust: 'ci', mfa: false, assurance: 'high', auth_time: now },
    sourceIp: '127.0.0.1',
    action: r.action,
    resource: { type: 'Database', id: `db-${r.db}` },
    purpose: r.purpose,
  }));
}

async function productPath(kind: EngineKind, n: number, reqs: DecisionInput[]): Promise<{ ops: number; p50: number; p99: number; allow: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'pcx-bench-'));
  const db = openDatabase(join(dir, 'portcullis.db'));
  const audit = new AuditLog(new SqliteAuditStore(new SqliteDb(db)), {});
  const engine = createEngine(kind);
  const dbs = databases();
  const dp = new DecisionPoint({
    engine, store: new PolicyStore(new SqlitePolicyStore(new SqliteDb(db)).versions), audit, clock: { now: () => Date.now() }, bridges: [], failClosed: true,
    resourceBoundary: () => 'application',
  });
  engine.upsertEntities([...dbs.map(resourceEntity), ...actionEntities()]);
  await dp.activate(policyFiles(n), 'bench', 'bench');
  for (const r of reqs.slice(0, 500)) await dp.decide(r); // warm-up
  const lat: number[] = [];
  let allow = 0;
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < reqs.length) {
      const r = reqs[next++]!;
      const t = performance.now();
      const d = await dp.decide(r);
      lat.push(performance.now() - t);
      if (d.decision === 'allow') allow++;
    }
  }));
  const secs = (performance.now() - started) / 1000;
  await audit.close();
  db.close();
  rmSync(dir, { recursive: true, force: true });
  lat.sort((a, b) => a - b);
  return { ops: reqs.length / secs, p50: percentile(lat, 50) * 1000, p99: percentile(lat, 99) * 1000, allow };
}

function directWasm(n: number, reqs: DecisionInput[]): { ops: number; p50: number; p99: number; allow: number } {
  const policies = compilePolicySet(policyFiles(n));
  cedar.preparsePolicySet('bench', { staticPolicies: Object.fromEntries(policies.map((p) => [p.id, p.text])) });
  const entities = [...databases().map(resourceEntity), ...actionEntities()];
  const lat: number[] = [];
  let allow = 0;
  const iso = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
  const started = performance.now();
  for (const r of reqs) {
    const t = performance.now();
    const p = principalEntity(r.principal, r.claims);
    const a = cedar.statefulIsAuthorized({
      principal: p.uid, action: { type: 'Action', id: r.action }, resource: r.resource,
      context: {
        authn: { method: r.authn.method, trust: r.authn.trust, mfa: false, assurance: 'high', authAgeSeconds: 0 },
        request: { time: { __extn: { fn: 'datetime', arg: iso } }, hour: 12, weekday: 'mon', sourceIp: { __extn: { fn: 'ip', arg: '127.0.0.1' } } },
        purpose: r.purpose, grants: [], breakGlass: false, delegation: { depth: 0, actors: [] }, bridge: false,
      } as unknown as cedar.Context,
      preparsedPolicySetId: 'bench',
      entities: [...entities, p] as cedar.EntityJson[],
    });
    lat.push(performance.now() - t);
    if (a.type === 'success' && a.response.decision === 'allow') allow++;
  }
  const secs = (performance.now() - started) / 1000;
  lat.sort((a, b) => a - b);
  return { ops: reqs.length / secs, p50: percentile(lat, 50) * 1000, p99: percentile(lat, 99) * 1000, allow };
}

export async function run(emit: Emit): Promise<void> {
  const reqs = inputs();
  for (const n of [10, 1000]) {
    const wasm = directWasm(n, reqs.slice(0, 2000));
    emit({ bench: 'decisions', path: 'cedar-wasm direct (no audit)', policies: n, ops_per_s: Math.round(wasm.ops), p50_us: +wasm.p50.toFixed(1), p99_us: +wasm.p99.toFixed(1) });
    for (const kind of ['wasm', 'compiled'] as const) {
      const r = await productPath(kind, n, kind === 'wasm' ? reqs.slice(0, 3000) : reqs);
      emit({
        bench: 'decisions', path: 'decision point + durable authz audit', engine: kind, policies: n, concurrency: CONCURRENCY,
        ops_per_s: Math.round(r.ops), p50_us: +r.p50.toFixed(1), p99_us: +r.p99.toFixed(1), ratio_vs_direct_wasm: +(r.ops / wasm.ops).toFixed(2),
      });
    }
  }
}
