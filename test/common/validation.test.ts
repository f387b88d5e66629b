// The one validation library's error formatter: the field path of the bad value and what is wrong,
// a misspelt or forbidden key before what it causes, unions reported by the branch meant.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, duration, forbidden, integer, mapping, section, text, validate, z } from '../../src/common/validation.ts';
import { InvalidInput } from '../../src/common/errors.ts';

const schema = mapping({
  name: text({ pattern: /^[a-z]+$/, hint: 'must be a lowercase name' }),
  ttl: duration({ numbers: 'seconds', max: 3_600_000 }).optional(),
  port: integer(1, 65535).optional(),
  password: forbidden('plain-text passwords are not accepted; use password_env'),
  hosts: z.array(text()).optional(),
  perm: z.union([z.literal('readonly'), z.array(text()), mapping({ preset: z.enum(['r', 'w']) })], { error: 'expected readonly, a list or { preset }' }).optional(),
});

function refusal(raw: unknown, as: 'config' | 'input' = 'config'): { field: unknown; message: string; error: unknown } {
  try {
    validate(schema, raw, { path: 'x', as });
  } catch (e) {
    assert.ok(e instanceof InvalidInput);
    return { field: e.extra.field, message: e.message, error: e };
  }
  assert.fail('expected a refusal');
}

test('the path of the bad value, and what is wrong with it', () => {
  assert.deepEqual(refusal({ name: 'ab', hosts: ['a', 3] }).field, 'x.hosts[1]');
  assert.match(refusal({ name: 'ab', hosts: ['a', 3] }).message, /^x\.hosts\[1\]: must be a string, got number 3$/);
  assert.match(refusal({ name: 'AB' }).message, /^x\.name: must be a lowercase name$/);
  assert.match(refusal({ name: '  ' }).message, /x\.name: must be a non-empty string/);
  assert.match(refusal({ name: 'ab', ttl: 'soon' }).message, /x\.ttl: "soon" is not a duration/);
  assert.match(refusal({ name: 'ab', ttl: '2h' }).message, /x\.ttl: must be at most 1h/);
  assert.match(refusal({ name: 'ab', port: 70000 }).message, /x\.port: must be an integer from 1 to 65535, got number 70000/);
  assert.match(refusal({}).message, /x\.name: is required/);
  assert.match(refusal(null).message, /^x: must be a mapping, got nothing$/);
});

test('an unknown or forbidden key is reported first, listing the known ones', () => {
  const r = refusal({ nme: 'ab' });
  assert.equal(r.field, 'x.nme');
  assert.match(r.message, /unknown field \(expected one of: name, ttl, port, password, hosts, perm\) \(also x\.name: is required\)/);
  const p = refusal({ password: 'hunter2' });
  assert.equal(p.field, 'x.password');
  assert.match(p.message, /plain-text passwords are not accepted/);
  assert.ok(p.error instanceof ConfigError);
  assert.ok(!(refusal({ password: 'x' }, 'input').error instanceof ConfigError));
});

test('a union is reported by the branch that got furthest, else by its own wording', () => {
  assert.equal(refusal({ name: 'ab', perm: { preset: 'z' } }).field, 'x.perm.preset');
  assert.equal(refusal({ name: 'ab', perm: ['ok', ''] }).field, 'x.perm[1]');
  assert.match(refusal({ name: 'ab', perm: 5 }).message, /^x\.perm: expected readonly, a list or \{ preset \}$/);
});

test('section: a YAML key with no value counts as left out; mapping refuses it', () => {
  assert.deepEqual(validate(section({ a: text().optional(), b: text() }), { a: null, b: 'x' }), { b: 'x' });
  assert.throws(() => validate(mapping({ a: text().optional() }), { a: null }), /a: must be a string, got nothing/);
});
