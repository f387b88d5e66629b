// Issue #9 item 4: /openapi.json is generated from the zod schemas; every operation is named and
// declares its input, its 2xx response and its problem+json errors, and real responses match.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness } from '../integration/harness.ts';
import type { Harness } from '../integration/harness.ts';
import { conformance } from './openapi-conformance.ts';

type Op = { operationId?: string; responses?: Record<string, { content?: Record<string, { schema?: unknown }> }> };

describe('/openapi.json', () => {
  let h: Harness;
  let doc: { paths: Record<string, Record<string, Op>>; components: Record<string, unknown> };

  before(async () => {
    h = await startHarness();
    doc = (await h.get('/openapi.json')).body;
  });
  after(() => h.close());

  const operations = () => Object.entries(doc.paths).flatMap(([path, ops]) => Object.entries(ops).map(([method, op]) => ({ path, method, op })));

  it('names every operation once, and declares a 2xx response schema and error responses for each', () => {
    const ops = operations();
    assert.ok(ops.length >= 40, `${ops.length} operations`);
    const ids = ops.map((o) => o.op.operationId);
    assert.deepEqual(ops.filter((o) => !o.op.operationId).map((o) => `${o.method} ${o.path}`), []);
    assert.equal(new Set(ids).size, ids.length, 'operationIds are unique');
    for (const { path, method, op } of ops) {
      const codes = Object.keys(op.responses ?? {});
      const ok = codes.filter((c) => /^2\d\d$/.test(c));
      assert.ok(ok.length > 0 && ok.every((c) => Object.values(op.responses![c]!.content ?? {}).some((m) => m.schema !== undefined)), `${method} ${path}: 2xx schema`);
      // The process is up, or there is no answer at all; /metrics refuses only with metrics.token_env set.
      if (path === '/healthz' || path === '/metrics') continue;
      const errs = codes.filter((c) => /^[45]\d\d$/.test(c));
      assert.ok(errs.length > 0, `${method} ${path}: error responses`);
      for (const c of errs) assert.ok(op.responses![c]!.content, `${method} ${path} ${c}: a schema`);
    }
  });

  it('documents the problem+json shape on errors and the request schemas', () => {
    const issue = doc.paths['/v1/credentials']!.post! as Op & { requestBody?: { content: Record<string, { schema: { properties: Record<string, unknown>; additionalProperties?: boolean } }> } };
    const ref = (issue.responses!['403']!.content!['application/problem+json']!.schema as { $ref: string }).$ref;
    const p = (doc.components.schemas as Record<string, unknown>)[ref.replace('#/components/schemas/', '')] as { properties: Record<string, unknown> };
    for (const k of ['type', 'title', 'status', 'code', 'detail']) assert.ok(p.properties[k], k);
    const body = issue.requestBody!.content['application/json']!.schema;
    assert.ok(body.properties.target && body.properties.reason);
    assert.equal(body.additionalProperties, false);
  });

  const check = (res: { status: number; body: unknown; headers: Headers }, path: string, method: string) => conformance(doc)(res, path, method);

  it('real responses validate against their declared schemas', async () => {
    const admin = await h.admin();
    const api = await h.loginCi();
    check(await h.get('/v1/identities', admin), '/v1/identities', 'get');
    check(await h.get('/v1/keys', admin), '/v1/keys', 'get');
    check(await h.get('/v1/audit/verify', admin), '/v1/audit/verify', 'get');
    check(await h.get('/v1/targets', admin), '/v1/targets', 'get');
    check(await h.post('/v1/authorize', { action: 'db.select', resource: { type: 'Database', id: 'analytics' } }, api), '/v1/authorize', 'post');
    check(await h.get('/v1/leases?mine=true', api), '/v1/leases', 'get');
    check(await h.get('/v1/policies', admin), '/v1/policies', 'get');
    check(await h.get('/v1/audit/authz?limit=5', admin), '/v1/audit/{stream}', 'get');
    // Errors: problem documents.
    check(await h.post('/v1/authorize', { action: 'db.select' }, api), '/v1/authorize', 'post');
    check(await h.get('/v1/keys', api), '/v1/keys', 'get');
    check(await h.get('/v1/identities/workload:nobody', admin), '/v1/identities/{id}', 'get');
  });
});
