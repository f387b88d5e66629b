// Issue 8.1: the decidable "can produce" and overlap rules of identity templates.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isSafeClaimValue, templateCanProduce, templatesOverlap, compileIdentityTemplate } from '../../src/identity/template.ts';
import { checkProducedId, implicitBinding, isReservedId, kindOfId, producerOf, producerProblems } from '../../src/identity/binding.ts';
import type { VerifiedProof } from '../../src/identity/types.ts';

test('templatesOverlap: disjoint only when prefixes differ and neither is a prefix of the other', () => {
  const overlap: [string, string][] = [
    ['workload:github/{repository}', 'workload:github/{project_path}'],
    ['workload:github/{a}', 'workload:git{x}'],
    ['workload:{x}', 'workload:github/{repository}'],
    ['user:{email}', 'user:{sub}'],
    ['user:{email}', 'user:{email}'],
    ['workload:gitlab/{org}/{repo}', 'workload:gitlab/{x}'],
    ['workload:a{x}', 'workload:a{y}/b'],
    ['spiffe://a.test/{path}', 'spiffe://a.test/{p}'],
    ['agent:{a}', 'agent:{b}-x'],
  ];
  const disjoint: [string, string][] = [
    ['workload:github/{repository}', 'workload:gitlab/{x}'],
    ['workload:github/{r}', 'agent:{a}'],
    ['user:{email}', 'workload:{x}'],
    ['workload:github/{r}', 'workload:githab/{r}'],
    ['spiffe://a.test/{p}', 'spiffe://b.test/{p}'],
    ['spiffe://a.test/{p}', 'spiffe://a.testx/{p}'],
    ['workload:ci/{a}', 'workload:cd/{a}'],
  ];
  for (const [a, b] of overlap) {
    assert.equal(templatesOverlap(a, b), true, `${a} ~ ${b}`);
    assert.equal(templatesOverlap(b, a), true, `${b} ~ ${a} (symmetric)`);
  }
  for (const [a, b] of disjoint) {
    assert.equal(templatesOverlap(a, b), false, `${a} / ${b}`);
    assert.equal(templatesOverlap(b, a), false, `${b} / ${a} (symmetric)`);
  }
});

test('disjoint by the rule means no id is produced by both (sampled)', () => {
  const templates = ['workload:github/{r}', 'workload:gitlab/{o}/{r}', 'agent:{a}', 'user:{e}', 'workload:githab/{r}', 'spiffe://a.test/{p}'];
  const ids = ['workload:github/acme/api', 'workload:gitlab/acme/api', 'workload:gitlab/a/b/c', 'agent:bot', 'user:alice@x.test', 'workload:githab/x', 'spiffe://a.test/ns/x', 'workload:github/a:b'];
  for (const a of templates) for (const b of templates) {
    if (a === b || templatesOverlap(a, b)) continue;
    for (const id of ids) assert.ok(!(templateCanProduce(a, id) && templateCanProduce(b, id)), `${id} from both ${a} and ${b}`);
  }
});

test('templateCanProduce: ":" never in a value, "/" only in the last placeholder', () => {
  assert.equal(templateCanProduce('workload:github/{r}', 'workload:github/acme/api'), true);
  assert.equal(templateCanProduce('workload:github/{r}', 'workload:github/acme:api'), false);
  assert.equal(templateCanProduce('workload:github/{r}', 'workload:gitlab/acme'), false);
  assert.equal(templateCanProduce('workload:gitlab/{org}/{repo}', 'workload:gitlab/a/b/c'), true, 'org a, repo b/c');
  assert.equal(templateCanProduce('workload:gitlab/{org}-{repo}', 'workload:gitlab/a/b-c'), false, 'org may not hold /');
  assert.equal(templateCanProduce('workload:github/{r}', 'workload:github/a/../b'), false);
  assert.equal(templateCanProduce('user:{email}', 'user:admin', (v) => v.includes('@')), false);
  assert.equal(templateCanProduce('user:{email}', 'user:a@b.test', (v) => v.includes('@')), true);
  assert.equal(isSafeClaimValue('a/b', { last: false }), false);
  assert.equal(isSafeClaimValue('a/b', { last: true }), true);
  assert.equal(isSafeClaimValue('a:b'), false);
  const t = compileIdentityTemplate('workload:gitlab/{org}/{repo}');
  assert.equal(t({ org: 'a', repo: 'b/c' }), 'workload:gitlab/a/b/c');
  assert.throws(() => t({ org: 'a/b', repo: 'c' }), (e: { reason?: string }) => e.reason === 'bad_identity_claim');
  assert.throws(() => compileIdentityTemplate('workload:{a}{b}'), /adjacent/);
});

test('producers: overlap needs shared_namespace on both; kinds and reserved prefixes', () => {
  const p = (name: string, identity: string, shared = false, kind: 'workload' | 'user' = 'workload') => producerOf({ name, kind: 'oidc', identity, identity_kind: kind, shared_namespace: shared })!;
  assert.equal(producerProblems([p('a', 'workload:github/{r}'), p('b', 'workload:gitlab/{r}')]).length, 0);
  assert.match(producerProblems([p('a', 'workload:github/{r}'), p('b', 'workload:github/{x}')])[0]!.message, /a .* and b/);
  assert.equal(producerProblems([p('a', 'workload:github/{r}', true), p('b', 'workload:github/{x}')]).length, 1);
  assert.equal(producerProblems([p('a', 'workload:github/{r}', true), p('b', 'workload:github/{x}', true)]).length, 0);
  assert.match(producerProblems([p('a', 'workload:{r}', false, 'user')])[0]!.message, /must start with "user:"/);
  assert.match(producerProblems([p('a', 'system:{r}')])[0]!.message, /reserved/);
  const human = producerOf({ name: 'h', kind: 'oidc-human', identity_claim: 'email' })!;
  const humanSub = producerOf({ name: 'hs', kind: 'oidc-human', identity_claim: 'sub' })!;
  assert.equal(producerProblems([human, humanSub]).length, 1, 'two human trusts share user:');
  assert.equal(producerOf({ name: 's', kind: 'spiffe', trust_domain: 'x.test', bundle: 'portcullis' }), undefined, "Portcullis' own CA names identities itself");
  assert.deepEqual(implicitBinding('user:a@b.test', [human, humanSub]), { ambiguous: ['h', 'hs'] });
  assert.deepEqual(implicitBinding('user:a', [human, humanSub]), { trusts: ['hs'] });
  assert.deepEqual(implicitBinding('agent:x', [human, humanSub]), { trusts: [] });
});

test('reserved ids and kinds of ids', () => {
  for (const id of ['user:admin', 'system:reaper', 'system:x/y', 'trust:ci', 'portcullis:x']) assert.ok(isReservedId(id), id);
  for (const id of ['user:admin@x.test', 'user:administrator', 'workload:system:x', 'agent:admin']) assert.ok(!isReservedId(id), id);
  assert.equal(kindOfId('workload:x'), 'workload');
  assert.equal(kindOfId('service-account:x'), 'service-account');
  assert.equal(kindOfId('apikey:x'), undefined);
  assert.equal(kindOfId('spiffe://a/b'), undefined);
  const v = (identityId: string, kind: VerifiedProof['kind']): VerifiedProof => ({ identityId, kind, facts: { method: 'oidc', trust: 't', mfa: false, assurance: 'high', auth_time: 0 }, attributes: {}, defaults: {}, evidence: {} });
  assert.throws(() => checkProducedId(v('user:admin', 'user')), (e: { reason?: string }) => e.reason === 'reserved_identity');
  assert.throws(() => checkProducedId(v('system:reaper', 'workload')), (e: { reason?: string }) => e.reason === 'reserved_identity');
  assert.throws(() => checkProducedId(v('workload:x', 'user')), (e: { reason?: string }) => e.reason === 'identity_kind_mismatch');
  checkProducedId(v('spiffe://a.test/x', 'workload'));
  checkProducedId(v('user:alice@x.test', 'user'));
});
