// Posture findings mapped to standards: every code names its OWASP NHI Top 10 (2025) category, NIST
// CSF 2.0 subcategories and a remediation; the activity findings (unused, shared NHI9, human use
// NHI10, environment crossing NHI8, over-privileged NHI5, long-lived / unused API keys NHI7/NHI1).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FINDING_STANDARDS, OWASP_NHI_2025, computeFindings } from '../../src/inventory/findings.ts';
import type { Identity } from '../../src/inventory/identities.ts';

const DAY = 86_400_000;
const NOW = Date.parse('2026-11-15T00:00:00Z');
const iso = (daysAgo: number) => new Date(NOW - daysAgo * DAY).toISOString();
const identity = (id: string, over: Partial<Identity> = {}): Identity => ({
  id, kind: 'workload', boundary: 'application', environment: 'prod', owner: 'team:a', purpose: 'p',
  labels: {}, parents: [], status: 'active', source: 'config', trust: null, bound_trusts: [], created_at: iso(200), updated_at: iso(200),
  last_authenticated_at: iso(0), ...over,
});

test('every finding carries its OWASP NHI category, NIST CSF subcategories and remediation', () => {
  for (const [code, s] of Object.entries(FINDING_STANDARDS)) {
    assert.ok(OWASP_NHI_2025[s.owasp], code);
    assert.ok(s.nist.length > 0 && s.nist.every((n) => /^(GV|ID|PR|DE|RS|RC)\.[A-Z]{2}-\d{2}$/.test(n)), `${code}: ${s.nist.join(',')}`);
    assert.ok(s.remediation.length > 20, code);
  }
  const f = computeFindings({
    now: NOW,
    identities: [
      identity('workload:quiet'),
      identity('workload:busy'),
      identity('workload:shared'),
      identity('workload:console'),
      identity('workload:crosser'),
      identity('workload:broad'),
      identity('workload:new', { created_at: iso(3) }),
      identity('user:alice@example.com', { kind: 'user' }),
    ],
    apikeys: [
      { id: 'k-long', identity_id: 'workload:busy', status: 'active', created_at: iso(10), last_used_at: iso(1), expires_at: iso(-80), rotate_by: iso(-20) },
      { id: 'k-idle', identity_id: 'workload:busy', status: 'active', created_at: iso(100), expires_at: iso(-2), rotate_by: iso(-1) },
    ],
    leases: [],
    windowMs: 90 * DAY,
    activity: [
      { identity_id: 'workload:busy', sources: ['10.0.0.1'], human_logins: 0, crossings: [], last_allowed_at: iso(1) },
      { identity_id: 'workload:shared', sources: ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.6'], human_logins: 0, crossings: [], last_allowed_at: iso(1) },
      { identity_id: 'workload:console', sources: ['10.0.0.9'], human_logins: 2, crossings: [], last_allowed_at: iso(1) },
      { identity_id: 'workload:crosser', sources: [], human_logins: 0, crossings: [{ resource: 'Database::staging-db', environment: 'staging', allows: 3 }], last_allowed_at: iso(1) },
      { identity_id: 'workload:broad', sources: [], human_logins: 0, crossings: [], last_allowed_at: iso(1) },
    ],
    usage: [
      { identity: 'workload:broad', effective: 10, used: 1, over_privilege: 0.9 },
      { identity: 'workload:busy', effective: 4, used: 4, over_privilege: 0 },
    ],
  });
  const codes = f.map((x) => `${x.code} ${x.subject} ${x.owasp.split(' ')[0]}`).filter((x) => !x.startsWith('apikey.legacy'));
  assert.deepEqual(codes.sort(), [
    'apikey.expiring k-idle NHI7:2025',
    'apikey.long_lived k-idle NHI7:2025',
    'apikey.long_lived k-long NHI7:2025',
    'apikey.unused k-idle NHI1:2025',
    'identity.environment_crossing workload:crosser NHI8:2025',
    'identity.human_use workload:console NHI10:2025',
    'identity.over_privileged workload:broad NHI5:2025',
    'identity.shared workload:shared NHI9:2025',
    'identity.unused workload:quiet NHI1:2025',
  ]);
  const human = f.find((x) => x.code === 'identity.human_use')!;
  assert.equal(human.severity, 'high');
  assert.deepEqual(human.nist, ['PR.AA-03', 'PR.AA-05', 'DE.CM-03']);
  assert.match(human.remediation, /oidc-human/);
});
