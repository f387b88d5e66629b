// The issuer registry: every kind's schemas produce JSON Schema, a request field goes only to the
// kinds that read it, and a new kind's Cedar additions compose with the built-in schema.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { jsonSchemaOf, z } from '../../src/common/validation.ts';
import { CREDENTIAL_REQUEST, ISSUERS, issuerKind, requestParams } from '../../src/credentials/issuers/registry.ts';
import { TARGETS } from '../../src/credentials/config.ts';
import { BUILTIN_SCHEMA, builtinSchema } from '../../src/policy/schema.ts';
import { InvalidInput } from '../../src/common/errors.ts';

test('each kind is listed once and its config schema documents itself as JSON Schema', () => {
  assert.deepEqual(ISSUERS.map((p) => p.kind), ['postgres', 'ssh', 'ssh-host', 'api', 'spiffe-x509']);
  for (const p of ISSUERS) {
    const s = z.toJSONSchema(p.config, { io: 'input' }) as { properties?: Record<string, unknown>; required?: string[] };
    assert.ok(s.properties?.kind && s.properties.max_ttl, `${p.kind}: kind and max_ttl documented`);
    assert.ok(s.required?.includes('name'), `${p.kind}: name required`);
    assert.equal(issuerKind(p.kind), p);
  }
  const list = jsonSchemaOf(TARGETS) as { items: { oneOf?: unknown[]; anyOf?: unknown[] } };
  assert.equal((list.items.oneOf ?? list.items.anyOf)!.length, ISSUERS.length);
});

test('POST /v1/credentials: the common fields and every kind\'s own; params by the target\'s kind', () => {
  const body = jsonSchemaOf(CREDENTIAL_REQUEST) as { properties: Record<string, unknown>; required: string[]; additionalProperties: boolean };
  assert.deepEqual(Object.keys(body.properties).sort(), ['csr', 'grant_id', 'permission', 'public_key', 'reason', 'scopes', 'target', 'ttl']);
  assert.deepEqual(body.required.sort(), ['reason', 'target']);
  assert.equal(body.additionalProperties, false);
  const req = { target: 't', reason: 'r' };
  assert.deepEqual(requestParams('ssh', { ...req, public_key: 'ssh-ed25519 AAAA' }), { publicKey: 'ssh-ed25519 AAAA' });
  assert.deepEqual(requestParams('spiffe-x509', { ...req, public_key: 'PEM', csr: 'CSR' }), { publicKeyPem: 'PEM', csr: 'CSR' });
  assert.deepEqual(requestParams('api', { ...req, scopes: ['a'] }), { scopes: ['a'] });
  assert.deepEqual(requestParams('postgres', { ...req, permission: 'readonly' }), {});
  // A field only other kinds read is refused, naming it (not silently dropped).
  assert.throws(() => requestParams('ssh', { ...req, csr: 'CSR' }), (e: InvalidInput) => e.extra.field === 'csr' && /spiffe-x509/.test(e.message));
  assert.throws(() => requestParams('postgres', { ...req, scopes: ['a'] }), (e: InvalidInput) => e.extra.field === 'scopes');
  // An unknown target: the credential service answers 404 for it, nothing to map.
  assert.deepEqual(requestParams(undefined, { ...req, csr: 'CSR' }), {});
});

test('a new kind\'s Cedar additions compose with the built-in schema; credential.issue applies to its resource type', () => {
  assert.equal(builtinSchema(), BUILTIN_SCHEMA);
  const k8s = { kind: 'k8s-token', resourceType: 'Cluster', cedar: '\nentity Cluster { boundary: String, environment: String } tags String;\n' };
  const schema = builtinSchema([...ISSUERS, k8s]);
  assert.equal(cedar.checkParseSchema(schema).type, 'success');
  const json = cedar.schemaToJson(schema);
  assert.equal(json.type, 'success');
  const issue = (json as { json: Record<string, { actions: Record<string, { appliesTo?: { resourceTypes?: string[] } }> }> }).json['']!.actions['credential.issue']!;
  assert.ok(issue.appliesTo?.resourceTypes?.includes('Cluster'));
  for (const p of ISSUERS) assert.ok(issue.appliesTo?.resourceTypes?.includes(p.resourceType), p.kind);
  assert.match(schema, /kind: String, +\/\/ postgres \| ssh \| ssh-host \| api \| spiffe-x509 \| k8s-token/);
});
