// The suggested policy rewrites every permit that gave the identity an unused permission wherever
// it stands in its file (splitting a policy set need not keep the file's order; a rewrite that
// followed the split order missed permits and left the unused access granted).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PermissionModel } from '../../src/governance/permissions.ts';
import { suggestPolicy } from '../../src/governance/suggest.ts';
import { pairKey, type ObservedPair } from '../../src/governance/usage.ts';
import { actionEntities, actionsApplying, compilePolicySet } from '../../src/policy/policy-set.ts';
import { resourceEntity, type PrincipalFacts } from '../../src/policy/entities.ts';
import type { PolicyFile } from '../../src/policy/policy-set.ts';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const API = 'workload:github/acme/api';
// The dev server's policies: permits and forbids interleaved, as people write them.
const DEMO = readFileSync(join(import.meta.dirname, '..', '..', 'examples', 'dev', 'policies', 'demo.cedar'), 'utf8');

const RESOURCES = [
  { type: 'Database', id: 'orders', boundary: 'application', environment: 'prod', attributes: {}, parents: [] },
  { type: 'Table', id: 'orders.payments', boundary: 'application', environment: 'prod', attributes: {}, parents: [{ type: 'Database', id: 'orders' }] },
  { type: 'Host', id: 'web-1', boundary: 'application', environment: 'prod', attributes: {}, parents: [] },
  { type: 'Api', id: 'orders-api', boundary: 'application', environment: 'prod', attributes: {}, parents: [] },
].map(resourceEntity);

const modelOf = (files: PolicyFile[]) =>
  new PermissionModel({ policies: compilePolicySet(files), resources: RESOURCES, actionEntities: actionEntities(), actionsApplying: (p, r) => actionsApplying(p, r), bridged: () => false });

describe('suggested policy', () => {
  it('drops each permit behind an unused permission wherever it stands in the file; keeps what was used', () => {
    const files: PolicyFile[] = [{ name: 'demo.cedar', text: DEMO, origin: 'config' }];
    const facts: PrincipalFacts = { id: API, kind: 'workload', boundary: 'application', environment: 'prod', owner: 'team:payments', labels: {}, parents: [] };
    const permissions = modelOf(files).explain(facts);
    const orders = { type: 'Database', id: 'orders' };
    const observed = new Map<string, ObservedPair>([[pairKey('db.select', orders), { action: 'db.select', resource: orders, allows: 3, last: '2026-12-01T09:00:00.000Z', policies: new Set(['api-reads-orders-with-purpose']) }]]);
    const s = suggestPolicy({ files, subject: { uid: { type: 'Workload', id: API }, group: false }, members: [{ permissions, observed }] });
    assert.deepEqual(s.dropped.sort(), ['api-gets-short-lived-credentials', 'api-reads-orders-with-purpose', 'api-ssh-through-gateway', 'api-writes-orders-in-hours']);
    // Under the candidate, the identity may do exactly what it was observed doing.
    const after = modelOf(s.files.map((f) => ({ ...f, origin: 'api' as const }))).explain(facts);
    assert.deepEqual(after.permissions.map((p) => `${p.action} ${p.resource.type}::${p.resource.id}`), ['db.select Database::orders']);
  });
});
