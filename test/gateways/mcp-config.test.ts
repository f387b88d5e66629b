// A `kind: mcp` gateway entry: its defaults, the resource identifier taken from its api target's
// audience, and mistakes that name their field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../src/config/load.ts';
import { configFieldOf } from '../config/helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'pcx-config-mcp-'));
writeFileSync(join(dir, 'p.cedar'), 'permit(principal, action, resource);');
const base = `
policies: ./p.cedar
resources:
  - { type: Api, id: tools, boundary: application, environment: prod }
  - { type: Api, id: files, boundary: application, environment: prod }
targets:
  - { name: tools, kind: api, audience: "https://mcp.example.test/mcp", scopes: [mcp], max_ttl: 30m }
  - { name: files, kind: api, audience: "https://files.test", scopes: [files], max_ttl: 30m }
  - { name: db1, kind: postgres, host: 127.0.0.1, database: d, admin: { user: a, password_env: PW }, permissions: { readonly: readonly }, max_ttl: 1h }
gateways:
`;
const up = 'upstreams: [{ name: files, url: "http://127.0.0.1:9000/mcp" }]';

test('an mcp gateway loads with its defaults; its resource is the target audience', () => {
  const { config } = parseConfig(`${base}  - { name: m1, kind: mcp, listen: { port: 8443 }, target: tools, ${up} }\n`, dir, { PW: 'x' });
  const g = config.gateways![0] as unknown as Record<string, unknown>;
  assert.equal(g.resource, 'https://mcp.example.test/mcp');
  assert.equal(g.path, '/mcp');
  assert.equal(g.approval_timeout_ms, 120_000);
  assert.equal(g.max_message_bytes, 1 << 20);
  assert.deepEqual(g.arguments, { max_depth: 8, max_values: 256, max_string: 65_536 });
  assert.ok((g.redact_keys as string[]).includes('password'));
});

test('mistakes name their field', () => {
  const cases: [string, string][] = [
    [`  - { name: m1, kind: mcp, listen: { port: 1 }, target: db1, ${up} }\n`, 'gateways[0].target'],
    ['  - { name: m1, kind: mcp, listen: { port: 1 }, target: tools, upstreams: [] }\n', 'gateways[0].upstreams'],
    ['  - { name: m1, kind: mcp, listen: { port: 1 }, target: tools, upstreams: [{ name: Files, url: "http://x/mcp" }] }\n', 'gateways[0].upstreams[0].name'],
    ['  - { name: m1, kind: mcp, listen: { port: 1 }, target: tools, upstreams: [{ name: f, url: "ftp://x/mcp" }] }\n', 'gateways[0].upstreams[0].url'],
    ['  - { name: m1, kind: mcp, listen: { port: 1 }, target: tools, upstreams: [{ name: f, url: "http://x/mcp", target: files }] }\n', 'gateways[0].upstreams[0].scopes'],
    [`  - { name: m1, kind: mcp, listen: { port: 1 }, target: tools, ${up}, tools: { other/x: [writes] } }\n`, 'gateways[0].tools.other/x'],
    [`  - { name: m1, kind: mcp, listen: { port: 1 }, target: tools, ${up}, approval_timeout: 1h }\n`, 'gateways[0].approval_timeout'],
    [`  - { name: m1, kind: mcp, listen: { port: 1 }, target: tools, ${up}, redact_patterns: ["("] }\n`, 'gateways[0].redact_patterns[0]'],
    [`  - { name: m1, kind: mcp, listen: { port: 1 }, target: tools, ${up}, upstream: x }\n`, 'gateways[0].upstream'],
  ];
  for (const [entry, field] of cases) assert.equal(configFieldOf(base + entry, dir), field, entry);
});
