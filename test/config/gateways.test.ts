// The `gateways:` section (issue #11): each entry by its kind's schema, checked against the target
// it fronts; every error names the field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../src/config/load.ts';
import { configFieldOf } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'pcx-config-gw-'));
writeFileSync(join(dir, 'p.cedar'), 'permit(principal, action, resource);');

const targets = `
policies: ./p.cedar
targets:
  - { name: db1, kind: postgres, host: 127.0.0.1, database: d, admin: { user: a, password_env: PW }, permissions: { readonly: readonly }, max_ttl: 1h }
  - { name: db2, kind: postgres, host: 127.0.0.1, database: d, admin: { user: a, password_env: PW }, permissions: { readonly: readonly, readwrite: readwrite }, max_ttl: 1h }
  - { name: api, kind: api, audience: https://x.test, scopes: [a], max_ttl: 30m }
`;
const gw = (entries: string) => `${targets}gateways:\n${entries}`;
const fieldOf = (yaml: string) => configFieldOf(yaml, dir);

test('a postgres gateway loads with its defaults; the only permission set of its target is the default', () => {
  const { config } = parseConfig(gw('  - { name: g1, kind: postgres, listen: { port: 6432 }, target: db1 }\n'), dir);
  assert.deepEqual(config.gateways, [
    { name: 'g1', kind: 'postgres', listen: { host: '127.0.0.1', port: 6432 }, target: 'db1', permission: 'readonly', search_path: ['public'], record_raw_statements: false, record_results: false, max_message_bytes: 8 << 20, auth_timeout_ms: 30_000 },
  ]);
  assert.deepEqual(parseConfig(targets, dir).config.gateways, []);
});

test('mistakes name their field', () => {
  const cases: [string, string][] = [
    ['  - { name: g1, kind: telnet, listen: { port: 1 }, target: db1 }\n', 'gateways[0].kind'],
    ['  - { name: G1, kind: postgres, listen: { port: 1 }, target: db1 }\n', 'gateways[0].name'],
    ['  - { name: g1, kind: postgres, listen: { port: 70000 }, target: db1 }\n', 'gateways[0].listen.port'],
    ['  - { name: g1, kind: postgres, listen: { port: 1 }, target: nope }\n', 'gateways[0].target'],
    ['  - { name: g1, kind: postgres, listen: { port: 1 }, target: api }\n', 'gateways[0].target'],
    ['  - { name: g1, kind: postgres, listen: { port: 1 }, target: db2 }\n', 'gateways[0].permission'],
    ['  - { name: g1, kind: postgres, listen: { port: 1 }, target: db2, permission: admin }\n', 'gateways[0].permission'],
    ['  - { name: g1, kind: postgres, listen: { port: 1 }, target: db1, sarch_path: [x] }\n', 'gateways[0]'],
    ['  - { name: g1, kind: postgres, listen: { port: 1 }, target: db1, search_path: ["x; DROP"] }\n', 'gateways[0].search_path[0]'],
    ['  - { name: g1, kind: postgres, listen: { port: 1 }, target: db1 }\n  - { name: g1, kind: postgres, listen: { port: 2 }, target: db1 }\n', 'gateways[1].name'],
    ['  - { name: g1, kind: postgres, listen: { port: 1 }, target: db1 }\n  - { name: g2, kind: postgres, listen: { port: 1 }, target: db1 }\n', 'gateways[1].listen'],
  ];
  for (const [yaml, field] of cases) assert.match(fieldOf(gw(yaml)), new RegExp(`^${field.replace(/[[\].]/g, (c) => `\\${c}`)}`), yaml);
});
