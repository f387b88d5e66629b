// The `authzen:` section: described types are the app's own (never a built-in type), in a declared
// boundary, once each; the rate limit and page size have defaults.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../src/config/load.ts';

const base = 'boundaries: [todo, platform]\n';

test('defaults: no described types, 60,000 evaluations a minute per app, 50 results a page', () => {
  const { config } = parseConfig(base, '/tmp');
  assert.deepEqual(config.authzen, { described_types: [], rate_limit: { requests: 60_000, window_ms: 60_000 }, page_size: 50 });
});

test('a described type, a rate limit and a page size as written', () => {
  const { config } = parseConfig(`${base}authzen:\n  described_types: [{ type: todo, boundary: todo, environment: demo }]\n  rate_limit: { requests: 10, window: 1h }\n  page_size: 7\n`, '/tmp');
  assert.deepEqual(config.authzen, { described_types: [{ type: 'todo', boundary: 'todo', environment: 'demo' }], rate_limit: { requests: 10, window_ms: 3_600_000 }, page_size: 7 });
});

test('errors name the field: undeclared boundary, duplicate, built-in type, bad type name, bad limit', () => {
  const bad = (yaml: string, field: RegExp) => assert.throws(() => parseConfig(`${base}authzen:\n${yaml}`, '/tmp'), field);
  bad('  described_types: [{ type: todo, boundary: nowhere, environment: demo }]\n', /authzen\.described_types\[0\]\.boundary/);
  bad('  described_types: [{ type: todo, boundary: todo, environment: demo }, { type: todo, boundary: platform, environment: demo }]\n', /authzen\.described_types\[1\]\.type.*duplicate/);
  bad('  described_types: [{ type: Database, boundary: todo, environment: demo }]\n', /authzen\.described_types\[0\]\.type.*built-in/);
  bad('  described_types: [{ type: "to do", boundary: todo, environment: demo }]\n', /authzen\.described_types\[0\]\.type/);
  bad('  rate_limit: { requests: 0, window: 1m }\n', /authzen\.rate_limit\.requests/);
  bad('  page_size: 5000\n', /authzen\.page_size/);
  bad('  surprise: 1\n', /authzen\.surprise/);
});

test('resource types may be any Cedar type name (AuthZEN types are often lowercase)', () => {
  const { config } = parseConfig(`${base}resources: [{ type: user, id: a@example.com, boundary: todo, environment: demo }]\n`, '/tmp');
  assert.equal(config.resources[0]!.type, 'user');
  assert.throws(() => parseConfig(`${base}resources: [{ type: "9lives", id: x, boundary: todo, environment: demo }]\n`, '/tmp'), /resources\[0\]\.type/);
});
