// Hostile or mistaken configuration: every error names the path of the bad field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfigFile, parseConfig } from '../../src/config/load.ts';
import { InvalidInput } from '../../src/common/errors.ts';
import { configFieldOf } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'pcx-config-'));
writeFileSync(join(dir, 'p.cedar'), 'permit(principal, action, resource);');

const base = `
trusts:
  - name: ci
    kind: oidc
    issuer: https://token.actions.githubusercontent.com
    jwks_uri: https://token.actions.githubusercontent.com/.well-known/jwks
    audiences: [portcullis]
    algorithms: [RS256]
    identity: "workload:github/{repository}"
identities:
  - { id: workload:github/acme/api, kind: workload, boundary: application, environment: prod, owner: team:payments }
resources:
  - { type: Database, id: orders, boundary: application, environment: prod }
policies: ./p.cedar
`;

const fieldOf = (yaml: string): string => configFieldOf(yaml, dir);

test('a valid file loads with defaults', () => {
  const { config, warnings } = parseConfig(base, dir);
  assert.equal(config.engine, 'compiled');
  assert.deepEqual(config.boundaries, ['application', 'platform', 'infrastructure', 'ai-platform']);
  assert.equal(config.session.ttl_ms, 10 * 60_000);
  assert.equal(config.audit.fail_closed, true);
  assert.deepEqual(config.policies, [join(dir, 'p.cedar')]);
  assert.equal(config.trusts[0]!.kind, 'oidc');
  assert.deepEqual(warnings, []);
});

test('errors name the path of the bad field', () => {
  assert.equal(fieldOf(base.replace('algorithms: [RS256]', 'algorithms: [RS256, HS256]')), 'trusts[0].algorithms[1]');
  assert.equal(fieldOf(base.replace('audiences: [portcullis]', 'audiences: [portcullis]\n    audience_typo: x')), 'trusts[0].audience_typo');
  assert.equal(fieldOf(base.replace('boundary: application, environment: prod, owner', 'boundary: moon, environment: prod, owner')), 'identities[0].boundary');
  assert.equal(fieldOf(base.replace('kind: workload,', 'kind: robot,')), 'identities[0].kind');
  assert.equal(fieldOf(`${base}session: { ttl: soon }`), 'session.ttl');
  assert.equal(fieldOf(`${base}engine: fast`), 'engine');
  assert.equal(fieldOf(`${base}policies_dir: x`), 'policies_dir');
  assert.equal(fieldOf(base.replace('identity: "workload:github/{repository}"', 'identity: "workload:static"')), 'trusts[0].identity');
  assert.equal(fieldOf(base.replace('jwks_uri: https://token.actions.githubusercontent.com/.well-known/jwks', '')), 'trusts[0]');
  assert.equal(fieldOf(base.replace('policies: ./p.cedar', 'policies: ./missing')), 'policies');
});

test('YAML itself is treated as hostile: duplicate keys, syntax errors, alias bombs', () => {
  assert.throws(() => parseConfig('engine: wasm\nengine: compiled\n', dir), /YAML syntax/);
  assert.throws(() => parseConfig('trusts: [\n', dir), /YAML syntax/);
  const bomb = ['a: &a ["x","x","x","x","x","x","x","x","x"]', ...Array.from({ length: 9 }, (_, i) => `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)}]`)].join('\n');
  assert.throws(() => parseConfig(bomb, dir), (e: unknown) => e instanceof InvalidInput && /resource exhaustion/.test((e as Error).message));
});

test('session TTL is capped at 15 minutes whatever is asked, with a warning', () => {
  const { config, warnings } = parseConfig(`${base}session: { ttl: 2h }`, dir);
  assert.equal(config.session.ttl_ms, 15 * 60_000);
  assert.match(warnings[0]!, /capped at 15m/);
});

test('a missing file says which file', () => {
  assert.throws(() => loadConfigFile(join(dir, 'nope.yaml')), /cannot read config file .*nope\.yaml: ENOENT/);
});

test("an agent's sponsor can be declared; only an agent has one, and it must name a user", () => {
  const agent = base.replace('identities:\n', 'identities:\n  - { id: "agent:bot", kind: agent, boundary: application, environment: prod, sponsor: "user:sam@example.com" }\n');
  const { config: c } = parseConfig(agent, dir);
  assert.equal(c.identities.find((i) => i.id === 'agent:bot')!.sponsor, 'user:sam@example.com');
  assert.equal(fieldOf(agent.replace('sponsor: "user:sam@example.com"', 'sponsor: "team:support"')), 'identities[0].sponsor');
  assert.equal(fieldOf(base.replace('owner: team:payments }', 'owner: team:payments, sponsor: "user:sam@example.com" }')), 'identities[0].sponsor');
});
