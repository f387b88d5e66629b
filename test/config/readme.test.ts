// The README's configuration reference must stay a file Portcullis accepts: it is
// examples/portcullis.yaml, byte for byte, and it loads with the files and demo env beside it
// (test/integration/example-config.test.ts starts a real server from it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseEnv } from 'node:util';
import { parseConfig } from '../../src/config/load.ts';

const REPO = join(import.meta.dirname, '..', '..');

export function readmeConfig(): string {
  const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('### Configuration reference'));
  const yaml = /```yaml\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(yaml, 'README has a yaml block under "Configuration reference"');
  return yaml;
}

test('the configuration reference in README.md is examples/portcullis.yaml and loads as written', () => {
  const file = readFileSync(join(REPO, 'examples', 'portcullis.yaml'), 'utf8');
  assert.equal(readmeConfig(), file, 'README block and examples/portcullis.yaml are the same text');
  const env = parseEnv(readFileSync(join(REPO, 'examples', 'demo.env'), 'utf8'));
  const { config } = parseConfig(file, join(REPO, 'examples'), env);
  assert.ok(config.trusts.length >= 2);
  assert.ok(config.identities.length >= 1 && config.resources.length >= 1);
  for (const t of config.targets) assert.ok(config.resources.some((r) => r.id === t.name), `target ${t.name} has its resource`);
  // Without the demo env, the missing secret is named by its field.
  assert.throws(() => parseConfig(file, join(REPO, 'examples'), {}), /client_secret_env|secret_env|password_env/);
});
