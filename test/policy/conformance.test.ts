// Conformance: every request of Cedar's own integration tests (handwritten + fuzzer corpus), run
// through CompiledEngine, must give Cedar's decision, reasons and erroring policy ids.
// The data lives beside the repository in ../shared/conformance/cedar (never copied in here).

import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { CompiledEngine } from '../../src/policy/engine/compiled/index.ts';
import { parseCedarJson } from '../../src/policy/engine/compiled/json.ts';
import type { DecisionEngine, Entity, EntityUid, CedarValue } from '../../src/policy/engine/types.ts';
import { WasmEngine } from '../../src/policy/engine/wasm.ts';
import { inCi } from '../ci.ts';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const dataDir = join(repoRoot, '..', 'shared', 'conformance', 'cedar');

const parseJsonExact = parseCedarJson;

function hasBigint(v: unknown): boolean {
  if (typeof v === 'bigint') return true;
  if (Array.isArray(v)) return v.some(hasBigint);
  if (v !== null && typeof v === 'object') return Object.values(v).some(hasBigint);
  return false;
}

interface TestRequest {
  description: string;
  principal: EntityUid;
  action: EntityUid;
  resource: EntityUid;
  context: Record<string, CedarValue>;
  validateRequest?: boolean;
  decision: 'allow' | 'deny';
  reason: string[];
  errors: string[];
}

interface TestFile {
  policies: string;
  entities: string;
  schema: string;
  shouldValidate?: boolean;
  requests: TestRequest[];
}

/** Action entities (with their action-group parents) that Cedar derives from the schema. */
function schemaActions(schemaText: string): Entity[] {
  const s = cedar.schemaToJson(schemaText);
  if (s.type !== 'success') throw new Error('schema does not parse: ' + s.errors.map((e) => e.message).join('; '));
  const out: Entity[] = [];
  for (const [ns, def] of Object.entries(s.json)) {
    const actionType = ns === '' ? 'Action' : `${ns}::Action`;
    for (const [id, a] of Object.entries(def.actions ?? {})) {
      const parents = (a.memberOf ?? []).map((m) => {
        let type = m.type ?? actionType;
        if (m.type !== undefined && ns !== '' && !m.type.includes('::')) type = `${ns}::${m.type}`;
        return { type, id: m.id };
      });
      out.push({ uid: { type: actionType, id }, attrs: {}, parents });
    }
  }
  return out;
}

type SchemaType = { type: string; name?: string; element?: SchemaType; attributes?: Record<string, SchemaType> };

/**
 * Cedar reads entity and context JSON against the schema, which lets the data omit the
 * `__entity` / `__extn` escapes where the schema says an attribute is an entity or an extension
 * value. The engines take Cedar's schema-free JSON form, so we add the escapes the schema implies.
 */
function withEscapes(v: unknown, t: SchemaType | undefined): unknown {
  if (t === undefined || v === null || typeof v !== 'object' && typeof v !== 'string') return v;
  switch (t.type) {
    case 'Entity':
    case 'EntityOrCommon':
      if (typeof v === 'object' && !Array.isArray(v) && !('__entity' in v) && 'type' in v && 'id' in v) return { __entity: v };
      return v;
    case 'Extension':
      if (typeof v === 'string') return { __extn: { fn: t.name === 'ipaddr' ? 'ip' : t.name, arg: v } };
      if (typeof v === 'object' && !Array.isArray(v) && !('__extn' in v) && 'fn' in v) return { __extn: v };
      return v;
    case 'Set':
      return Array.isArray(v) ? v.map((x) => withEscapes(x, t.element)) : v;
    case 'Record': {
      if (typeof v !== 'object' || Array.isArray(v) || '__entity' in v || '__extn' in v) return v;
      const o: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) o[k] = withEscapes(x, t.attributes?.[k]);
      return o;
    }
  }
  return v;
}

interface SchemaInfo {
  shapes: Map<string, { shape?: SchemaType; tags?: SchemaType }>;
  contexts: Map<string, SchemaType>;
}

function schemaInfo(schemaText: string): SchemaInfo {
  const info: SchemaInfo = { shapes: new Map(), contexts: new Map() };
  const s = cedar.schemaToJsonWithResolvedTypes(schemaText);
  if (s.type !== 'success') return info;
  for (const [ns, def] of Object.entries(s.json)) {
    const q = (n: string): string => (ns === '' ? n : `${ns}::${n}`);
    for (const [name, et] of Object.entries(def.entityTypes ?? {})) {
      const e = et as { shape?: SchemaType; tags?: SchemaType };
      info.shapes.set(q(name), { shape: e.shape, tags: e.tags });
    }
    for (const [id, a] of Object.entries(def.actions ?? {})) {
      const ctx = (a.appliesTo as { context?: SchemaType } | undefined)?.context;
      if (ctx !== undefined) info.contexts.set(`${q('Action')}::${JSON.stringify(id)}`, ctx);
    }
  }
  return info;
}

/** Cedar names the policies of a file policy0, policy1, …; policySetTextToParts sorts by id. */
function lexIds(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `policy${i}`).sort();
}

interface Tally {
  files: number;
  requests: number;
  agreed: number;
  precisionCases: number;
  precisionRejectedAlike: number;
  mismatches: string[];
}

// JSON.rawJSON is in Node 24 but not yet in TypeScript's es2024 lib.
const rawJSON = (JSON as unknown as { rawJSON(s: string): unknown }).rawJSON;
const toLossy = (v: unknown): unknown => JSON.parse(JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? rawJSON(x.toString()) : x)));

function runFile(root: string, rel: string, tally: Tally, makeEngine: () => DecisionEngine = () => new CompiledEngine()): void {
  const t = parseJsonExact(readFileSync(join(root, rel), 'utf8')) as TestFile;
  const policyText = readFileSync(join(root, t.policies), 'utf8');
  const parts = cedar.policySetTextToParts(policyText);
  if (parts.type !== 'success') throw new Error(`${rel}: policies do not parse`);
  const ids = lexIds(parts.policies.length);
  const sources = parts.policies.map((text, i) => ({ id: ids[i], text }));
  const engine = makeEngine();
  const reference = engine.kind === 'wasm';
  engine.loadPolicies(sources);
  const schemaText = readFileSync(join(root, t.schema), 'utf8');
  const info = schemaInfo(schemaText);
  const entities = (parseJsonExact(readFileSync(join(root, t.entities), 'utf8')) as Entity[]).map((e) => {
    const s = info.shapes.get(e.uid.type);
    if (s === undefined) return e;
    const out: Entity = { ...e, attrs: withEscapes(e.attrs, s.shape ?? { type: 'Record' }) as Entity['attrs'] };
    if (e.tags !== undefined && s.tags !== undefined) {
      out.tags = Object.fromEntries(Object.entries(e.tags).map(([k, v]) => [k, withEscapes(v, s.tags)])) as Entity['tags'];
    }
    return out;
  });
  const actions = schemaActions(schemaText);
  const given = new Set(entities.map((e) => `${e.uid.type}::${JSON.stringify(e.uid.id)}`));
  engine.upsertEntities([...entities, ...actions.filter((a) => !given.has(`${a.uid.type}::${JSON.stringify(a.uid.id)}`))]);
  tally.files++;
  const bigEntities = hasBigint(entities);
  for (const r0 of t.requests) {
    // cedar-wasm reads JSON numbers as doubles: it cannot be handed integers beyond 2^53 at all.
    if (reference && (bigEntities || hasBigint(r0.context))) continue;
    tally.requests++;
    const ctxType = info.contexts.get(`${r0.action.type}::${JSON.stringify(r0.action.id)}`);
    const r = ctxType === undefined ? r0 : { ...r0, context: withEscapes(r0.context, ctxType) as TestRequest['context'] };
    let got;
    try {
      got = engine.authorize({ principal: r.principal, action: r.action, resource: r.resource, context: r.context });
    } catch (e) {
      tally.mismatches.push(`${rel} ${r.description}: threw ${(e as Error).message}`);
      continue;
    }
    const errIds = [...new Set(got.errors.map((e) => e.policyId))].sort();
    const ok =
      got.decision === r.decision &&
      JSON.stringify([...got.reasons].sort()) === JSON.stringify([...r.reason].sort()) &&
      JSON.stringify(errIds) === JSON.stringify([...r.errors].sort());
    if (!ok) {
      tally.mismatches.push(
        `${rel} ${r.description}: expected ${r.decision} ${JSON.stringify(r.reason)} errors ${JSON.stringify(r.errors)}; got ${got.decision} ${JSON.stringify(got.reasons)} errors ${JSON.stringify(got.errors.map((e) => e.policyId))}`,
      );
      continue;
    }
    tally.agreed++;
    if (!reference && (bigEntities || hasBigint(r.context))) {
      // Inputs that a plain JSON.parse cannot read exactly (integers beyond 2^53). cedar-wasm,
      // handed the rounded doubles, rejects the request; so must CompiledEngine — it never
      // decides on a rounded number.
      tally.precisionCases++;
      const lossyCtx = toLossy(r.context) as Record<string, CedarValue>;
      const lossyEntities = toLossy([...entities, ...actions.filter((a) => !given.has(`${a.uid.type}::${JSON.stringify(a.uid.id)}`))]) as Entity[];
      let rejected = false;
      let lossyGot;
      try {
        const e2 = new CompiledEngine();
        e2.loadPolicies(sources);
        e2.upsertEntities(lossyEntities);
        lossyGot = e2.authorize({ principal: r.principal, action: r.action, resource: r.resource, context: lossyCtx });
      } catch {
        rejected = true;
      }
      const wasm = cedar.isAuthorized({
        principal: r.principal,
        action: r.action,
        resource: r.resource,
        context: lossyCtx as cedar.Context,
        policies: { staticPolicies: Object.fromEntries(sources.map((s) => [s.id, s.text])) },
        entities: lossyEntities as cedar.EntityJson[],
      });
      if ((wasm.type === 'failure') !== rejected) {
        tally.mismatches.push(`${rel} ${r.description}: rounded input: cedar-wasm ${wasm.type}, compiled ${rejected ? 'rejected' : 'accepted'}`);
      } else if (rejected) tally.precisionRejectedAlike++;
      else if (wasm.type === 'success' && lossyGot !== undefined) {
        const w = wasm.response;
        const same =
          w.decision === lossyGot.decision &&
          JSON.stringify([...w.diagnostics.reason].sort()) === JSON.stringify(lossyGot.reasons) &&
          JSON.stringify(w.diagnostics.errors.map((e) => e.policyId).sort()) === JSON.stringify(lossyGot.errors.map((e) => e.policyId));
        if (!same) tally.mismatches.push(`${rel} ${r.description}: rounded input decided differently from cedar-wasm`);
      }
    }
  }
}

async function runCorpus(t: TestContext, makeEngine: () => DecisionEngine, label: string): Promise<void> {
  if (!existsSync(dataDir)) {
    // A missing corpus never passes in CI: it fails there, and skips (with a notice) elsewhere.
    if (inCi) assert.fail(`CI is set but the Cedar conformance data is missing at ${dataDir} (place shared/ beside the repository)`);
    t.skip(`conformance data not found at ${dataDir} (place shared/ beside the repository to run it)`);
    return;
  }
  const tmp = mkdtempSync(join(tmpdir(), 'pcx-cedar-conformance-'));
  try {
    for (const f of readdirSync(dataDir).filter((x) => x.endsWith('.tar.gz')).sort()) {
      execFileSync('tar', ['-xzf', join(dataDir, f), '-C', tmp]);
    }
    const files: string[] = [];
    const testsDir = join(tmp, 'tests');
    if (existsSync(testsDir)) {
      for (const d of readdirSync(testsDir).sort()) {
        for (const f of readdirSync(join(testsDir, d)).sort()) if (f.endsWith('.json')) files.push(`tests/${d}/${f}`);
      }
    }
    const handwritten = files.length;
    const corpusDir = join(tmp, 'corpus-tests');
    if (existsSync(corpusDir)) {
      for (const f of readdirSync(corpusDir).sort()) if (f.endsWith('.json') && !f.endsWith('.entities.json')) files.push(`corpus-tests/${f}`);
    }
    assert.ok(files.length > 0, 'no conformance tests found');
    const tally: Tally = { files: 0, requests: 0, agreed: 0, precisionCases: 0, precisionRejectedAlike: 0, mismatches: [] };
    for (const f of files) {
      try {
        runFile(tmp, f, tally, makeEngine);
      } catch (e) {
        tally.mismatches.push(`${f}: ${(e as Error).stack}`);
      }
    }
    t.diagnostic(
      `${label}: ${tally.files} test files (${handwritten} handwritten), ${tally.requests} requests, ${tally.agreed} agree; ` +
        `${tally.precisionCases} carry integers beyond 2^53 (decided exactly; ${tally.precisionRejectedAlike} rejected alike by cedar-wasm and CompiledEngine when rounded)`,
    );
    if (tally.mismatches.length > 0) {
      assert.fail(`${tally.mismatches.length} mismatches:\n${tally.mismatches.slice(0, 30).join('\n')}`);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

test('Cedar conformance corpus: CompiledEngine agrees with every request', (t) => runCorpus(t, () => new CompiledEngine(), 'compiled'));

// The reference engine hands cedar-wasm only the entities a request can reach; the corpus guards
// that slicing (requests with integers beyond 2^53 are left out: cedar-wasm cannot read them).
test('Cedar conformance corpus: WasmEngine with entity slicing agrees with every request it can read', (t) => runCorpus(t, () => new WasmEngine(), 'wasm'));
