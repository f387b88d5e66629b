// Differential fuzzing: random policies, entities and requests; CompiledEngine must give exactly
// cedar-wasm's decision, determining policies and erroring policies — and reject what it rejects.
//   PORTCULLIS_FUZZ_SEED=<n>   reproduce a run        PORTCULLIS_FUZZ_CASES=<n>  longer run

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { CompiledEngine } from '../../src/policy/engine/compiled/index.ts';
import type { AuthzResult, Entity } from '../../src/policy/engine/types.ts';
import { Gen } from './compiled-fuzzgen.ts';

// A fixed seed: a run is reproducible and a failure in CI is the same failure on a laptop.
// Explore other seeds with PORTCULLIS_FUZZ_SEED (the seed is printed in the test name).
const SEED = process.env.PORTCULLIS_FUZZ_SEED !== undefined ? Number(process.env.PORTCULLIS_FUZZ_SEED) : 0x8c0ffee;
if (!Number.isInteger(SEED) || SEED < 0 || SEED > 0xffffffff) throw new Error(`PORTCULLIS_FUZZ_SEED must be an integer in [0, 2^32): ${process.env.PORTCULLIS_FUZZ_SEED}`);
console.log(`differential fuzz seed ${SEED} (reproduce with PORTCULLIS_FUZZ_SEED=${SEED})`);
const CASES = Number(process.env.PORTCULLIS_FUZZ_CASES ?? 3000);
const REQUESTS_PER_CASE = 6;

type Outcome = { rejected: true } | { rejected: false; decision: string; reasons: string[]; errors: string[] };

function fromCompiled(f: () => AuthzResult): Outcome {
  try {
    const r = f();
    return { rejected: false, decision: r.decision, reasons: [...r.reasons].sort(), errors: r.errors.map((e) => e.policyId).sort() };
  } catch {
    return { rejected: true };
  }
}

test(`differential fuzz vs cedar-wasm (seed ${SEED}, ${CASES} cases)`, (t) => {
  let compared = 0;
  let rejectedAlike = 0;
  let allow = 0;
  let withErrors = 0;
  let skippedParse = 0;
  for (let i = 0; i < CASES; i++) {
    const caseSeed = (SEED + Math.imul(i, 0x9e3779b1)) >>> 0;
    const g = new Gen(caseSeed);
    // Mostly small sets (every condition gets evaluated); sometimes larger scoped sets that
    // exercise the index.
    const n = g.r.chance(0.2) ? 8 + g.r.int(24) : 1 + g.r.int(4);
    const texts = Array.from({ length: n }, () => g.policy());
    const sources = texts.map((text, j) => ({ id: `p${j}`, text }));
    const staticPolicies = Object.fromEntries(sources.map((s) => [s.id, s.text]));
    const pre = cedar.checkParsePolicySet({ staticPolicies });
    const engine = new CompiledEngine();
    let loaded = true;
    try {
      engine.loadPolicies(sources);
    } catch {
      loaded = false;
    }
    if (pre.type !== 'success') {
      // Cedar refuses the policy set (e.g. an integer literal out of range): so must we.
      assert.equal(loaded, false, `seed ${SEED} case ${i} (case seed ${caseSeed}): cedar rejects the policies, compiled accepted:\n${texts.join('\n')}`);
      skippedParse++;
      continue;
    }
    assert.equal(loaded, true, `seed ${SEED} case ${i}: compiled rejected policies cedar accepts:\n${texts.join('\n')}`);
    let entities = g.entities();
    const storeOk = (() => {
      try {
        engine.upsertEntities(entities);
        return true;
      } catch {
        return false;
      }
    })();
    if (!storeOk) {
      // The store refused the entities (e.g. a cyclic hierarchy): Cedar must refuse them too.
      const req = g.request();
      const w = cedar.isAuthorized({ ...req, context: req.context as cedar.Context, policies: { staticPolicies }, entities: entities as cedar.EntityJson[] });
      assert.equal(w.type, 'failure', `seed ${SEED} case ${i}: compiled store rejected entities that cedar accepts: ${JSON.stringify(entities)}`);
      rejectedAlike++;
      continue;
    }
    const keyOf = (u: { type: string; id: string }): string => `${u.type}::${u.id}`;
    const eKey = (e: Entity): string => keyOf(e.uid);
    for (let k = 0; k < REQUESTS_PER_CASE; k++) {
      if (k > 0 && g.r.chance(0.25)) {
        // Mutate the store between requests: incremental ancestor maintenance must keep up.
        if (g.r.chance(0.6)) {
          const upd = g.entities().filter(() => g.r.chance(0.2));
          const keys = new Set(upd.map(eKey));
          const merged = [...entities.filter((e) => !keys.has(eKey(e))), ...upd];
          let accepted = true;
          try {
            engine.upsertEntities(upd);
          } catch {
            accepted = false;
          }
          if (accepted) entities = merged;
          else {
            const probe = g.request();
            const w = cedar.isAuthorized({ ...probe, context: probe.context as cedar.Context, policies: { staticPolicies }, entities: merged as cedar.EntityJson[] });
            assert.equal(w.type, 'failure', `seed ${SEED} case ${i}: store refused an upsert that cedar accepts: ${JSON.stringify(upd)}`);
          }
        } else {
          const gone = entities.filter(() => g.r.chance(0.15)).map((e) => e.uid);
          engine.removeEntities(gone);
          const keys = new Set(gone.map(keyOf));
          entities = entities.filter((e) => !keys.has(eKey(e)));
        }
      }
      const req = g.request();
      // Sometimes pass some entities per request (the overlay path), possibly replacing stored ones.
      let overlay: Entity[] = [];
      let all = entities;
      if (g.r.chance(0.3)) {
        const extra = g.entities().filter(() => g.r.chance(0.25));
        overlay = extra;
        const keys = new Set(extra.map((e) => `${e.uid.type}::${e.uid.id}`));
        all = [...entities.filter((e) => !keys.has(`${e.uid.type}::${e.uid.id}`)), ...extra];
      }
      const w = cedar.isAuthorized({
        principal: req.principal,
        action: req.action,
        resource: req.resource,
        context: req.context as cedar.Context,
        policies: { staticPolicies },
        entities: all as cedar.EntityJson[],
      });
      const want: Outcome =
        w.type === 'success'
          ? { rejected: false, decision: w.response.decision, reasons: [...w.response.diagnostics.reason].sort(), errors: w.response.diagnostics.errors.map((e) => e.policyId).sort() }
          : { rejected: true };
      const got: Outcome = fromCompiled(() => engine.authorize(req, overlay));
      if (JSON.stringify(got) !== JSON.stringify(want)) {
        assert.fail(
          `MISMATCH — reproduce with PORTCULLIS_FUZZ_SEED=${SEED} (case ${i}, request ${k})\n` +
            `policies:\n${texts.map((x, j) => `  p${j}: ${x}`).join('\n')}\n` +
            `request: ${JSON.stringify(req)}\noverlay: ${JSON.stringify(overlay)}\nentities: ${JSON.stringify(entities)}\n` +
            `cedar-wasm: ${JSON.stringify(want)}${w.type === 'failure' ? ' ' + JSON.stringify(w.errors.map((e) => e.message)) : ' ' + JSON.stringify(w.type === 'success' ? w.response.diagnostics.errors.map((e) => e.error.message) : [])}\ncompiled:   ${JSON.stringify(got)}`,
        );
      }
      compared++;
      if (want.rejected) rejectedAlike++;
      else {
        if (want.decision === 'allow') allow++;
        if (want.errors.length > 0) withErrors++;
      }
    }
  }
  t.diagnostic(`seed ${SEED}: ${compared} requests over ${CASES} cases agree (${allow} allow, ${withErrors} with policy errors, ${rejectedAlike} rejected alike; ${skippedParse} policy sets rejected alike)`);
});
