// The README's configuration reference must stay a file Portcullis accepts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../src/config/load.ts';

test('the configuration reference in README.md loads as written', () => {
  const readme = readFileSync(join(import.meta.dirname, '..', '..', 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('### Configuration reference'));
  const yaml = /```yaml\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(yaml, 'README has a yaml block under "Configuration reference"');
  const dir = mkdtempSync(join(tmpdir(), 'pcx-readme-'));
  mkdirSync(join(dir, 'policies'));
  writeFileSync(join(dir, 'policies', 'main.cedar'), 'permit (principal, action, resource);');
  writeFileSync(join(dir, 'schema.cedarschema'), 'entity Ticket;');
  writeFileSync(join(dir, 'bundle.jwks.json'), '{"keys": []}');
  const env = { SSO_CLIENT_SECRET: 's'.repeat(32), PORTCULLIS_WEBHOOK_SECRET: 'w'.repeat(32), ORDERS_DB_ADMIN_PASSWORD: 'p'.repeat(16) };
  const { config } = parseConfig(yaml, dir, env);
  assert.ok(config.trusts.length >= 2);
  assert.ok(config.identities.length >= 1 && config.resources.length >= 1);
});
