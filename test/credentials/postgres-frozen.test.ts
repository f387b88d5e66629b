// Item 8.10: a target that stops answering. The embedded PostgreSQL is frozen (SIGSTOP on the
// postmaster and every backend) while the API revokes and issues: both answer within the target's
// timeouts (the bound is the functional requirement here, hence the upper-bound assertions), the
// lease becomes revoke_failed, issuance leaves no active lease, and once the server is thawed the
// reaper finishes the revocation.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { ordersDbTarget, startHarness } from '../integration/harness.ts';
import type { Harness } from '../integration/harness.ts';
import { connectAs, startPostgres } from './helpers.ts';
import type { TestPostgres } from './helpers.ts';
import { within } from '../within.ts';

const STATEMENT_MS = 1500;
const CONNECT_MS = 1000;
/** The bound under test: a call against the frozen server answers within it, or the test fails then (not at its own timeout). */
const BOUND_MS = STATEMENT_MS + 5000;

/** The postmaster and all its descendants (every backend is its own process group leader). */
function tree(root: number): number[] {
  const parent = new Map<number, number[]>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parent.set(ppid, [...(parent.get(ppid) ?? []), Number(d)]);
    } catch {
      /* exited */
    }
  }
  const out = [root];
  for (let i = 0; i < out.length; i++) out.push(...(parent.get(out[i]!) ?? []));
  return out;
}

function signalAll(pids: number[], sig: NodeJS.Signals): void {
  for (const p of pids) {
    try {
      process.kill(p, sig);
    } catch {
      /* exited */
    }
  }
}

describe('a frozen PostgreSQL target', () => {
  let pgsrv: TestPostgres;
  let h: Harness;
  let frozen: number[] = [];
  before(async () => {
    pgsrv = await startPostgres();
    const t = ordersDbTarget(pgsrv);
    const yaml = t.yaml.replace('max_ttl: 1h', `max_ttl: 1h\n    timeouts: { connect: ${CONNECT_MS}ms, statement: ${STATEMENT_MS}ms, idle_in_transaction: 5s, keepalive: 5s }`);
    assert.notEqual(yaml, t.yaml);
    h = await startHarness(yaml, t.env, Date.now());
  });
  after(async () => {
    signalAll(frozen, 'SIGCONT');
    await h?.close();
    await pgsrv?.stop();
  });

  it('revoke answers within statement timeout + 2 s as revoke_failed; issuance fails cleanly; the reaper finishes after thaw', { timeout: 40_000 }, async () => {
    const s = await h.loginCi();
    const r = await h.post('/v1/credentials', { target: 'orders-db', permission: 'readonly', ttl: '10m', reason: 'nightly report' }, s);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const leaseId = r.body.lease.id as string;
    const role = r.body.credential.user as string;
    const admin = await h.admin();

    frozen = tree(pgsrv.pid());
    assert.ok(frozen.length > 1, 'postmaster and backends found');
    signalAll(frozen, 'SIGSTOP');

    let t0 = performance.now();
    const rev = await within(h.post('/v1/revocations', { selector: { lease: leaseId }, reason: 'incident INC-9' }, admin), BOUND_MS, 'revoke');
    const revokeMs = performance.now() - t0;
    console.log(`# revoke against a frozen target answered in ${revokeMs.toFixed(0)} ms (statement timeout ${STATEMENT_MS} ms)`);
    assert.ok(revokeMs < BOUND_MS, `revoke took ${revokeMs} ms`);
    assert.equal(rev.status, 200, JSON.stringify(rev.body));
    assert.deepEqual(rev.body.leases.failed.map((f: { lease: string }) => f.lease), [leaseId], JSON.stringify(rev.body));
    assert.match(rev.body.leases.failed[0].error, /timeout/i);
    const failed = await h.get(`/v1/leases?status=revoke_failed`, admin);
    assert.deepEqual(failed.body.leases.map((l: { id: string }) => l.id), [leaseId]);
    assert.match(JSON.stringify(failed.body.leases[0]), /timeout|timed out/i);

    t0 = performance.now();
    const iss = await within(h.post('/v1/credentials', { target: 'orders-db', permission: 'readonly', ttl: '10m', reason: 'while frozen' }, s), BOUND_MS, 'issue');
    const issueMs = performance.now() - t0;
    console.log(`# issue against a frozen target answered in ${issueMs.toFixed(0)} ms`);
    assert.ok(issueMs < BOUND_MS, `issue took ${issueMs} ms`);
    assert.equal(iss.status, 502, JSON.stringify(iss.body));
    assert.equal(iss.body.code, 'target_error', JSON.stringify(iss.body));
    const mine = await h.get('/v1/leases?mine=true', s);
    assert.deepEqual(mine.body.leases.filter((l: { status: string }) => l.status === 'active' || l.status === 'issuing'), [], 'no half-issued lease left live');

    signalAll(frozen, 'SIGCONT');
    frozen = [];
    // The reaper retries with back-off (1 s after the first failure): move the clock past it.
    let status = '';
    for (let i = 0; i < 40 && status !== 'revoked'; i++) {
      h.clock.advance(2000);
      await h.running.broker.credentials.reap();
      status = (await h.running.broker.credentials.get(leaseId)).status;
      if (status !== 'revoked') await new Promise((res) => setTimeout(res, 250));
    }
    assert.equal(status, 'revoked');
    await assert.rejects(connectAs(pgsrv, role, r.body.credential.password), /password authentication failed|does not exist/);
    // Nothing of the failed issuance is left at the target once reconcile has run.
    await h.running.broker.credentials.reconcile();
    const su = pgsrv.admin();
    await su.connect();
    const roles = await su.query(`SELECT rolname FROM pg_roles WHERE rolname LIKE 'pcx\\_%'`);
    await su.end();
    assert.deepEqual(roles.rows, []);
  });
});
