// Issue #9 item 2: authorization lives in the broker, not in the transports. The HTTP adapter and
// the CLI reach the broker only through its public surface (src/broker/index.ts): no admin check,
// no domain service, no broker part of their own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = join(import.meta.dirname, '..', '..');

function files(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => relative(root, join(e.parentPath, e.name)));
}

const transports = [...files('src/server'), ...files('src/cli')];

test('no admin decision is made in the transports (requireAllowed, opaque ids, allowedTo)', () => {
  assert.ok(transports.length > 10);
  const offending = transports.filter((f) => /\brequireAllowed\b|\bopaqueId\b|\ballowedTo\b/.test(readFileSync(join(root, f), 'utf8')));
  assert.deepEqual(offending, []);
});

test('the transports import the broker only through src/broker/index.ts (never its parts or internals.ts)', () => {
  const offending: string[] = [];
  for (const f of transports) {
    for (const m of readFileSync(join(root, f), 'utf8').matchAll(/from '([^']*\/broker\/[^']*)'/g)) {
      if (!m[1]!.endsWith('/broker/index.ts')) offending.push(`${f}: ${m[1]}`);
    }
  }
  assert.deepEqual(offending, []);
});

test('nothing in src reaches the broker internals but the Broker itself', () => {
  const offending = files('src')
    .filter((f) => f !== 'src/broker/index.ts' && f !== 'src/broker/internals.ts')
    .filter((f) => /broker\/internals\.ts'|from '\.\/internals\.ts'/.test(readFileSync(join(root, f), 'utf8')));
  assert.deepEqual(offending, []);
});
