// Lease machinery independent of any target: failed revocations are retried with back-off and
// surfaced, never forgotten; audit failure fails closed; selectors; renew limits; reconcile of
// intents. Uses a small in-test issuer (our own interface) whose target can be made to fail.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/common/clock.ts';
import { InvalidInput, NotFound, Unavailable } from '../../src/common/errors.ts';
import { LeaseNotActive } from '../../src/credentials/errors.ts';
import { backoffMs } from '../../src/credentials/reaper.ts';
import { parseSelector } from '../../src/credentials/revocation.ts';
import { createCredentialService } from '../../src/credentials/service.ts';
import type { CredentialIssuer, Lease, ReconcileResult } from '../../src/credentials/types.ts';
import { MemoryAudit, TablePolicy, sqliteLeases } from './helpers.ts';

/** A target whose credentials are rows in a Set; `down` makes it unreachable. */
class SetIssuer implements CredentialIssuer {
  readonly kind = 'api' as const;
  readonly target = 'toy';
  readonly resourceType = 'Api';
  readonly live = new Set<string>();
  down = false;
  slowIssue: Promise<void> | undefined;
  #n = 0;
  check(): string {
    return 'read';
  }
  async issue() {
    await this.slowIssue;
    if (this.down) throw new Error('connection refused');
    const h = `cred-${++this.#n}`;
    this.live.add(h);
    return { handle: h, credential: { secret: `s3cret-${h}` }, fingerprint: `sha256:${h}` };
  }
  async renew() {
    if (this.down) throw new Error('connection refused');
    return {};
  }
  async revoke(l: Lease) {
    if (this.down) throw new Error('connection refused');
    this.live.delete(l.handle!);
  }
  async reconcile(): Promise<ReconcileResult> {
    return { dropped: [], missing: [], errors: [] };
  }
  async close() {}
}

function setup() {
  const clock = new ManualClock();
  const audit = new MemoryAudit();
  const policy = new TablePolicy();
  const issuer = new SetIssuer();
  policy.allow('workload:a', 'Api::toy');
  policy.allow('workload:b', 'Api::toy');
  const svc = createCredentialService({ leases: sqliteLeases(), clock, audit, decide: policy.decide, targets: [], issuers: [issuer], reaperIntervalMs: 50 });
  const issue = (id = 'workload:a', ttl = '10m') => svc.issue({ identityId: id, target: 'toy', ttl, purpose: 'test' });
  return { clock, audit, policy, issuer, svc, issue };
}

test('a revocation that fails is surfaced as revoke_failed, retried with back-off, and completes when the target is back', async () => {
  const { clock, audit, issuer, svc, issue } = setup();
  const { lease } = await issue();
  issuer.down = true;
  const res = await svc.revoke({ lease: lease.id }, { by: 'user:ops', reason: 'leaver' });
  assert.equal(res.failed.length, 1);
  let l = await svc.get(lease.id);
  assert.equal(l.status, 'revoke_failed');
  assert.equal(l.lastError, 'connection refused');
  assert.equal(l.revokeAttempts, 1);
  assert.equal(l.nextAttemptAt, clock.now() + 1000);
  assert.deepEqual((await svc.list({ status: 'revoke_failed' })).map((x) => x.id), [lease.id], 'visible in lists');
  assert.equal(audit.ofType('credential.revoke_failed').length, 1);
  // Not due yet: the reaper leaves it alone.
  assert.deepEqual(await svc.reap(), { expired: 0, retried: 0, failed: 0 });
  clock.advance(1000);
  assert.equal((await svc.reap()).failed, 1);
  l = await svc.get(lease.id);
  assert.equal(l.revokeAttempts, 2);
  assert.equal(l.nextAttemptAt, clock.now() + 2000, 'back-off doubles');
  issuer.down = false;
  clock.advance(2000);
  assert.deepEqual(await svc.reap(), { expired: 0, retried: 1, failed: 0 });
  l = await svc.get(lease.id);
  assert.equal(l.status, 'revoked');
  assert.equal(l.revokeReason, 'leaver', 'the original reason survives retries');
  assert.equal(l.revokedBy, 'user:ops');
  assert.equal(issuer.live.size, 0);
  assert.deepEqual([1, 2, 3, 10, 40].map((n) => backoffMs(n)), [1000, 2000, 4000, 300_000, 300_000]);
  await svc.stop();
});

test('the reaper expires leases on the injected clock; the background timer does it too', async () => {
  const { clock, issuer, svc, issue } = setup();
  const a = await issue('workload:a', '1m');
  const b = await issue('workload:b', '5m');
  clock.advance(61_000);
  assert.equal((await svc.reap()).expired, 1);
  assert.equal((await svc.get(a.lease.id)).status, 'expired');
  assert.equal((await svc.get(b.lease.id)).status, 'active');
  clock.advance(5 * 60_000);
  svc.startReaper();
  // The reaper runs on its own timer: wait for it (generously, a loaded machine is slow), don't race it.
  for (const deadline = Date.now() + 60_000; (await svc.get(b.lease.id)).status === 'active' && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 20));
  assert.equal((await svc.get(b.lease.id)).status, 'expired');
  assert.equal(issuer.live.size, 0);
  await svc.stop();
});

test('audit down at issuance: fail closed — the credential is withdrawn and nothing is handed out', async () => {
  const { audit, issuer, svc, issue } = setup();
  audit.fail = true;
  await assert.rejects(issue(), Unavailable);
  assert.equal(issuer.live.size, 0);
  assert.equal((await svc.list())[0]!.status, 'revoked');
  await svc.stop();
});

test('a decision whose audit record fails: the credential made meanwhile is withdrawn, nothing handed out', async () => {
  const { issuer } = setup();
  let allowRecorded!: () => void;
  const cases: [string, Promise<void>, boolean][] = [
    ['record fails', Promise.reject(new Unavailable('audit down')), false],
    ['record succeeds later', new Promise<void>((r) => (allowRecorded = r)), true],
  ];
  for (const [name, recorded, ok] of cases) {
    const svc = createCredentialService({
      leases: sqliteLeases(), audit: new MemoryAudit(), targets: [], issuers: [issuer],
      decide: async () => ({ decision: 'allow', decisionId: 'd-1', recorded }),
    });
    const before = issuer.live.size;
    const p = svc.issue({ identityId: 'workload:a', target: 'toy', purpose: 'x' });
    if (ok) {
      let settled = false;
      void p.then(() => (settled = true), () => (settled = true));
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(settled, false, `${name}: no credential before the decision is on record`);
      allowRecorded();
      const issued = await p;
      assert.equal(issued.lease.status, 'active', name);
    } else {
      await assert.rejects(p, Unavailable, name);
      assert.equal(issuer.live.size, before, `${name}: the credential was revoked`);
      assert.equal((await svc.list())[0]!.status, 'revoked', name);
    }
    await svc.stop();
  }
});

test('decision errors fail closed; renew limits; unknown leases and targets', async () => {
  const { issuer, svc, issue, clock } = setup();
  const broken = createCredentialService({
    leases: sqliteLeases(), audit: new MemoryAudit(), targets: [], issuers: [issuer],
    decide: async () => { throw new Error('pdp down'); },
  });
  await assert.rejects(broken.issue({ identityId: 'workload:a', target: 'toy', purpose: 'x' }), Unavailable);
  assert.equal(issuer.live.size, 0);
  await assert.rejects(svc.issue({ identityId: 'workload:a', target: 'nope', purpose: 'x' }), NotFound);
  const { lease } = await issue();
  await svc.revoke({ lease: lease.id }, { by: 'u', reason: 'r' });
  await assert.rejects(svc.renew(lease.id), LeaseNotActive);
  await assert.rejects(svc.revoke({ lease: 'lse_missing' }, { by: 'u', reason: 'r' }), NotFound);
  await assert.rejects(svc.revoke({ identity: 'workload:a' }, { by: 'u', reason: ' ' }), InvalidInput);
  const { lease: l2 } = await issue('workload:a', '1m');
  clock.advance(2 * 60_000);
  await assert.rejects(svc.renew(l2.id), /expired/);
  await svc.stop();
});

test('a revocation that arrives while a lease is being issued is honoured when issuance completes', async () => {
  const { issuer, svc, issue } = setup();
  let release!: () => void;
  issuer.slowIssue = new Promise((r) => (release = r));
  const pending = issue();
  // Until its intent is on record (lease writes are committed in groups, a turn later).
  while ((await svc.list()).length === 0) await new Promise((r) => setImmediate(r));
  const res = await svc.revoke({ identity: 'workload:a' }, { by: 'user:secops', reason: 'offboard' });
  assert.deepEqual(res.revoked.map((r) => r.status), ['pending']);
  release();
  await assert.rejects(pending, /revoked while being issued/);
  assert.equal(issuer.live.size, 0);
  assert.equal((await svc.list())[0]!.status, 'revoked');
  assert.equal((await svc.list())[0]!.revokedBy, 'user:secops');
  await svc.stop();
});

test('selectors: session, decision, trust; parseSelector validates untrusted input', async () => {
  const { svc } = setup();
  const s1 = await svc.issue({ identityId: 'workload:a', target: 'toy', purpose: 'x', sessionId: 'sess-1', trust: 'github' });
  const s2 = await svc.issue({ identityId: 'workload:b', target: 'toy', purpose: 'x', sessionId: 'sess-2', trust: 'github' });
  const s3 = await svc.issue({ identityId: 'workload:b', target: 'toy', purpose: 'x', sessionId: 'sess-3', trust: 'gitlab' });
  assert.equal((await svc.revoke({ session: 'sess-1' }, { by: 'u', reason: 'logout' })).matched, 1);
  assert.equal((await svc.revoke({ decision: s2.lease.decisionId }, { by: 'u', reason: 'bad decision' })).matched, 1);
  assert.equal((await svc.get(s1.lease.id)).status, 'revoked');
  assert.equal((await svc.get(s2.lease.id)).status, 'revoked');
  assert.equal((await svc.revoke({ trust: 'gitlab' }, { by: 'u', reason: 'trust compromised' })).matched, 1);
  assert.equal((await svc.get(s3.lease.id)).status, 'revoked');
  assert.deepEqual(parseSelector({ owner: 'team:data' }), { owner: 'team:data' });
  assert.throws(() => parseSelector({ owner: 'a', identity: 'b' }), InvalidInput);
  assert.throws(() => parseSelector({ everything: true }), InvalidInput);
  assert.throws(() => parseSelector({ lease: '' }), /selector.lease/);
  await assert.rejects(svc.revoke({ owner: 'team:x' }, { by: 'u', reason: 'r' }), /no owner resolver/);
  await svc.stop();
});

test('reconcile marks intents of a dead broker as failed', async () => {
  const { svc } = setup();
  const now = Date.now();
  await svc.leases.insert({
    id: 'lse_dead', identityId: 'workload:a', target: 'toy', kind: 'api', permission: 'read', handle: null, params: {}, fingerprint: null,
    status: 'issuing', purpose: 'x', decisionId: 'd', grantId: null, sessionId: null, trust: null, issuedAt: now, expiresAt: now + 1000,
    maxExpiresAt: now + 1000, renewals: 0, revokeAttempts: 0, nextAttemptAt: null, lastError: null, revokedAt: null, revokedBy: null, revokeReason: null,
  });
  const r = await svc.reconcile();
  assert.deepEqual(r.abandoned, ['lse_dead']);
  assert.equal((await svc.get('lse_dead')).status, 'failed');
  await svc.stop();
});
