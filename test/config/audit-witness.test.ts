// `audit.witness` in the config file: validated at load, every error naming its field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../src/config/load.ts';
import { configFieldOf } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'pcx-config-witness-'));
writeFileSync(join(dir, 'p.cedar'), 'permit(principal, action, resource);');
const base = 'policies: ./p.cedar\n';

const fieldOf = (yaml: string): string => configFieldOf(yaml, dir);

test('audit.witness: file (relative to the config file) and url', () => {
  assert.equal(parseConfig(base, dir).config.audit.witness, undefined);
  const { config } = parseConfig(`${base}audit: { checkpoint_every: 100, witness: { file: ../witness/cp.jsonl, url: "https://witness.example/v1/cp" } }`, dir);
  assert.deepEqual(config.audit.witness, { file: join(dir, '..', 'witness', 'cp.jsonl'), url: 'https://witness.example/v1/cp' });
  assert.equal(config.audit.checkpoint_every, 100);
  assert.deepEqual(parseConfig(`${base}audit: { witness: { file: /abs/cp.jsonl } }`, dir).config.audit.witness, { file: '/abs/cp.jsonl' });
});

test('audit.witness: bad values are refused, naming the field', () => {
  assert.equal(fieldOf(`${base}audit: { witness: {} }`), 'audit.witness');
  assert.equal(fieldOf(`${base}audit: { witness: /x }`), 'audit.witness');
  assert.equal(fieldOf(`${base}audit: { witness: { file: "" } }`), 'audit.witness.file');
  assert.equal(fieldOf(`${base}audit: { witness: { file: [a] } }`), 'audit.witness.file');
  assert.equal(fieldOf(`${base}audit: { witness: { path: /x } }`), 'audit.witness.path');
  for (const url of ['not a url', 'ftp://witness.example/x', 'file:///etc/passwd', 'https://u:p@witness.example/x', 'https://witness.example/x#frag', '/relative']) {
    assert.equal(fieldOf(`${base}audit: { witness: { url: "${url}" } }`), 'audit.witness.url', url);
  }
  assert.equal(fieldOf(`${base}audit: { checkpoint_every: 0 }`), 'audit.checkpoint_every');
});
