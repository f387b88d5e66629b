// Decision engine benchmark: the same realistic policies and requests through CompiledEngine and
// through a direct cedar-wasm call (statefulIsAuthorized on a preparsed policy set — the fastest
// WASM path — given only the entities the request touches), at 10, 1,000 and 10,000 policies.
// Every measured request is also checked to get the same decision, reasons and errors from both.

import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { fileURLToPath } from 'node:url';
import { CompiledEngine } from '../src/policy/engine/compiled/index.ts';
import { Rng } from '../test/policy/compiled-fuzzgen.ts';
import type { AuthzRequest, CedarValue, Entity, EntityUid, PolicySource } from '../src/policy/engine/types.ts';

type Emit = (line: Record<string, unknown>) => void;


const BOUNDARIES = ['application', 'platform', 'infrastructure', 'ai-platform'];
const ENVS = ['prod', 'staging', 'dev'];
const DB_ACTIONS = ['db.select', 'db.insert', 'db.update', 'db.delete'];
const N_WORKLOADS = 400;
const N_USERS = 200;
const N_TEAMS = 40;
const N_ROLES = 10;
const N_DBS = 100;
const N_TABLES_PER_DB = 5;
const N_HOSTS = 100;

const uid = (type: string, id: string): EntityUid => ({ type, id });
const ref = (type: string, id: string): CedarValue => ({ __entity: { type, id } });

function world(rng: Rng): Entity[] {
  const out: Entity[] = [];
  const act = (id: string, parents: string[]): void => {
    out.push({ uid: uid('Action', id), attrs: {}, parents: parents.map((p) => uid('Action', p)) });
  };
  act('db.read', []);
  act('db.write', []);
  act('db.admin', []);
  act('db.select', ['db.read']);
  act('db.insert', ['db.write']);
  act('db.update', ['db.write']);
  act('db.delete', ['db.write']);
  act('ssh.login', []);
  act('credential.issue', []);
  for (let i = 0; i < N_TEAMS; i++) out.push({ uid: uid('Team', `t${i}`), attrs: { boundary: BOUNDARIES[i % 4] }, parents: [] });
  for (let i = 0; i < N_ROLES; i++) out.push({ uid: uid('Role', `r${i}`), attrs: {}, parents: [] });
  for (let i = 0; i < N_WORKLOADS; i++) {
    out.push({
      uid: uid('Workload', `w${i}`),
      attrs: { boundary: BOUNDARIES[i % 4], environment: ENVS[i % 3], owner: ref('User', `u${i % N_USERS}`), purpose: 'service' },
      parents: [uid('Team', `t${i % N_TEAMS}`)],
    });
  }
  for (let i = 0; i < N_USERS; i++) {
    out.push({
      uid: uid('User', `u${i}`),
      attrs: { boundary: BOUNDARIES[i % 4], environment: ENVS[i % 3], clearance: i % 5 },
      parents: [uid('Team', `t${i % N_TEAMS}`), uid('Role', `r${i % N_ROLES}`)],
    });
  }
  for (let i = 0; i < N_DBS; i++) {
    out.push({ uid: uid('Database', `db${i}`), attrs: { boundary: BOUNDARIES[i % 4], environment: ENVS[i % 3], classification: rng.pick(['public', 'internal', 'pii']) }, parents: [] });
    for (let j = 0; j < N_TABLES_PER_DB; j++) {
      out.push({ uid: uid('Table', `db${i}.t${j}`), attrs: { boundary: BOUNDARIES[i % 4], environment: ENVS[i % 3], pii: j === 0 }, parents: [uid('Database', `db${i}`)] });
    }
  }
  for (let i = 0; i < N_HOSTS; i++) {
    out.push({ uid: uid('Host', `h${i}`), attrs: { boundary: BOUNDARIES[i % 4], environment: ENVS[i % 3], os: 'linux' }, parents: [] });
  }
  return out;
}

function policies(n: number, rng: Rng): PolicySource[] {
  const out: PolicySource[] = [];
  // A handful of global guardrails, present at every size.
  const globals = [
    `forbid (principal, action, resource) when { principal has boundary && resource has boundary && principal.boundary != resource.boundary } unless { context has bridge && context.bridge.approved == true };`,
    `forbid (principal, action in [Action::"db.write", Action::"db.admin"], resource) when { resource has environment && resource.environment == "prod" && !(context.purpose has ticket && context.purpose.ticket like "CHG-*") };`,
    `forbid (principal is Workload, action, resource) unless { context.authn.method == "oidc" || context.authn.method == "spiffe" };`,
    `permit (principal is User in Role::"r0", action == Action::"ssh.login", resource is Host) when { context.authn.mfa && context.request.sourceIp.isInRange(ip("10.0.0.0/8")) };`,
  ];
  for (const g of globals.slice(0, Math.min(globals.length, n))) out.push({ id: `guard-${out.length}`, text: g });
  while (out.length < n) {
    const k = out.length;
    const kind = rng.int(10);
    let text: string;
    if (kind < 5) {
      const w = rng.int(N_WORKLOADS);
      const db = (w % 12) + 12 * rng.int(Math.floor(N_DBS / 12)); // same boundary and environment
      text = `permit (principal == Workload::"w${w}", action in Action::"${rng.pick(['db.read', 'db.write'])}", resource in Database::"db${db}") when { resource.environment == principal.environment && context.request.time < datetime("2030-01-01T00:00:00Z") };`;
    } else if (kind < 7) {
      const t = rng.int(N_TEAMS);
      text = `permit (principal in Team::"t${t}", action == Action::"${rng.pick(DB_ACTIONS)}", resource is Table in Database::"db${rng.int(N_DBS)}") when { context.authn.assurance >= 2 && !(resource.pii) || context.purpose.reason == "incident" };`;
    } else if (kind < 8) {
      text = `permit (principal in Team::"t${rng.int(N_TEAMS)}", action == Action::"ssh.login", resource == Host::"h${rng.int(N_HOSTS)}") when { context.authn.mfa && principal.environment == resource.environment };`;
    } else if (kind < 9) {
      const u = rng.int(N_USERS);
      text = `permit (principal == User::"u${u}", action in [Action::"db.select", Action::"db.update"], resource in Database::"db${(u % 12) + 12 * rng.int(Math.floor(N_DBS / 12))}") when { principal.clearance >= 2 && context.purpose has ticket };`;
    } else {
      text = `forbid (principal == Workload::"w${rng.int(N_WORKLOADS)}", action, resource is Database) when { resource.classification == "pii" && context.request.time > datetime("2024-01-01").offset(duration("${rng.int(1000)}d")) };`;
    }
    out.push({ id: `p${k}`, text });
  }
  return out;
}

function requests(count: number, rng: Rng, pols: PolicySource[]): AuthzRequest[] {
  const out: AuthzRequest[] = [];
  for (let i = 0; i < count; i++) {
    // Aim half of the requests at a policy's own principal/resource so that allows happen.
    const p = rng.pick(pols).text;
    const pm = /principal == (\w+)::"([^"]+)"/.exec(p);
    const rm = /resource in Database::"([^"]+)"/.exec(p);
    const ssh = rng.int(6) === 0;
    const principal = pm !== null && rng.int(2) === 0 ? uid(pm[1], pm[2]) : rng.int(3) === 0 ? uid('User', `u${rng.int(N_USERS)}`) : uid('Workload', `w${rng.int(N_WORKLOADS)}`);
    const db = rm !== null ? rm[1] : `db${rng.int(N_DBS)}`;
    const resource = ssh ? uid('Host', `h${rng.int(N_HOSTS)}`) : rng.int(2) === 0 ? uid('Database', db) : uid('Table', `${db}.t${rng.int(N_TABLES_PER_DB)}`);
    const action = uid('Action', ssh ? 'ssh.login' : rng.pick(DB_ACTIONS));
    out.push({
      principal,
      action,
      resource,
      context: {
        authn: { method: rng.pick(['oidc', 'oidc', 'spiffe', 'apikey']), mfa: rng.int(3) > 0, assurance: rng.int(4) },
        request: { time: { __extn: { fn: 'datetime', arg: '2026-11-22T10:00:00Z' } }, sourceIp: { __extn: { fn: 'ip', arg: `10.1.${rng.int(256)}.${rng.int(256)}` } } },
        purpose: rng.int(2) === 0 ? { reason: rng.pick(['deploy', 'incident']), ticket: rng.pick(['CHG-1', 'INC-2']) } : { reason: 'batch' },
      },
    });
  }
  return out;
}

/** The entities one request touches (principal, resource, action and their ancestors). */
function slice(byKey: Map<string, Entity>, req: AuthzRequest): Entity[] {
  const out = new Map<string, Entity>();
  const visit = (u: EntityUid): void => {
    const k = `${u.type}::${u.id}`;
    if (out.has(k)) return;
    const e = byKey.get(k);
    if (e === undefined) return;
    out.set(k, e);
    for (const p of e.parents) visit(p);
    for (const v of Object.values(e.attrs)) if (v !== null && typeof v === 'object' && '__entity' in v) visit((v as { __entity: EntityUid }).__entity);
  };
  visit(req.principal);
  visit(req.resource);
  visit(req.action);
  return [...out.values()];
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

const round = (x: number, d = 2): number => Math.round(x * 10 ** d) / 10 ** d;

export async function run(emit: Emit): Promise<void> {
  const rng = new Rng(20261122);
  const entities = world(rng);
  const byKey = new Map(entities.map((e) => [`${e.uid.type}::${e.uid.id}`, e]));
  for (const n of (process.env.PCX_BENCH_SIZES ?? "10,1000,10000").split(",").map(Number)) {
    const pols = policies(n, rng);
    const reqs = requests(2000, rng, pols);
    const slices = reqs.map((r) => slice(byKey, r));

    const compiled = new CompiledEngine();
    let t0 = performance.now();
    compiled.loadPolicies(pols);
    const loadMs = performance.now() - t0;
    compiled.upsertEntities(entities);

    const setId = `bench-${n}`;
    const pre = cedar.preparsePolicySet(setId, { staticPolicies: Object.fromEntries(pols.map((p) => [p.id, p.text])) });
    if (pre.type !== 'success') throw new Error('preparse failed');
    const wasmCall = (i: number): cedar.AuthorizationAnswer =>
      cedar.statefulIsAuthorized({
        principal: reqs[i].principal,
        action: reqs[i].action,
        resource: reqs[i].resource,
        context: reqs[i].context as cedar.Context,
        preparsedPolicySetId: setId,
        entities: slices[i] as cedar.EntityJson[],
      });

    // Warm up both, and check agreement on every request that the wasm side will measure.
    for (let i = 0; i < reqs.length; i++) compiled.authorize(reqs[i]);

    // cedar-wasm: time-boxed, since a call costs milliseconds at large policy counts.
    const wasmLat: number[] = [];
    let mismatches = 0;
    let allows = 0;
    const wasmBudgetMs = 4000;
    const wasmStart = performance.now();
    for (let i = 0; i < Math.min(3, reqs.length); i++) wasmCall(i);
    let wasmBusy = 0;
    for (let i = 0; i < reqs.length && performance.now() - wasmStart < wasmBudgetMs; i++) {
      const s = performance.now();
      const a = wasmCall(i);
      const d = performance.now() - s;
      wasmBusy += d;
      wasmLat.push(d * 1000);
      if (a.type !== 'success') throw new Error('wasm failed: ' + a.errors.map((e) => e.message).join('; '));
      const c = compiled.authorize(reqs[i]);
      const w = a.response;
      if (c.decision === 'allow') allows++;
      if (
        w.decision !== c.decision ||
        JSON.stringify([...w.diagnostics.reason].sort()) !== JSON.stringify(c.reasons) ||
        JSON.stringify(w.diagnostics.errors.map((e) => e.policyId).sort()) !== JSON.stringify(c.errors.map((e) => e.policyId))
      ) {
        mismatches++;
      }
    }
    const wasmN = wasmLat.length;
    const wasmOps = wasmN / (wasmBusy / 1000);
    wasmLat.sort((a, b) => a - b);

    // compiled: per-request latency over many passes, plus throughput of a tight loop.
    const lat: number[] = [];
    for (let pass = 0; pass < 5; pass++) {
      for (let i = 0; i < reqs.length; i++) {
        const s = performance.now();
        compiled.authorize(reqs[i]);
        lat.push((performance.now() - s) * 1000);
      }
    }
    lat.sort((a, b) => a - b);
    let loops = 0;
    t0 = performance.now();
    while (performance.now() - t0 < 1500) {
      for (let i = 0; i < reqs.length; i++) compiled.authorize(reqs[i]);
      loops++;
    }
    const compiledOps = (loops * reqs.length) / ((performance.now() - t0) / 1000);

    // The server's usual path: the principal passed per request with its session attributes.
    const sessions = reqs.map((r) => {
      const e = byKey.get(`${r.principal.type}::${r.principal.id}`);
      return e === undefined ? [] : [{ ...e, attrs: { ...e.attrs, session: { mfa: true, method: 'oidc' } } }];
    });
    const latS: number[] = [];
    for (let pass = 0; pass < 2; pass++) {
      for (let i = 0; i < reqs.length; i++) {
        const s = performance.now();
        compiled.authorize(reqs[i], sessions[i]);
        latS.push((performance.now() - s) * 1000);
      }
    }
    latS.sort((a, b) => a - b);
    let loopsS = 0;
    t0 = performance.now();
    while (performance.now() - t0 < 700) {
      for (let i = 0; i < reqs.length; i++) compiled.authorize(reqs[i], sessions[i]);
      loopsS++;
    }
    const sessionOps = (loopsS * reqs.length) / ((performance.now() - t0) / 1000);

    emit({ bench: 'engine', engine: 'wasm', policies: n, requests: wasmN, ops_per_s: Math.round(wasmOps), p50_us: round(pct(wasmLat, 50)), p99_us: round(pct(wasmLat, 99)) });
    emit({
      bench: 'engine',
      engine: 'compiled',
      policies: n,
      requests: lat.length,
      ops_per_s: Math.round(compiledOps),
      p50_us: round(pct(lat, 50)),
      p99_us: round(pct(lat, 99)),
      ratio_vs_wasm: round(compiledOps / wasmOps, 1),
      load_ms: Math.round(loadMs),
      compared_with_wasm: wasmN,
      allow_share: round(allows / Math.max(1, wasmN), 3),
      mismatches,
    });
    emit({
      bench: 'engine',
      engine: 'compiled+request-entities',
      policies: n,
      requests: latS.length,
      ops_per_s: Math.round(sessionOps),
      p50_us: round(pct(latS, 50)),
      p99_us: round(pct(latS, 99)),
      ratio_vs_wasm: round(sessionOps / wasmOps, 1),
    });
    if (mismatches > 0) throw new Error(`engine bench: ${mismatches} decisions differ between compiled and cedar-wasm at ${n} policies`);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await run((line) => console.log(JSON.stringify(line)));
}
