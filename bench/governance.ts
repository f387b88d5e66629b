// Governance analysis benchmarks (docs/governance.md): what-if replay of 1 M recorded decisions
// against the plain decisions/s of the same engine in the same run (goal: ratio ≥ 0.5), and
// effective-permissions computation at 10k resources × 1k policies.
// The records are made by the real decision point (captured from its audit sink), so they carry
// exactly the snapshot production records carry; a pool of distinct records is replayed cyclically.
import type { AuditEventInput, AuditRecord, AuditSink } from '../src/audit/types.ts';
import { DecisionPoint, type DecisionInput } from '../src/policy/decision-point.ts';
import { PolicyStore } from '../src/policy/store.ts';
import { SqlitePolicyStore } from '../src/store/sqlite/policy.ts';
import { openDatabase, SqliteDb } from '../src/store/sqlite/db.ts';
import { actionEntities, actionsApplying, compilePolicySet, type PolicyFile } from '../src/policy/policy-set.ts';
import { resourceEntity, type ResourceFacts } from '../src/policy/entities.ts';
import { createEngine } from '../src/policy/engine/select.ts';
import type { EngineKind } from '../src/policy/engine/types.ts';
import { Replay, rebuild, type RebuiltDecision } from '../src/governance/replay.ts';
import { PermissionModel } from '../src/governance/permissions.ts';
import { databases, policyFiles, requestMix, N_WORKLOADS } from './fixture.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

type Emit = (line: Record<string, unknown>) => void;
const QUICK = process.env.PCX_BENCH_QUICK === '1';
const POOL = QUICK ? 2_000 : 20_000;
const REPLAYED: Record<EngineKind, number> = { compiled: QUICK ? 20_000 : 1_000_000, wasm: QUICK ? 500 : 2_000 };
const POLICIES = 1000;

/** Recorded decisions, as the decision point writes them, over the product fixture. */
export async function record(kind: EngineKind): Promise<AuditRecord[]> {
  const dir = mkdtempSync(join(tmpdir(), 'pcx-bench-gov-'));
  const db = openDatabase(join(dir, 'portcullis.db'));
  const events: AuditEventInput[] = [];
  const sink: AuditSink = { append: (e) => (events.push(e), Promise.resolve(e as AuditRecord)) };
  const engine = createEngine(kind);
  let now = Date.parse('2026-11-02T00:00:00Z');
  const dp = new DecisionPoint({ engine, store: new PolicyStore(new SqlitePolicyStore(new SqliteDb(db)).versions), audit: sink, clock: { now: () => now }, bridges: [], failClosed: true, resourceBoundary: () => 'application', resourceEntity: (u) => dbEntities.get(u.id) });
  const dbEntities = new Map(databases().map((d) => [d.id, resourceEntity(d)]));
  engine.upsertEntities([...dbEntities.values(), ...actionEntities()]);
  await dp.activate(policyFiles(POLICIES), 'bench', 'bench');
  events.length = 0;
  const authTime = Math.floor(now / 1000);
  for (const r of requestMix(POOL)) {
    now += 97_000; // spread over days and hours
    const input: DecisionInput = {
      principal: { id: `workload:github/acme/svc-${r.w}`, kind: 'workload', boundary: 'application', environment: 'prod', owner: 'team:x', labels: {}, parents: [{ type: 'Team', id: `team-${r.w % 40}` }] },
      claims: { ref: 'refs/heads/main' },
      authn: { method: r.w % 7 === 0 ? 'api-key' : 'oidc', trust: 'ci', mfa: false, assurance: 'high', auth_time: authTime },
      sourceIp: '10.0.0.1',
      action: r.action,
      resource: { type: 'Database', id: `db-${r.db}` },
      purpose: r.purpose,
    };
    await dp.decide(input);
  }
  db.close();
  rmSync(dir, { recursive: true, force: true });
  return events.map((e, i) => ({ ...e, seq: i + 1, time: new Date(Date.parse('2026-11-02T00:00:00Z') + i * 97_000).toISOString(), prev_hash: '', hash: '' }));
}

/** The candidate: the same set with every 10th permit dropped (so some decisions flip). */
function candidate(): PolicyFile[] {
  const [f] = policyFiles(POLICIES);
  return [{ ...f!, text: f!.text.split('\n').filter((_, i) => i % 10 !== 0).join('\n') }];
}

function candidateEngine(kind: EngineKind) {
  const engine = createEngine(kind);
  engine.loadPolicies(compilePolicySet(candidate()));
  engine.upsertEntities([...databases().map(resourceEntity), ...actionEntities()]);
  return engine;
}

export async function replayBench(kind: EngineKind, records: AuditRecord[], emit: Emit): Promise<void> {
  const n = REPLAYED[kind];
  const engine = candidateEngine(kind);
  const rebuilt = records.map((r) => rebuild(r) as RebuiltDecision);
  // Plain decisions/s of the same engine (the requests already built, only the engine's work) and
  // replay (rebuild each record's entities and context from its snapshot, re-decide, count flips),
  // measured in alternating chunks so both see the same machine load.
  for (let i = 0; i < Math.min(5_000, n); i++) engine.authorize(rebuilt[i % rebuilt.length]!.request, rebuilt[i % rebuilt.length]!.entities);
  const replay = new Replay(engine, 100);
  const CHUNK = Math.max(50, Math.min(10_000, Math.floor(n / 100)));
  let plainS = 0;
  let replayS = 0;
  let allow = 0;
  for (let done = 0; done < n; done += CHUNK) {
    const end = Math.min(n, done + CHUNK);
    let t = performance.now();
    for (let i = done; i < end; i++) {
      const d = rebuilt[i % rebuilt.length]!;
      if (engine.authorize(d.request, d.entities).decision === 'allow') allow++;
    }
    plainS += (performance.now() - t) / 1000;
    t = performance.now();
    for (let i = done; i < end; i++) replay.add(records[i % records.length]!);
    replayS += (performance.now() - t) / 1000;
  }
  const report = replay.report();
  const plain = n / plainS;
  const rate = n / replayS;
  emit({ bench: 'governance', op: 'replay', engine: kind, policies: POLICIES, decisions: n, distinct_records: records.length, seconds: round(replayS), replay_per_s: Math.round(rate), plain_decisions_per_s: Math.round(plain), ratio: round(rate / plain), goal: 0.5, flips: report.flips, unreconstructable: report.unreconstructable.count, plain_allows: allow });
}

/** 10k resources: databases with tables, hosts, secrets, APIs, over 4 boundaries and 3 environments. */
function resources(): ResourceFacts[] {
  const out: ResourceFacts[] = [];
  const B = ['application', 'platform', 'infrastructure', 'ai-platform'];
  const E = ['prod', 'staging', 'dev'];
  for (let i = 0; i < 1000; i++) {
    out.push({ type: 'Database', id: `db-${i}`, boundary: B[i % 4]!, environment: E[i % 3]!, parents: [], attributes: {} });
    for (let j = 0; j < 5; j++) out.push({ type: 'Table', id: `db-${i}.t${j}`, boundary: B[i % 4]!, environment: E[i % 3]!, parents: [{ type: 'Database', id: `db-${i}` }], attributes: {} });
  }
  for (let i = 0; i < 2000; i++) out.push({ type: 'Host', id: `host-${i}`, boundary: B[i % 4]!, environment: E[i % 3]!, parents: [], attributes: {} });
  for (let i = 0; i < 1000; i++) out.push({ type: 'Secret', id: `secret-${i}`, boundary: B[i % 4]!, environment: E[i % 3]!, parents: [], attributes: {} });
  for (let i = 0; i < 1000; i++) out.push({ type: 'Api', id: `api-${i}`, boundary: B[i % 4]!, environment: E[i % 3]!, parents: [], attributes: {} });
  return out;
}

/** 1k policies: per-identity and per-team permits on databases (with purpose/time), hosts by environment, secrets with MFA, forbids. */
function permissionPolicies(): PolicyFile[] {
  const lines: string[] = [];
  for (let i = 0; i < 1000; i++) {
    const w = `workload:svc-${i % N_WORKLOADS}`;
    switch (i % 5) {
      case 0:
        lines.push(`permit (principal == Workload::"${w}", action in Action::"db.read", resource in Database::"db-${i % 1000}") when { context.purpose has reason };`);
        break;
      case 1:
        lines.push(`permit (principal in Team::"team-${i % 40}", action in [Action::"db.insert", Action::"db.update"], resource in Database::"db-${(i * 7) % 1000}") when { context.purpose has ticket && context.request.hour >= 6 && context.request.hour < 22 };`);
        break;
      case 2:
        lines.push(`permit (principal in Team::"team-${i % 40}", action in [Action::"ssh.login", Action::"ssh.shell"], resource is Host) when { resource.environment == "dev" && principal.environment == "prod" };`);
        break;
      case 3:
        lines.push(`permit (principal == Workload::"${w}", action == Action::"secret.read", resource == Secret::"secret-${i % 1000}") when { context.authn.mfa || context.grants.contains("secret-${i}") };`);
        break;
      default:
        lines.push(`forbid (principal, action in Action::"db.write", resource in Database::"db-${i % 1000}") when { context.authn.method == "api-key" };`);
    }
  }
  return [{ name: 'governance.cedar', origin: 'config', text: lines.join('\n') }];
}

async function permissionsBench(emit: Emit): Promise<void> {
  const res = resources().slice(0, QUICK ? 1000 : 10_000);
  const applying = new Map<string, readonly string[]>();
  let t = performance.now();
  const policies = compilePolicySet(permissionPolicies()); // validation: what activation costs anyway
  const validateS = (performance.now() - t) / 1000;
  t = performance.now();
  const model = new PermissionModel({
    policies,
    resources: res.map(resourceEntity),
    actionEntities: actionEntities(),
    actionsApplying: (p, r) => {
      let a = applying.get(`${p} ${r}`);
      if (a === undefined) applying.set(`${p} ${r}`, (a = actionsApplying(p, r)));
      return a;
    },
    bridged: () => false,
  });
  const buildS = (performance.now() - t) / 1000;
  const identities = QUICK ? 2 : 3;
  let pairs = 0;
  let listed = 0;
  t = performance.now();
  for (let i = 0; i < identities; i++) {
    const r = model.explain({ id: `workload:svc-${i}`, kind: 'workload', boundary: ['application', 'platform', 'infrastructure', 'ai-platform'][i % 4]!, environment: 'prod', owner: null, labels: {}, parents: [{ type: 'Team', id: `team-${i % 40}` }] });
    pairs += r.pairs;
    listed += r.permissions.length;
  }
  const explainS = (performance.now() - t) / 1000;
  emit({ bench: 'governance', op: 'effective_permissions', resources: res.length, policies: 1000, validate_seconds: round(validateS), model_build_seconds: round(buildS), identities, seconds_per_identity: round(explainS / identities), pairs_per_identity: Math.round(pairs / identities), listed_per_identity: Math.round(listed / identities), pairs_per_s: Math.round(pairs / explainS) });
}

const round = (x: number): number => Math.round(x * 1000) / 1000;

export async function run(emit: Emit): Promise<void> {
  // Recorded once (both engines decide alike: docs/decision-engine.md), replayed by each.
  const records = await record('compiled');
  await replayBench('compiled', records, emit);
  await replayBench('wasm', records, emit);
  await permissionsBench(emit);
}
