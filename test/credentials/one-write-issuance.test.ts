// Issuance by issuers that only sign (createsAtTarget: false — tokens, certificates): no intent,
// one durable lease write made with its audit record before the answer; a revocation that reaches
// the lease before it is on record is honoured; a crash or a failed write hands nothing out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Forbidden, Unavailable } from '../../src/common/errors.ts';
import { createCredentialService } from '../../src/credentials/service.ts';
import type { LeaseRepository } from '../../src/credentials/ports.ts';
import type { CredentialIssuer, Lease, ReconcileResult } from '../../src/credentials/types.ts';
import { MemoryAudit, TablePolicy, sqliteLeases } from './helpers.ts';

/** Signs a credential (nothing at a target); `slowIssue` holds the signing. */
class SigningIssuer implements CredentialIssuer {
  readonly kind = 'api' as const;
  readonly target = 'signed';
  readonly resourceType = 'Api';
  readonly createsAtTarget = false;
  slowIssue: Promise<void> | undefined;
  signed = 0;
  check(): string {
    return 'read';
  }
  async issue() {
    await this.slowIssue;
    const h = `jti-${++this.signed}`;
    return { handle: h, credential: { token: `tok-${h}` }, fingerprint: `sha256:${h}` };
  }
  async renew() {
    return {};
  }
  async revoke() {}
  async reconcile(): Promise<ReconcileResult> {
    return { dropped: [], missing: [], errors: [] };
  }
  async close() {}
}

function setup(o: { leases?: LeaseRepository; crash?: (point: string) => void } = {}) {
  const audit = new MemoryAudit();
  const policy = new TablePolicy();
  const issuer = new SigningIssuer();
  policy.allow('workload:a', 'Api::signed');
  const leases = o.leases ?? sqliteLeases();
  const svc = createCredentialService({ leases, audit, decide: policy.decide, targets: [], issuers: [issuer], ...(o.crash && { crashHook: o.crash }) });
  const issue = () => svc.issue({ identityId: 'workload:a', target: 'signed', ttl: '10m', purpose: 'test', sessionId: 'sess-1', grantId: 'grt-1', trust: 'ci' });
  return { audit, issuer, svc, issue, leases };
}

/** Lets the issuance run until it is signing (held by `slowIssue`). */
async function turns(n = 5): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

test('one write: the lease is recorded once, active, with its audit record, before the answer; never as an intent', async () => {
  const { audit, issuer, svc, issue } = setup();
  let release!: () => void;
  issuer.slowIssue = new Promise((r) => (release = r));
  const pending = issue();
  await turns();
  assert.deepEqual(await svc.list(), [], 'nothing is on record while it is being signed');
  release();
  const { lease, credential } = await pending;
  assert.equal(credential.token, 'tok-jti-1');
  const stored = await svc.get(lease.id);
  assert.equal(stored.status, 'active');
  assert.equal(stored.handle, 'jti-1');
  assert.equal(stored.fingerprint, 'sha256:jti-1');
  assert.deepEqual(stored, lease, 'the answer is the lease as recorded');
  assert.deepEqual(audit.ofType('credential.issued').map((e) => e.payload.lease), [lease.id]);
  await svc.stop();
});

for (const selector of [{ identity: 'workload:a' }, { session: 'sess-1' }, { grant: 'grt-1' }, { trust: 'ci' }, { target: 'signed' }] as const) {
  test(`a revocation by ${Object.keys(selector)[0]} that arrives before the lease is on record is honoured once it is`, async () => {
    const { audit, issuer, svc, issue } = setup();
    let release!: () => void;
    issuer.slowIssue = new Promise((r) => (release = r));
    const pending = issue();
    await turns();
    const res = await svc.revoke(selector, { by: 'user:secops', reason: 'offboard' });
    assert.equal(res.matched, 1);
    assert.deepEqual(res.revoked.map((r) => r.status), ['pending']);
    release();
    await assert.rejects(pending, /revoked while being issued/);
    const [l] = await svc.list();
    assert.equal(l!.status, 'revoked', 'on record, and revoked');
    assert.equal(l!.revokedBy, 'user:secops');
    assert.equal(l!.revokeReason, 'offboard');
    assert.equal(audit.ofType('credential.revoked').length, 1);
    await svc.stop();
  });
}

test('a revocation during the write itself: either it finds the lease on record or the issuance honours it', async () => {
  const { issuer, svc, issue } = setup();
  // The write is committed a turn later (group commit): revoke in every turn until it is done.
  for (let round = 0; round < 5; round++) {
    const before = issuer.signed;
    const pending = issue().then(() => 'issued', (e: unknown) => (e instanceof Forbidden ? 'refused' : Promise.reject(e)));
    let outcome: string | undefined;
    void pending.then((o) => (outcome = o));
    for (let i = 0; i < round; i++) await new Promise((r) => setImmediate(r));
    while (issuer.signed === before) await Promise.resolve();
    await svc.revoke({ identity: 'workload:a' }, { by: 'user:secops', reason: 'offboard' });
    await pending;
    assert.ok(outcome === 'issued' || outcome === 'refused');
    // Whatever the interleaving, no lease of this identity stays live.
    assert.deepEqual((await svc.list({ status: ['active', 'issuing', 'revoking'] })).map((l) => l.status), [], `round ${round}`);
  }
  await svc.stop();
});

test('a crash after signing and before the write: nothing is on record and nothing was handed out', async () => {
  const { svc, issue } = setup({ crash: (p) => { if (p === 'issue.before_record') throw new Error('killed'); } });
  await assert.rejects(issue(), /killed/);
  assert.deepEqual(await svc.list(), []);
  assert.deepEqual((await svc.reconcile()).abandoned, [], 'no intent for reconcile to find');
  await svc.stop();
});

test('audit down: fail closed — the recorded lease is revoked and nothing is handed out', async () => {
  const { audit, svc, issue } = setup();
  audit.fail = true;
  await assert.rejects(issue(), Unavailable);
  const [l] = await svc.list();
  assert.equal(l!.status, 'revoked');
  await svc.stop();
});

test('the lease write fails: nothing is handed out, and the audit says the issuance did not stand', async () => {
  const real = sqliteLeases();
  const leases: LeaseRepository = Object.assign(Object.create(real) as LeaseRepository, {
    insert: async () => {
      throw new Unavailable('disk full');
    },
  });
  const { audit, issue } = setup({ leases });
  await assert.rejects(issue(), /disk full/);
  const [issued] = audit.ofType('credential.issued');
  const [failed] = audit.ofType('credential.issue_failed');
  assert.ok(issued && failed);
  assert.equal(failed.payload.lease, issued.payload.lease);
  assert.deepEqual(await real.list(), []);
});

test('revoking an issued lease by id works as before; an unknown id is NotFound', async () => {
  const { svc, issue } = setup();
  const { lease } = await issue();
  const r = await svc.revoke({ lease: lease.id }, { by: 'u', reason: 'r' });
  assert.deepEqual(r.revoked.map((x) => x.status), ['revoked']);
  await assert.rejects(svc.revoke({ lease: 'lse_missing' }, { by: 'u', reason: 'r' }), /not found|lse_missing/);
  const l: Lease = await svc.get(lease.id);
  assert.equal(l.status, 'revoked');
  await svc.stop();
});
