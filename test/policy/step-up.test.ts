// Step-up requirements read from Cedar annotations on forbids.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StepUpRequired, stepUpFor, stepUpIndex } from '../../src/policy/step-up.ts';

const index = stepUpIndex([
  { id: 'mfa-300', text: '@id("mfa-300") @stepUp("mfa") @maxAuthAge("300") forbid (principal, action, resource) unless { context.authn.mfa };' },
  { id: 'age-60', text: '@maxAuthAge("60") forbid (principal, action, resource) when { context.authn.authAgeSeconds > 60 };' },
  { id: 'mfa-only', text: '@stepUp("mfa") forbid (principal, action, resource) unless { context.authn.mfa };' },
  { id: 'plain', text: 'forbid (principal, action, resource) when { context.request.hour > 22 };' },
  { id: 'permit-annotated', text: '@stepUp("mfa") permit (principal, action, resource);' },
  { id: 'bad-age', text: '@stepUp("x") @maxAuthAge("soon") forbid (principal, action, resource);' },
]);

test('index: only forbids with usable annotations', () => {
  assert.deepEqual([...index.keys()].sort(), ['age-60', 'mfa-300', 'mfa-only']);
  assert.deepEqual(index.get('mfa-300'), { mfa: true, max_age: 300 });
  assert.deepEqual(index.get('age-60'), { mfa: false, max_age: 60 });
});

test('stepUpFor: every determining forbid must be fixable by a fresh login; requirements merge', () => {
  assert.deepEqual(stepUpFor({ decision: 'deny', reasons: ['mfa-300'] }, index), { mfa: true, max_age: 300 });
  assert.deepEqual(stepUpFor({ decision: 'deny', reasons: ['mfa-only', 'age-60'] }, index), { mfa: true, max_age: 60 });
  assert.deepEqual(stepUpFor({ decision: 'deny', reasons: ['mfa-only'] }, index), { mfa: true });
  assert.equal(stepUpFor({ decision: 'deny', reasons: ['mfa-300', 'plain'] }, index), undefined);
  assert.equal(stepUpFor({ decision: 'deny', reasons: [] }, index), undefined, 'no permit matched: a login will not help');
  assert.equal(stepUpFor({ decision: 'allow', reasons: ['x'] }, index), undefined);
});

test('StepUpRequired: stable code, 401, names what is required, RFC 9470 header', () => {
  const e = new StepUpRequired({ mfa: true, max_age: 300 }, { decision_id: 'd1' });
  assert.equal(e.code, 'step_up_required');
  assert.equal(e.status, 401);
  assert.deepEqual(e.extra, { required: { mfa: true, max_age: 300 }, decision_id: 'd1' });
  assert.equal(e.message, 'step-up authentication required: multi-factor authentication and a login within the last 300 s');
  assert.equal(e.wwwAuthenticate('urn:mfa'), `Bearer error="insufficient_user_authentication", error_description="${e.message}", acr_values="urn:mfa", max_age=300`);
});
