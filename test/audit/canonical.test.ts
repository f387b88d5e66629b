import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalJson } from '../../src/audit/canonical.ts';
import { recordCanonical, genesisHash, GENESIS } from '../../src/audit/chain.ts';
import { InvalidInput } from '../../src/common/errors.ts';

test('sorts keys recursively and writes no whitespace', () => {
  assert.equal(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: 'x' } }), '{"a":{"c":"x","d":[3,{"y":2,"z":1}]},"b":1}');
});

test('sorts keys by UTF-16 code units like RFC 8785', () => {
  // RFC 8785 §3.2.3 example ordering: "\r" < "1" < "\u0080" < "ö" < "€" < "😀" < "\ufb33"
  const obj = { '\u20ac': 1, '\r': 2, '\ufb33': 3, '1': 4, '\ud83d\ude00': 5, '\u0080': 6, '\u00f6': 7 };
  assert.equal(canonicalJson(obj), '{"\\r":2,"1":4,"\u0080":6,"\u00f6":7,"\u20ac":1,"\ud83d\ude00":5,"\ufb33":3}');
});

test('numbers follow the ECMAScript form', () => {
  // eslint-disable-next-line no-loss-of-precision -- RFC 8785's example, written as the RFC gives it
  assert.equal(canonicalJson([1e21, 1e-7, -0, 0.1, 100, 333333333.33333329]), '[1e+21,1e-7,0,0.1,100,333333333.3333333]');
});

test('omits undefined members, writes null for undefined array items, uses toJSON', () => {
  assert.equal(canonicalJson({ a: undefined, b: [undefined], c: new Date(0) }), '{"b":[null],"c":"1970-01-01T00:00:00.000Z"}');
});

test('refuses values JSON cannot carry', () => {
  assert.throws(() => canonicalJson({ n: NaN }), InvalidInput);
  assert.throws(() => canonicalJson({ n: Infinity }), InvalidInput);
  assert.throws(() => canonicalJson({ n: 1n }), InvalidInput);
  assert.throws(() => canonicalJson({ f: () => 1 }), InvalidInput);
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  assert.throws(() => canonicalJson(cyclic), InvalidInput);
});

test('recordCanonical equals canonicalJson of the same record', () => {
  const base = {
    stream: 'authz',
    seq: 7,
    time: '2026-01-01T12:00:00.000Z',
    type: 'authz.decision',
    actor: 'workload:acme/"api"',
    payload: { z: 1, a: ['é', { q: null }] },
    prev_hash: GENESIS.authz,
  };
  for (const extra of [{}, { boundary: 'platform' }, { subject: 'user:bob', decision: 'deny' }]) {
    const rec = { ...base, ...extra } as Record<string, unknown>;
    const fields = {
      ...base,
      boundary: (rec.boundary as string) ?? null,
      subject: (rec.subject as string) ?? null,
      decision: (rec.decision as string) ?? null,
      payload: canonicalJson(base.payload),
    };
    assert.equal(recordCanonical(fields), canonicalJson(rec));
  }
});

test('genesis hashes differ per stream and are stable', () => {
  assert.notEqual(GENESIS.authn, GENESIS.authz);
  assert.equal(genesisHash('admin'), GENESIS.admin);
  assert.match(GENESIS.admin, /^[0-9a-f]{64}$/);
});
