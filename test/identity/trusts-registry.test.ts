// The trust registry: kinds listed once, AuthnMethod derived from them, config schemas that
// document themselves, binding and config loading dispatched by kind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { z } from '../../src/common/validation.ts';
import { AUTHN_METHODS, TRUST_ENTRY, TRUSTS, trustKind } from '../../src/identity/trusts/registry.ts';
import type { AuthnMethod } from '../../src/identity/types.ts';
import { producerOf } from '../../src/identity/binding.ts';
import { CONFIG_FILE } from '../../src/config/load.ts';

test('the kinds and the authn methods they yield; AuthnMethod adds the built-in proofs', () => {
  assert.deepEqual(TRUSTS.map((t) => t.kind), ['oidc', 'spiffe', 'oidc-human']);
  assert.deepEqual([...AUTHN_METHODS].sort(), ['api-key', 'bootstrap', 'oidc', 'spiffe-jwt', 'spiffe-x509', 'ssh-certificate']);
  const m: AuthnMethod = 'spiffe-x509';
  assert.ok(AUTHN_METHODS.includes(m));
  for (const t of TRUSTS) assert.equal(trustKind(t.kind), t);
  assert.equal(trustKind('saml'), undefined);
});

test('every trust config schema, and the whole file, produce JSON Schema', () => {
  for (const t of TRUSTS) {
    const s = z.toJSONSchema(t.config, { io: 'input' }) as { properties?: Record<string, unknown> };
    assert.ok(s.properties?.name && s.properties.kind, t.kind);
  }
  const entry = z.toJSONSchema(TRUST_ENTRY, { io: 'input' }) as { anyOf: unknown[] };
  assert.equal(entry.anyOf.length, TRUSTS.length);
  const file = z.toJSONSchema(CONFIG_FILE, { io: 'input', unrepresentable: 'any' }) as { properties: Record<string, unknown> };
  for (const k of ['trusts', 'targets', 'access', 'identities', 'listen', 'metrics']) assert.ok(file.properties[k], k);
});

test('binding asks the kind for the ids it can produce', () => {
  assert.equal(producerOf({ name: 'ci', kind: 'oidc', identity: 'workload:github/{repository}', identity_kind: 'workload' })?.template, 'workload:github/{repository}');
  assert.equal(producerOf({ name: 'sso', kind: 'oidc-human', identity_claim: 'sub' })?.template, 'user:{sub}');
  assert.equal(producerOf({ name: 's', kind: 'spiffe', trust_domain: 'x.test', bundle: '/b.json' })?.template, 'spiffe://x.test/{path}');
  assert.equal(producerOf({ name: 's', kind: 'spiffe', trust_domain: 'x.test', bundle: 'portcullis' }), undefined);
  assert.equal(producerOf({ name: 'k', kind: 'unknown' }), undefined);
});
