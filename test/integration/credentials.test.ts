// Just-in-time PostgreSQL credentials through the HTTP API against a real PostgreSQL server:
// decided at request time, leased, and revoked all the way to the open connection.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ordersDbTarget, startHarness } from './harness.ts';
import type { Harness } from './harness.ts';
import { connectAs, startPostgres } from '../credentials/helpers.ts';
import type { TestPostgres } from '../credentials/helpers.ts';
import { within } from '../within.ts';

describe('credentials over the API, against a real PostgreSQL', () => {
  let pgsrv: TestPostgres;
  let h: Harness;
  before(async () => {
    pgsrv = await startPostgres();
    const target = ordersDbTarget(pgsrv);
    h = await startHarness(target.yaml, target.env, Date.now()); // PostgreSQL enforces VALID UNTIL with its real clock
  });
  after(async () => {
    await h?.close();
    await pgsrv?.stop();
  });

  it('issues a readonly role after a credential.issue decision; refuses what policy does not allow', async () => {
    const s = await h.loginCi();
    const denied = await h.post('/v1/credentials', { target: 'orders-db', permission: 'readwrite', ttl: '10m', reason: 'migration' }, s);
    assert.equal(denied.status, 403);
    assert.match(denied.body.decision_id, /^[0-9a-f-]{36}$/);
    const r = await h.post('/v1/credentials', { target: 'orders-db', permission: 'readonly', ttl: '10m', reason: 'nightly report' }, s);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.headers.get('cache-control'), 'no-store');
    const c = r.body.credential;
    const client = await connectAs(pgsrv, c.user, c.password);
    assert.deepEqual((await client.query('SELECT 1 AS one')).rows, [{ one: 1 }]);
    await client.end();
    const mine = await h.get('/v1/leases?mine=true', s);
    assert.equal(mine.body.leases.length, 1);
    assert.equal(mine.body.leases[0].status, 'active');
    assert.ok(!JSON.stringify(mine.body).includes(c.password), 'leases never show the password');
  });

  it('revoking an identity ends its open database session and its session tokens', async () => {
    const s = await h.loginCi();
    const r = await h.post('/v1/credentials', { target: 'orders-db', permission: 'readonly', ttl: '10m', reason: 'debugging' }, s);
    assert.equal(r.status, 201);
    const client = await connectAs(pgsrv, r.body.credential.user, r.body.credential.password);
    const ended = new Promise<void>((resolve) => client.on('end', () => resolve()));
    const admin = await h.admin();
    const rev = await h.post('/v1/revocations', { selector: { identity: 'workload:github/acme/api' }, reason: 'incident INC-7' }, admin);
    assert.equal(rev.status, 200, JSON.stringify(rev.body));
    assert.ok(rev.body.leases.revoked >= 1);
    // A hang detector, not a speed check (that is `npm run bench`): an idle session the revocation
    // did not terminate would stay open for good.
    await within(ended, 30_000, 'the connection ends after the revocation');
    await assert.rejects(connectAs(pgsrv, r.body.credential.user, r.body.credential.password));
    assert.equal((await h.post('/v1/authorize', { action: 'db.select', resource: { type: 'Database', id: 'orders' } }, s)).status, 401);
    await h.running.broker.audit.flush();
    const events = await h.running.broker.audit.query({ stream: 'admin', type: 'credential.revoked' });
    assert.ok(events.some((e) => e.payload.reason === 'incident INC-7' || JSON.stringify(e.payload).includes('INC-7')));
  });

  it('a workload cannot revoke what is not its own', async () => {
    const s = await h.loginCi({ repository: 'acme/other' });
    const r = await h.post('/v1/revocations', { selector: { target: 'orders-db' }, reason: 'x' }, s);
    assert.equal(r.status, 403);
  });
});
