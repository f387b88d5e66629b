// Issue #14: /openapi.json is complete and lint-clean. Redocly (recommended-strict, redocly.yaml)
// over the document the real app builds, and a completeness check per operation, so a route added
// without operationId, security, input schema or responses fails here.
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { lintFromString, loadConfig } from '@redocly/openapi-core';
import { openapiDocument } from '../../src/server/openapi-document.ts';
import type { OpenApiDocument } from '../../src/server/openapi-document.ts';

const root = join(import.meta.dirname, '..', '..');

/** Public documents with no client error to answer (redocly.yaml turns operation-4xx-response off for these). */
const NO_CLIENT_ERRORS = new Set(['GET /healthz', 'GET /readyz', 'GET /metrics', 'GET /.well-known/jwks.json', 'GET /.well-known/authzen-configuration', 'GET /.well-known/oauth-authorization-server', 'GET /.well-known/openid-configuration', 'GET /.well-known/ssf-configuration', 'GET /v1/audit/keys']);
/** Error answers that are not problem documents, on purpose: RFC 6749 §5.2 token errors; RFC 8935 §2.3 push errors (what transmitters read); readiness says why in its own shape. */
const NOT_PROBLEMS = new Set(['POST /oauth2/token 400', 'POST /v1/signals/events 400', 'GET /readyz 503']);
/** Operations with no input beyond the path: rotating an API key. */
const NO_BODY = new Set(['POST /v1/apikeys/{id}/rotate']);
const PROBLEM_REF = '#/components/schemas/Problem';

type Op = {
  operationId?: string;
  summary?: string;
  tags?: string[];
  security?: Record<string, string[]>[];
  parameters?: { in: string; name: string; schema?: unknown }[];
  requestBody?: { content?: Record<string, { schema?: unknown }> };
  responses?: Record<string, { description?: string; content?: Record<string, { schema?: { $ref?: string } }> }>;
};

/** What each operation lacks; empty when the document is complete. */
export function operationGaps(doc: OpenApiDocument): string[] {
  const gaps: string[] = [];
  const schemes = Object.keys(((doc.components as { securitySchemes?: object } | undefined)?.securitySchemes ?? {}));
  const ids = new Map<string, string>();
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, raw] of Object.entries(ops)) {
      const op = raw as Op;
      const name = `${method.toUpperCase()} ${path}`;
      const lack = (what: string) => gaps.push(`${name}: ${what}`);
      if (!op.operationId) lack('no operationId');
      else if (ids.has(op.operationId)) lack(`operationId ${op.operationId} is also ${ids.get(op.operationId)}`);
      else ids.set(op.operationId, name);
      if (!op.summary) lack('no summary');
      if (!op.tags?.length) lack('no tags');
      if (!Array.isArray(op.security)) lack('no security (public operations say security: [])');
      for (const req of op.security ?? []) for (const s of Object.keys(req)) if (!schemes.includes(s)) lack(`security scheme ${s} is not declared`);
      for (const [, p] of path.matchAll(/\{([^}]+)\}/g)) if (!op.parameters?.some((x) => x.in === 'path' && x.name === p && x.schema)) lack(`path parameter ${p} has no schema`);
      if (['post', 'put', 'patch'].includes(method) && !NO_BODY.has(name) && !Object.values(op.requestBody?.content ?? {}).some((c) => c.schema)) lack('no request body schema');
      const responses = op.responses ?? {};
      const codes = Object.keys(responses);
      const ok = codes.filter((c) => /^2\d\d$/.test(c));
      if (ok.length === 0) lack('no 2xx response');
      for (const c of ok) if (!Object.values(responses[c]!.content ?? {}).some((m) => m.schema)) lack(`${c} has no schema`);
      if (!NO_CLIENT_ERRORS.has(name) && !codes.some((c) => /^4\d\d$/.test(c))) lack('no 4xx response');
      if ((op.security ?? []).length > 0 && !codes.includes('401')) lack('needs a credential but declares no 401');
      if (name !== 'GET /healthz' && !codes.some((c) => /^5\d\d$/.test(c)) && !(name === 'GET /metrics')) lack('no 503 (the store can fail)');
      for (const c of codes.filter((x) => /^[45]\d\d$/.test(x))) {
        if (!responses[c]!.description) lack(`${c} has no description`);
        if (NOT_PROBLEMS.has(`${name} ${c}`)) continue;
        if (responses[c]!.content?.['application/problem+json']?.schema?.$ref !== PROBLEM_REF) lack(`${c} is not an application/problem+json Problem`);
      }
    }
  }
  return gaps;
}

describe('OpenAPI document: complete and lint-clean', () => {
  let doc: OpenApiDocument;
  before(async () => {
    doc = await openapiDocument();
  });

  it('passes Redocly recommended-strict (redocly.yaml) with no error and no warning', async () => {
    const config = await loadConfig({ configPath: join(root, 'redocly.yaml') });
    const problems = await lintFromString({ source: JSON.stringify(doc, null, 2), absoluteRef: join(root, 'openapi.json'), config });
    assert.deepEqual(problems.map((p) => `${p.severity} ${p.ruleId}: ${p.message} at ${p.location[0]?.pointer ?? '?'}`), []);
  });

  it('names, secures, types and answers every operation (errors as problem+json)', () => {
    const count = Object.values(doc.paths).reduce((n, ops) => n + Object.keys(ops).length, 0);
    assert.ok(count >= 60, `${count} operations`);
    assert.deepEqual(operationGaps(doc), []);
  });

  it('shares the response shapes as components (a generated client names them)', () => {
    const schemas = (doc.components as { schemas: Record<string, unknown> }).schemas;
    for (const id of ['Problem', 'Identity', 'Lease', 'Decision', 'ApiKey', 'AuditRecord', 'Grant']) assert.ok(schemas[id], id);
    const identity = (doc.paths['/v1/identities/{id}']!.get as Op).responses!['200']!.content!['application/json']!.schema;
    assert.deepEqual(identity, { $ref: '#/components/schemas/Identity' });
    assert.deepEqual((doc.paths['/v1/identities']!.get as Op).security, [{ session: [] }]);
    assert.deepEqual((doc.paths['/v1/auth/token']!.post as Op).security, []);
    assert.deepEqual((doc.paths['/access/v1/evaluation']!.post as Op).security, [{ session: [] }, { apiKey: [] }]);
    const form = (doc.paths['/oauth2/token']!.post as Op).requestBody!.content!['application/x-www-form-urlencoded']!.schema as { properties: Record<string, unknown> };
    assert.ok(form.properties.grant_type && form.properties.subject_token);
  });

  it('with a metrics token, /metrics declares its own bearer scheme and 401, still lint-clean', async () => {
    const withToken = await openapiDocument('metrics: { token_env: PCX_TEST_METRICS_TOKEN }\n', { PCX_TEST_METRICS_TOKEN: 'm'.repeat(24) });
    const metrics = withToken.paths['/metrics']!.get as Op;
    assert.deepEqual(metrics.security, [{ metrics: [] }]);
    assert.ok(metrics.responses!['401']);
    const config = await loadConfig({ configPath: join(root, 'redocly.yaml') });
    assert.deepEqual(await lintFromString({ source: JSON.stringify(withToken), absoluteRef: join(root, 'openapi.json'), config }), []);
    assert.deepEqual(operationGaps(withToken), []);
  });

  it('the completeness check catches a route added without operationId, security or responses', () => {
    const broken = structuredClone(doc);
    broken.paths['/v1/new-thing'] = { post: { summary: 'new', tags: ['x'] } };
    const gaps = operationGaps(broken);
    for (const want of ['POST /v1/new-thing: no operationId', 'POST /v1/new-thing: no security (public operations say security: [])', 'POST /v1/new-thing: no request body schema', 'POST /v1/new-thing: no 2xx response', 'POST /v1/new-thing: no 4xx response']) {
      assert.ok(gaps.includes(want), `${want} in ${JSON.stringify(gaps)}`);
    }
    const bare = structuredClone(doc);
    const get = bare.paths['/v1/identities/{id}']!.get as Op;
    get.responses!['404'] = { description: 'x', content: { 'application/json': { schema: {} } } };
    assert.deepEqual(operationGaps(bare), ['GET /v1/identities/{id}: 404 is not an application/problem+json Problem']);
  });
});
