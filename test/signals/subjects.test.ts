// RFC 9493 subject identifiers resolve only among the identities bound to the transmitter's trust.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveSubject, type SubjectTrust } from '../../src/signals/subjects.ts';
import { SetRefused } from '../../src/signals/set.ts';

const identities = new Map([
  ['user:alice@example.com', { id: 'user:alice@example.com', trust: 'sso', bound_trusts: ['sso'] }],
  ['user:00u123', { id: 'user:00u123', trust: 'sso-sub', bound_trusts: ['sso-sub'] }],
  ['user:bob@example.com', { id: 'user:bob@example.com', trust: 'other-sso', bound_trusts: ['other-sso'] }],
  ['spiffe://prod.example/payments', { id: 'spiffe://prod.example/payments', trust: null, bound_trusts: ['mesh'] }],
  ['workload:github/acme/api', { id: 'workload:github/acme/api', trust: null, bound_trusts: ['ci'] }],
]);
const dir = { get: (id: string) => identities.get(id) };
const sso: SubjectTrust = { name: 'sso', issuer: 'https://idp.example', template: 'user:{email}' };
const ssoSub: SubjectTrust = { name: 'sso-sub', issuer: 'https://idp.example', template: 'user:{sub}' };
const mesh: SubjectTrust = { name: 'mesh', template: 'spiffe://prod.example/{path}' };
const ci: SubjectTrust = { name: 'ci', issuer: 'https://ci.example', template: 'workload:github/{repository}' };

const refusedWith = (err: string, fn: () => unknown) => assert.throws(fn, (e: unknown) => e instanceof SetRefused && e.err === err);

test('subjects: each format resolves within its trust', () => {
  assert.equal(resolveSubject({ format: 'email', email: 'Alice@Example.com' }, sso, dir).identityId, 'user:alice@example.com');
  assert.equal(resolveSubject({ format: 'iss_sub', iss: 'https://idp.example', sub: '00u123' }, ssoSub, dir).identityId, 'user:00u123');
  assert.equal(resolveSubject({ format: 'uri', uri: 'spiffe://prod.example/payments' }, mesh, dir).identityId, 'spiffe://prod.example/payments');
  assert.equal(resolveSubject({ format: 'opaque', id: 'workload:github/acme/api' }, ci, dir).identityId, 'workload:github/acme/api');
  const complex = resolveSubject({ format: 'complex', user: { format: 'email', email: 'alice@example.com' }, session: { format: 'opaque', id: 's-1' } }, sso, dir);
  assert.deepEqual(complex, { identityId: 'user:alice@example.com', format: 'complex/email', session: { format: 'opaque', id: 's-1' } });
  const aliases = resolveSubject({ format: 'aliases', identifiers: [{ format: 'email', email: 'nobody@example.com' }, { format: 'email', email: 'alice@example.com' }] }, sso, dir);
  assert.equal(aliases.identityId, 'user:alice@example.com');
});

test('subjects: an identity of another trust, another issuer or nobody is access_denied', () => {
  refusedWith('access_denied', () => resolveSubject({ format: 'email', email: 'bob@example.com' }, sso, dir));
  refusedWith('access_denied', () => resolveSubject({ format: 'opaque', id: 'user:bob@example.com' }, sso, dir));
  refusedWith('access_denied', () => resolveSubject({ format: 'iss_sub', iss: 'https://evil.example', sub: '00u123' }, ssoSub, dir));
  refusedWith('access_denied', () => resolveSubject({ format: 'iss_sub', iss: 'https://idp.example', sub: '00u123' }, sso, dir));
  refusedWith('access_denied', () => resolveSubject({ format: 'uri', uri: 'spiffe://prod.example/payments' }, ci, dir));
  refusedWith('access_denied', () => resolveSubject({ format: 'complex', session: { format: 'opaque', id: 's-1' } }, sso, dir));
  refusedWith('access_denied', () => resolveSubject({ format: 'aliases', identifiers: [{ format: 'email', email: 'alice@example.com' }, { format: 'opaque', id: 'user:00u123' }] }, { ...sso, name: 'sso' }, { get: (id) => (id === 'user:00u123' ? { id, trust: 'sso', bound_trusts: ['sso'] } : dir.get(id)) }));
  // A template placeholder is never filled with something that would name another id shape.
  refusedWith('access_denied', () => resolveSubject({ format: 'iss_sub', iss: 'https://idp.example', sub: 'a b' }, ssoSub, dir));
});

test('subjects: what is not a subject is invalid_request', () => {
  refusedWith('invalid_request', () => resolveSubject(undefined, sso, dir));
  refusedWith('invalid_request', () => resolveSubject({ email: 'alice@example.com' }, sso, dir));
  refusedWith('invalid_request', () => resolveSubject({ format: 'made-up' }, sso, dir));
  refusedWith('invalid_request', () => resolveSubject({ format: 'complex', user: { format: 'complex', user: { format: 'complex', user: {} } } }, sso, dir));
});
