// The SQLite lease and policy-version repositories: lease writes of one turn share one transaction
// and answer only once committed (inline or in the writer worker), the index behind byHandle, and
// policy version numbering. The lease port's contract over both stores is in credentials.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { SqliteDb } from '../../src/store/sqlite/db.ts';
import { SqliteCredentialStore } from '../../src/store/sqlite/credentials.ts';
import { SqlitePolicyStore } from '../../src/store/sqlite/policy.ts';
import type { Lease } from '../../src/credentials/types.ts';

function lease(id: string, over: Partial<Lease> = {}): Lease {
  const now = 1_700_000_000_000;
  return {
    id, identityId: 'workload:a', target: 'toy', kind: 'api', permission: 'read', handle: null, params: {}, fingerprint: null,
    status: 'issuing', purpose: 'test', decisionId: 'd', grantId: null, sessionId: null, trust: null, issuedAt: now,
    expiresAt: now + 60_000, maxExpiresAt: now + 60_000, renewals: 0, revokeAttempts: 0, nextAttemptAt: null, lastError: null,
    revokedAt: null, revokedBy: null, revokeReason: null, ...over,
  };
}

/** Counts the transactions the connection begins. */
function counting(db: SqliteDb): { begins: number } {
  const c = { begins: 0 };
  const exec = db.raw.exec.bind(db.raw);
  db.raw.exec = (sql: string) => {
    if (/^\s*BEGIN/i.test(sql)) c.begins++;
    return exec(sql);
  };
  return c;
}

function withFile<T>(fn: (path: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'pcx-leases-'));
  return fn(join(dir, 'state.db')).finally(() => rmSync(dir, { recursive: true, force: true }));
}

test('writes made in one turn share one transaction; each answers once its row is committed', () =>
  withFile(async (path) => {
    const db = SqliteDb.open(path);
    const { leases } = new SqliteCredentialStore(db, { writer: 'inline' });
    const c = counting(db);
    const other = new DatabaseSync(path); // another connection sees only committed rows
    const visible = (id: string) => other.prepare('SELECT status FROM credential_leases WHERE id = ?').get(id) as { status: string } | undefined;
    const ids = Array.from({ length: 20 }, (_, i) => `lse_${i}`);
    await Promise.all(
      ids.map(async (id) => {
        await leases.insert(lease(id));
        assert.equal(visible(id)?.status, 'issuing', 'committed before the insert answers');
      }),
    );
    assert.equal(c.begins, 1, 'twenty inserts, one transaction');
    const moved = await Promise.all(ids.map((id) => leases.transition(id, ['issuing'], 'active', { handle: `h-${id}` })));
    assert.ok(moved.every((l) => l?.status === 'active'));
    assert.equal(c.begins, 2);
    assert.equal(visible('lse_7')?.status, 'active');
    other.close();
    db.close();
  }));

test('the lease writer worker: batches committed on its own connection, visible to the store before each answer', () =>
  withFile(async (path) => {
    const db = SqliteDb.open(path);
    const store = new SqliteCredentialStore(db, { writer: 'worker' });
    const { leases } = store;
    const c = counting(db);
    const ids = Array.from({ length: 50 }, (_, i) => `lse_w${i}`);
    await Promise.all(
      ids.map(async (id) => {
        await leases.insert(lease(id, { params: { parent: 'lse_p' } }));
        assert.equal((await leases.get(id))?.status, 'issuing', 'committed before the insert answers');
        const l = await leases.transition(id, ['issuing'], 'active', { handle: `h-${id}`, params: { parent: 'lse_p', scopes: ['a'] } });
        assert.deepEqual([l?.status, l?.handle, l?.params], ['active', `h-${id}`, { parent: 'lse_p', scopes: ['a'] }]);
      }),
    );
    assert.equal(c.begins, 0, 'no write transaction on the store connection');
    assert.equal((await leases.children('lse_p')).length, 50);
    // Failures come back one by one: a duplicate id, an unknown lease, a lost compare-and-set.
    const [dup, missing, lost] = await Promise.allSettled([
      leases.insert(lease('lse_w1')),
      leases.update('lse_nope', { lastError: 'x' }),
      leases.transition('lse_w2', ['issuing'], 'failed'),
    ]);
    assert.equal(dup.status, 'rejected');
    assert.equal(missing.status === 'rejected' && (missing.reason as Error).name, 'NotFound');
    assert.deepEqual(lost, { status: 'fulfilled', value: undefined });
    // Inside a unit of work the write joins the store connection's transaction instead.
    await db.transaction(async () => {
      await leases.update('lse_w3', { lastError: 'in a transaction' });
    });
    assert.equal(c.begins, 1);
    assert.equal((await leases.get('lse_w3'))?.lastError, 'in a transaction');
    await store.close();
    await assert.rejects(leases.insert(lease('lse_closed')), /lease writer closed/);
    db.close();
  }));

test('a lease is found by (kind, handle) through an index, not a table scan', async () => {
  const db = SqliteDb.open(':memory:');
  const { leases } = new SqliteCredentialStore(db);
  await leases.insert(lease('l1', { handle: 'jti-1' }));
  assert.equal((await leases.byHandle('api', 'jti-1'))?.id, 'l1');
  assert.equal(await leases.byHandle('ssh', 'jti-1'), undefined);
  const plan = db.raw.prepare('EXPLAIN QUERY PLAN SELECT * FROM credential_leases WHERE kind = ? AND handle = ?').all('api', 'jti-1') as { detail: string }[];
  assert.match(plan.map((r) => r.detail).join('\n'), /USING INDEX credential_leases_handle/);
  db.close();
});

test('without batching every write is its own transaction; the answers are the same', async () => {
  const db = SqliteDb.open(':memory:');
  const { leases } = new SqliteCredentialStore(db, { batchWrites: false });
  const c = counting(db);
  await Promise.all(['lse_x', 'lse_y', 'lse_z'].map((id) => leases.insert(lease(id, { params: { parent: 'lse_p' } }))));
  assert.equal(c.begins, 3);
  assert.deepEqual((await leases.children('lse_p')).map((l) => l.id).sort(), ['lse_x', 'lse_y', 'lse_z']);
  db.close();
});

test('a store closed with writes queued rejects them', async () => {
  const db = SqliteDb.open(':memory:');
  const { leases } = new SqliteCredentialStore(db);
  const p = leases.insert(lease('lse_late'));
  db.close();
  await assert.rejects(p);
});

test('policy versions: numbered in order, the newest is active, listed newest first without files', async () => {
  const db = SqliteDb.open(':memory:');
  const { versions } = new SqlitePolicyStore(db);
  assert.equal(await versions.newest(), undefined);
  const files = [{ name: 'a.cedar', origin: 'config' as const, text: 'permit (principal, action, resource);' }];
  const v1 = await versions.append({ created_at: '2026-12-02T00:00:00.000Z', actor: 'config', reason: 'first', digest: 'd1', files });
  const v2 = await versions.append({ created_at: '2026-12-02T00:00:01.000Z', actor: 'user:a', reason: 'second', digest: 'd2', files });
  assert.deepEqual([v1.version, v2.version], [1, 2]);
  assert.deepEqual(await versions.newest(), v2);
  assert.deepEqual(await versions.get(1), v1);
  assert.deepEqual((await versions.list()).map((v) => [v.version, v.reason, 'files' in v]), [[2, 'second', false], [1, 'first', false]]);
  db.close();
});

test('leases by grant and by parent are found through their partial indexes; leases without either are not indexed', async () => {
  const db = SqliteDb.open(':memory:');
  const { leases } = new SqliteCredentialStore(db);
  await leases.insert(lease('l1', { grantId: 'grt-1', params: { parent: 'lse_p' } }));
  await leases.insert(lease('l2'));
  assert.deepEqual((await leases.list({ grantId: 'grt-1' })).map((l) => l.id), ['l1']);
  assert.deepEqual((await leases.children('lse_p')).map((l) => l.id), ['l1']);
  const plan = (sql: string, ...v: string[]) => (db.raw.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...v) as { detail: string }[]).map((r) => r.detail).join('\n');
  assert.match(plan('SELECT * FROM credential_leases WHERE grant_id IN (?) AND status IN (?, ?) ORDER BY issued_at DESC, id LIMIT 10', 'grt-1', 'active', 'issuing'), /USING INDEX credential_leases_grant/);
  assert.match(plan(`SELECT * FROM credential_leases WHERE json_extract(params, '$.parent') = ? AND status IN ('issuing', 'active', 'revoke_failed')`, 'lse_p'), /USING INDEX credential_leases_parent/);
  const partial = (name: string) => (db.raw.prepare('SELECT sql FROM sqlite_master WHERE name = ?').get(name) as { sql: string }).sql;
  assert.match(partial('credential_leases_grant'), /WHERE grant_id IS NOT NULL$/);
  assert.match(partial('credential_leases_parent'), /IS NOT NULL$/);
  db.close();
});
