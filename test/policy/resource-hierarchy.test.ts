// Issue #8 item 7: boundaries hold through the hierarchy. A resource whose ancestors sit in another
// boundary is refused where resources enter: the config file (parseConfig / loadConfigFile) and
// Broker.open (every server start, whatever built the configuration object).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfigFile, parseConfig } from '../../src/config/load.ts';
import { InvalidInput } from '../../src/common/errors.ts';
import { Broker } from '../../src/broker/index.ts';
import { checkResourceHierarchy } from '../../src/policy/entities.ts';

const dir = mkdtempSync(join(tmpdir(), 'pcx-hier-'));
writeFileSync(join(dir, 'p.cedar'), 'permit(principal, action == Action::"db.select", resource in Database::"orders");');
const yaml = (resources: string, extra = '') => `
listen: { host: 127.0.0.1, port: 0 }
data_dir: ./data
boundaries: [application, platform]
resources:
${resources}
policies: ./p.cedar
${extra}`;
const ORDERS = `  - { type: Database, id: orders, boundary: application, environment: prod }`;

function refusedAt(resources: string): string {
  const path = join(dir, `c-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(path, yaml(resources));
  try {
    loadConfigFile(path);
  } catch (e) {
    assert.ok(e instanceof InvalidInput, String(e));
    return String(e.extra.field);
  }
  return 'accepted';
}

test('config file: a child in another boundary than any ancestor is refused, naming the field', () => {
  assert.equal(refusedAt(`${ORDERS}\n  - { type: Table, id: orders.payments, boundary: application, environment: prod, parents: ['Database::"orders"'] }`), 'accepted');
  // Direct parent elsewhere, the child declared before its parent, an undeclared parent, the second of two parents elsewhere.
  assert.equal(refusedAt(`${ORDERS}\n  - { type: Table, id: orders.audit, boundary: platform, environment: prod, parents: ['Database::"orders"'] }`), 'resources[1].parents[0]');
  assert.equal(refusedAt(`  - { type: Table, id: orders.audit, boundary: platform, environment: prod, parents: ['Database::"orders"'] }\n${ORDERS}`), 'resources[0].parents[0]');
  assert.equal(refusedAt(`  - { type: Table, id: orders.audit, boundary: application, environment: prod, parents: ['Database::"ghost"'] }`), 'resources[0].parents[0]');
  assert.equal(
    refusedAt(`${ORDERS}\n  - { type: Database, id: ledger, boundary: platform, environment: prod }\n  - { type: Table, id: t, boundary: application, environment: prod, parents: ['Database::"orders"', 'Database::"ledger"'] }`),
    'resources[2].parents[1]',
  );
  assert.throws(() => parseConfig(yaml(`${ORDERS}\n  - { type: Table, id: x, boundary: platform, environment: prod, parents: ['Database::"orders"'] }`), dir), /is in boundary platform but its parent Database::"orders" is in application/);
});

test('transitively: every ancestor, not only the parent (checked link by link)', () => {
  const r = (type: string, id: string, boundary: string, parents: string[] = []) => ({ type, id, boundary, environment: 'prod', parents: parents.map((p) => ({ type: 'Group', id: p })), attributes: {} });
  // a → b → c: b differs from c, so a (same as b) still sits under c's boundary: refused at b's link.
  assert.throws(() => checkResourceHierarchy([r('Group', 'c', 'platform'), r('Group', 'b', 'application', ['c']), r('Group', 'a', 'application', ['b'])]), (e: InvalidInput) => e.extra.field === 'resources[1].parents[0]');
  assert.doesNotThrow(() => checkResourceHierarchy([r('Group', 'c', 'platform'), r('Group', 'b', 'platform', ['c']), r('Group', 'a', 'platform', ['b'])]));
});

test('the hierarchy is a DAG: a resource parented to itself or through a loop is refused; Role/Team parents and deep chains', () => {
  const g = (id: string, parents: string[] = []) => `  - { type: Group, id: ${id}, boundary: application, environment: prod, parents: [${parents.map((p) => `'Group::"${p}"'`).join(', ')}] }`;
  assert.equal(refusedAt(g('a', ['a'])), 'resources[0].parents[0]', 'its own parent');
  assert.equal(refusedAt([g('a', ['b']), g('b', ['a'])].join('\n')), 'resources[1].parents[0]', 'a two-step loop');
  assert.equal(refusedAt([g('root'), g('a', ['root', 'c']), g('b', ['a']), g('c', ['b'])].join('\n')), 'resources[2].parents[0]', 'a loop beside a sound parent');
  assert.throws(() => parseConfig(yaml([g('x', ['y']), g('y', ['x'])].join('\n')), dir), /loops \(Group::"x" → Group::"y" → Group::"x"\)/);
  // A Role or Team is no resource: not a parent a resource can have.
  assert.equal(refusedAt(`  - { type: Database, id: d, boundary: application, environment: prod, parents: ['Role::"portcullis-admin"'] }`), 'resources[0].parents[0]');
  assert.equal(refusedAt(`  - { type: Database, id: d, boundary: application, environment: prod, parents: ['Team::"dba"'] }`), 'resources[0].parents[0]');
  // A diamond and a deep chain are fine.
  assert.equal(refusedAt([g('top'), g('l', ['top']), g('r', ['top']), g('bottom', ['l', 'r'])].join('\n')), 'accepted');
  const chain = Array.from({ length: 300 }, (_, i) => g(`n${i}`, i === 0 ? [] : [`n${i - 1}`]));
  assert.equal(refusedAt(chain.join('\n')), 'accepted');
  const loop = Array.from({ length: 300 }, (_, i) => g(`n${i}`, [`n${(i + 299) % 300}`]));
  assert.match(refusedAt(loop.join('\n')), /^resources\[\d+\]\.parents\[0\]$/, 'a 300-long loop');
});

test('Broker.open refuses such a configuration however it was built; nothing is served', async () => {
  const loaded = parseConfig(yaml(ORDERS), dir);
  const config = {
    ...loaded.config,
    data_dir: join(dir, 'data-open'),
    resources: [...loaded.config.resources, { type: 'Table', id: 'orders.audit', boundary: 'platform', environment: 'prod', parents: [{ type: 'Database', id: 'orders' }], attributes: {} }],
  };
  await assert.rejects(Broker.open(config, { env: { PORTCULLIS_MASTER_KEY: Buffer.alloc(32, 7).toString('base64') } }), (e: InvalidInput) => e.extra.field === 'resources[1].parents[0]');
  // A loop built past the config file: refused at open as well.
  const looped = {
    ...loaded.config,
    data_dir: join(dir, 'data-loop'),
    resources: [...loaded.config.resources, { type: 'Group', id: 'g1', boundary: 'application', environment: 'prod', parents: [{ type: 'Group', id: 'g1' }], attributes: {} }],
  };
  await assert.rejects(Broker.open(looped, { env: { PORTCULLIS_MASTER_KEY: Buffer.alloc(32, 7).toString('base64') } }), (e: InvalidInput) => e.extra.field === 'resources[1].parents[0]' && /loops/.test(e.message));
  // A rule naming a boundary that does not exist would never match: refused too.
  const rules = { ...loaded.config, data_dir: join(dir, 'data-rules'), access: { ...loaded.config.access, rules: [{ name: 'typo', match: { boundary: 'plattform' }, approvals: 2, max_duration_ms: 3_600_000, require_ticket: false, reviewers: [] }] } };
  await assert.rejects(Broker.open(rules, { env: { PORTCULLIS_MASTER_KEY: Buffer.alloc(32, 7).toString('base64') } }), (e: InvalidInput) => e.extra.field === 'access.rules[0].match.boundary');
  const ok = await Broker.open({ ...loaded.config, data_dir: join(dir, 'data-ok') }, { env: { PORTCULLIS_MASTER_KEY: Buffer.alloc(32, 7).toString('base64') } });
  await ok.close();
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
