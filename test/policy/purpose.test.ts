// Issue #8 item 8: what counts as a purpose. Saying something takes a letter or digit (any
// script); whitespace, invisible and format characters, combining marks on nothing, punctuation
// and emoji alone are no purpose, and are dropped from the decision context.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cleanPurpose, meaningful } from '../../src/policy/purpose.ts';

const NOT_A_PURPOSE = [
  '', ' ', '\t\n', '\u00a0', '\u3000', '\u200b', '\u2060\ufeff', '\u3164', '\u2800', '\u00ad',
  '\u200f\u202e', '\u0301', '\u0301\u0301', '\u3000\u0301', '\u20dd', // direction marks, combining marks alone
  '-', '...', '#', '?!', '()', '🔥', '\u{1F44D}\u{1F3FD}', '\u2764\ufe0f', '—',
];
const PURPOSES = ['x', 'INC-1', 'ß', '٣', '修复', 'é', 'e\u0301', '  nightly report  ', '🔥 fire in orders', '1'];

test('no letter or digit: no purpose', () => {
  for (const t of NOT_A_PURPOSE) assert.equal(meaningful(t), undefined, JSON.stringify(t));
  for (const t of [undefined, null, 42, {}, ['x']]) assert.equal(meaningful(t), undefined, JSON.stringify(t));
});

test('a letter or digit in any script is a purpose, trimmed', () => {
  for (const t of PURPOSES) assert.equal(meaningful(t), t.trim(), JSON.stringify(t));
});

test('cleanPurpose drops what is no purpose, field by field', () => {
  assert.deepEqual(cleanPurpose({ reason: '...', ticket: 'OPS-7' }), { ticket: 'OPS-7' });
  assert.deepEqual(cleanPurpose({ reason: 'backfill', ticket: '\u{1F525}' }), { reason: 'backfill' });
  assert.deepEqual(cleanPurpose({ reason: '\u0301', ticket: '-' }), {});
  assert.deepEqual(cleanPurpose(undefined), {});
});
