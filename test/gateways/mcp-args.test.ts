// The MCP gateway's argument mapping to Cedar (one McpCall tag per JSON path, refusals for what
// cannot be mapped faithfully) and the redaction of recorded inputs and outputs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { argumentTags, redact, UnmappableArgument } from '../../src/gateways/mcp/args.ts';

const LIM = { maxDepth: 3, maxTags: 20, maxString: 100 };

test('each JSON path becomes one typed tag', () => {
  assert.deepEqual(argumentTags({ path: '/tmp/a', n: 42, f: 1.25, g: 0.123456, ok: true, none: null, list: ['x', 2], opts: { mode: 'r' } }, LIM), {
    path: { kind: 'string', str: '/tmp/a' },
    n: { kind: 'long', long: 42 },
    f: { kind: 'decimal', decimal: { __extn: { fn: 'decimal', arg: '1.25' } } },
    g: { kind: 'number', str: '0.123456' },
    ok: { kind: 'bool', bool: true },
    none: { kind: 'null' },
    list: { kind: 'array', size: 2 },
    'list.0': { kind: 'string', str: 'x' },
    'list.1': { kind: 'long', long: 2 },
    opts: { kind: 'object', size: 1 },
    'opts.mode': { kind: 'string', str: 'r' },
  });
  assert.deepEqual(argumentTags(undefined, LIM), {});
  assert.deepEqual(argumentTags({ big: 1e15 }, LIM), { big: { kind: 'long', long: 1e15 } });
});

test('what cannot be mapped faithfully is refused, naming the path', () => {
  const refuses = (args: unknown, re: RegExp) => assert.throws(() => argumentTags(args, LIM), (e: unknown) => e instanceof UnmappableArgument && re.test(e.message));
  refuses({ a: { b: { c: { d: 1 } } } }, /argument a\.b\.c\.d cannot be mapped.*nested deeper than 3/);
  refuses({ n: 2 ** 60 }, /argument n .*±2\^53/);
  refuses({ s: 'x'.repeat(101) }, /longer than 100/);
  refuses({ 'a.b': 1 }, /key that is not/);
  refuses({ list: Array.from({ length: 30 }, (_, i) => i) }, /more than 20 values/);
  refuses([1, 2], /must be an object/);
  refuses('text', /must be an object/);
});

test('redaction: named keys at any depth, patterns in strings, a size cap', () => {
  const rules = { keys: new Set(['password', 'token']), patterns: [/AKIA[0-9A-Z]{16}/g] };
  assert.deepEqual(redact({ user: 'a', Password: 'p', nested: [{ token: 't', note: 'key AKIAABCDEFGHIJKLMNOP here' }] }, rules, 1000), {
    user: 'a',
    Password: '[redacted]',
    nested: [{ token: '[redacted]', note: 'key [redacted] here' }],
  });
  const cut = redact({ text: 'x'.repeat(500) }, rules, 100) as { truncated: boolean; head: string };
  assert.equal(cut.truncated, true);
  assert.equal(cut.head.length, 100);
});
