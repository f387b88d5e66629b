// Posture findings from inventory facts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { computeFindings } from '../../src/inventory/findings.ts';
import type { Identity } from '../../src/inventory/identities.ts';

const NOW = Date.parse('2026-06-01T00:00:00Z');
const iso = (daysAgo: number) => new Date(NOW - daysAgo * 86_400_000).toISOString();
const identity = (over: Partial<Identity>): Identity => ({
  id: 'workload:x', kind: 'workload', boundary: 'application', environment: 'prod', owner: 'team:a', purpose: 'p',
  labels: {}, parents: [], status: 'active', source: 'config', trust: null, bound_trusts: [], created_at: iso(1), updated_at: iso(1),
  last_authenticated_at: iso(0), ...over,
});

test('findings name what needs attention, most severe first', () => {
  const f = computeFindings({
    now: NOW,
    identities: [
      identity({ id: 'workload:ok' }),
      identity({ id: 'workload:orphan', owner: null, purpose: null }),
      identity({ id: 'workload:stale', last_authenticated_at: iso(45) }),
      identity({ id: 'workload:never', created_at: iso(40), last_authenticated_at: null }),
      identity({ id: 'user:alice@example.com', kind: 'user', owner: null, purpose: null }),
      identity({ id: 'workload:gone', owner: null, status: 'offboarded' }),
    ],
    apikeys: [
      { id: 'k1', identity_id: 'workload:ok', status: 'active', expires_at: iso(-3), rotate_by: iso(1) },
      { id: 'k2', identity_id: 'workload:ok', status: 'revoked', expires_at: iso(-3), rotate_by: iso(10) },
    ],
    leases: [
      { id: 'lse_1', identityId: 'workload:ok', target: 'orders-db', status: 'revoke_failed', lastError: 'connection refused' },
      { id: 'lse_2', identityId: 'workload:ok', target: 'orders-db', status: 'active', lastError: null },
    ],
  });
  assert.deepEqual(
    f.map((x) => [x.severity, x.code, x.subject]),
    [
      ['high', 'apikey.rotation_overdue', 'k1'],
      ['high', 'identity.no_owner', 'workload:orphan'],
      ['high', 'lease.revoke_failed', 'lse_1'],
      ['medium', 'apikey.expiring', 'k1'],
      ['medium', 'identity.stale', 'workload:never'],
      ['medium', 'identity.stale', 'workload:stale'],
      ['low', 'apikey.legacy', 'k1'],
      ['low', 'identity.no_purpose', 'workload:orphan'],
    ],
  );
  assert.match(f.find((x) => x.subject === 'workload:never')!.message, /never authenticated/);
  assert.deepEqual(computeFindings({ now: NOW, identities: [identity({})], apikeys: [], leases: [] }), []);
});
