// The access domain's SQLite-only cases: the migrations kept from before the ports, and an approval
// racing another process over the same store. The port contract over both stores is in access.test.ts.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { SqliteDb, migrate, openDatabase } from '../../src/store/sqlite/db.ts';
import { ACCESS_MIGRATIONS, SqliteAccessStore } from '../../src/store/sqlite/access.ts';
import { createAccessService, parseCreateRequest, RequestNotPending, validateAccessConfig } from '../../src/access/index.ts';
import { world } from '../access/helpers.ts';

describe('SQLite access repositories', () => {
  test('a data dir migrated before the ports keeps its rows and gets the missing version', () => {
    const raw = openDatabase(':memory:');
    migrate(raw, 'access', ACCESS_MIGRATIONS.filter((m) => m.version === 1));
    raw.prepare(`INSERT INTO access_requests (id, requester, target, what, reason, duration_ms, session_bound, status, required_approvals, rules, reviewers, created_at, expires_at)
      VALUES ('req_old', 'user:alice@example.com', '{"kind":"role","role":"r"}', 'role r', 'old', 60000, 0, 'pending', 1, '[]', '[]', 1, 2)`).run();
    new SqliteAccessStore(new SqliteDb(raw));
    new SqliteAccessStore(new SqliteDb(raw)); // opening again applies nothing twice
    assert.deepEqual(raw.prepare("SELECT version FROM schema_migrations WHERE domain = 'access' ORDER BY version").all().map((r) => r.version), [1, 2]);
    assert.equal((raw.prepare("SELECT accountable FROM access_requests WHERE id = 'req_old'").get() as { accountable: string | null }).accountable, null);
  });
});

describe('two processes over one store', () => {
  test('concurrent last approvals through two services make one grant; the other is refused, nothing half-written', async () => {
    const w = await world({ config: { approvals: 1 } });
    // A second process: its own service (own in-process locks) over the same store.
    const other = createAccessService({
      store: w.accessStore, unitOfWork: w.unitOfWork, clock: w.clock, audit: w.audit, decide: w.decide, revokeLeases: async () => ({}),
      config: validateAccessConfig({ approvals: 1 }, {}), webhooks: { notify() {} },
    });
    try {
      const r = await w.service.createRequest(w.actor('alice'), parseCreateRequest({ role: 'db-reader', duration: '1h', reason: 'weekly report' }));
      const results = await Promise.allSettled([w.service.approve(w.actor('bob'), r.id), other.approve(w.actor('carol'), r.id)]);
      const ok = results.filter((x) => x.status === 'fulfilled');
      const refused = results.filter((x): x is PromiseRejectedResult => x.status === 'rejected');
      assert.equal(ok.length, 1, JSON.stringify(results.map((x) => x.status)));
      assert.ok(refused[0]!.reason instanceof RequestNotPending, String(refused[0]!.reason));
      const after = await w.service.requests.get(r.id);
      assert.equal(after.status, 'approved');
      assert.equal(after.reviews.length, 1, 'the refused review was not recorded');
      assert.deepEqual((await w.service.grants.list({ identityId: 'user:alice@example.com' })).map((g) => g.id), [after.grant_id]);
    } finally {
      await other.stop();
      await w.close();
    }
  });
});
