// The lease repository's contract (src/credentials/ports.ts) over both stores: a write answers once
// committed and fails alone, the status compare-and-set, units of work, filters and ordering,
// children and due leases, and two replicas racing to claim the same transition.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PostgresStore } from '../../src/store/postgres/index.ts';
import type { Lease } from '../../src/credentials/types.ts';
import { forEachStore } from './stores.ts';
import { freshStoreUrl } from './pg.ts';
import { withReplicas } from './replicas.ts';

const NOW = 1_700_000_000_000;

function lease(id: string, over: Partial<Lease> = {}): Lease {
  return {
    id, identityId: 'workload:a', target: 'toy', kind: 'api', permission: 'read', handle: null, params: {}, fingerprint: null,
    status: 'issuing', purpose: 'test', decisionId: 'd', grantId: null, sessionId: null, trust: null, issuedAt: NOW,
    expiresAt: NOW + 60_000, maxExpiresAt: NOW + 60_000, renewals: 0, revokeAttempts: 0, nextAttemptAt: null, lastError: null,
    revokedAt: null, revokedBy: null, revokeReason: null, ...over,
  };
}


forEachStore('a lease reads back as written; update patches and answers the lease as it is now', async (open) => {
  const { leases } = (await open()).credentials;
  const full = lease('lse_full', {
    handle: 'h', params: { parent: 'lse_p', scopes: ['a', 'b'], n: 3, nested: { ok: true } }, fingerprint: 'sha256:x', grantId: 'g1',
    sessionId: 's1', trust: 't1', renewals: 2, revokeAttempts: 1, nextAttemptAt: NOW + 5, lastError: 'e', revokedAt: NOW + 6, revokedBy: 'user:a', revokeReason: 'r',
  });
  await leases.insert(full);
  assert.deepEqual(await leases.get('lse_full'), full);
  await leases.insert(lease('lse_min'));
  assert.deepEqual(await leases.get('lse_min'), lease('lse_min'));
  assert.equal(await leases.get('lse_none'), undefined);
  const l = await leases.update('lse_min', { expiresAt: NOW + 1, params: { scopes: ['c'] }, lastError: null, renewals: 1 });
  assert.deepEqual(l, { ...lease('lse_min'), expiresAt: NOW + 1, params: { scopes: ['c'] }, renewals: 1 });
  assert.deepEqual(await leases.get('lse_min'), l);
  assert.deepEqual(await leases.update('lse_min', {}), l, 'an empty patch answers the lease');
  // Written together (one batch where the store groups writes): awkward text survives too.
  const odd = 'a "quoted", {brace} \\ NULL \'x\' é';
  const pair = [lease('lse_o1', { lastError: odd, params: { s: odd, nil: null } }), lease('lse_o2', { lastError: 'NULL', handle: '' })];
  await Promise.all(pair.map((p) => leases.insert(p)));
  assert.deepEqual([await leases.get('lse_o1'), await leases.get('lse_o2')], pair);
  const moved = await Promise.all(pair.map((p) => leases.transition(p.id, ['issuing'], 'active', { revokeReason: odd, params: { s: odd } })));
  assert.deepEqual(moved.map((m) => [m?.revokeReason, m?.params]), [[odd, { s: odd }], [odd, { s: odd }]]);
});

forEachStore('a write that fails fails alone; the others commit', async (open) => {
  const { leases } = (await open()).credentials;
  await leases.insert(lease('lse_dup'));
  const results = await Promise.allSettled([
    leases.insert(lease('lse_a')),
    leases.insert(lease('lse_dup')),
    leases.insert(lease('lse_b')),
    leases.update('lse_nope', { lastError: 'x' }),
    leases.transition('lse_dup', ['active'], 'revoked'),
    leases.update('lse_dup', { lastError: 'y' }),
  ]);
  assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
  assert.equal((results[3] as PromiseRejectedResult).reason.name, 'NotFound');
  assert.deepEqual(results[4], { status: 'fulfilled', value: undefined }, 'a lost compare-and-set is not an error');
  assert.deepEqual((await leases.list()).map((l) => l.id).sort(), ['lse_a', 'lse_b', 'lse_dup']);
  assert.equal((await leases.get('lse_dup'))?.lastError, 'y');
  await assert.rejects(leases.update('lse_nope', { lastError: 'x' }), /lease lse_nope not found/);
  // The same lease written twice in one turn: applied in order.
  const [t1, t2] = await Promise.all([
    leases.transition('lse_a', ['issuing'], 'active', { handle: 'ha' }),
    leases.transition('lse_a', ['issuing'], 'failed'),
  ]);
  assert.equal(t1?.status, 'active');
  assert.equal(t2, undefined);
});

forEachStore('each write answers once committed: another replica reads it at once', async (open, kind) => {
  await withReplicas(kind, open, async (a, b) => {
    const ids = Array.from({ length: 40 }, (_, i) => `lse_${String(i).padStart(2, '0')}`);
    await Promise.all(
      ids.map(async (id, i) => {
        await a.credentials.leases.insert(lease(id, { params: { parent: 'lse_p' } }));
        assert.equal((await b.credentials.leases.get(id))?.status, 'issuing', 'committed before the insert answers');
        const l = await a.credentials.leases.transition(id, ['issuing'], 'active', { handle: `h-${id}`, fingerprint: 'f', params: { parent: 'lse_p', i }, ...(i % 2 ? { expiresAt: NOW + i } : {}) });
        assert.deepEqual([l?.status, l?.handle, l?.params, l?.expiresAt], ['active', `h-${id}`, { parent: 'lse_p', i }, i % 2 ? NOW + i : NOW + 60_000]);
        assert.equal((await b.credentials.leases.get(id))?.status, 'active', 'committed before the transition answers');
      }),
    );
    assert.equal((await b.credentials.leases.children('lse_p')).length, 40);
  });
});

forEachStore('a lease is found by (kind, handle)', async (open) => {
  const { leases } = (await open()).credentials;
  await leases.insert(lease('l1', { handle: 'jti-1' }));
  await leases.insert(lease('l2', { handle: 'jti-1', kind: 'ssh' }));
  assert.equal((await leases.byHandle('api', 'jti-1'))?.id, 'l1');
  assert.equal((await leases.byHandle('ssh', 'jti-1'))?.id, 'l2');
  assert.equal(await leases.byHandle('api', 'jti-2'), undefined);
});

forEachStore('transition is a compare-and-set on the status: of two racing moves one wins', async (open) => {
  const { leases } = (await open()).credentials;
  await leases.insert(lease('lse_1'));
  const [a, b] = await Promise.all([
    leases.transition('lse_1', ['issuing'], 'active', { handle: 'h1' }),
    leases.transition('lse_1', ['issuing'], 'revoking', { revokedBy: 'user:ops' }),
  ]);
  assert.equal(a?.status, 'active');
  assert.equal(b, undefined, 'the second found it no longer issuing');
  assert.equal((await leases.get('lse_1'))?.revokedBy, null);
  assert.equal(await leases.transition('lse_missing', ['issuing'], 'active'), undefined);
  assert.equal(await leases.transition('lse_1', [], 'revoked'), undefined, 'from no state: never');
  assert.equal((await leases.transition('lse_1', ['active', 'revoke_failed'], 'revoking', { revokedBy: 'user:b' }))?.revokedBy, 'user:b');
});

forEachStore('inside a unit of work, lease writes join its transaction and roll back with it; other flows\' writes do not', async (open) => {
  const store = await open();
  const { leases } = store.credentials;
  let started!: () => void;
  const inside = new Promise<void>((r) => (started = r));
  let release!: () => void;
  const tx = store.transaction(async () => {
    await leases.insert(lease('lse_tx'));
    assert.equal((await leases.get('lse_tx'))?.status, 'issuing', 'read your own write');
    assert.equal((await leases.transition('lse_tx', ['issuing'], 'active'))?.status, 'active');
    started();
    await new Promise<void>((r) => (release = r));
    throw new Error('abort');
  });
  await inside;
  // Another flow's write is its own (PostgreSQL: commits now; SQLite: waits for the transaction).
  const outside = leases.insert(lease('lse_outside'));
  await new Promise((r) => setTimeout(r, 20));
  release();
  await assert.rejects(tx, /abort/);
  await outside;
  assert.equal(await leases.get('lse_tx'), undefined);
  assert.equal((await leases.get('lse_outside'))?.status, 'issuing');
});

forEachStore('list: every filter field, any-of arrays, newest first then id, limit', async (open) => {
  const { leases } = (await open()).credentials;
  const rows = [
    lease('lse_c', { issuedAt: NOW + 2, identityId: 'user:a', status: 'active', sessionId: 's1', grantId: 'g1', trust: 't1' }),
    lease('lse_a', { issuedAt: NOW + 2, identityId: 'user:b', status: 'revoked', target: 'db', kind: 'postgres', decisionId: 'd2' }),
    lease('lse_b', { issuedAt: NOW + 2, identityId: 'user:a', status: 'active', target: 'db', kind: 'postgres' }),
    lease('lse_old', { issuedAt: NOW, identityId: 'user:a', status: 'expired' }),
    lease('lse_new', { issuedAt: NOW + 9, identityId: 'user:c', status: 'issuing', grantId: 'g1' }),
  ];
  await Promise.all(rows.map((r) => leases.insert(r)));
  const ids = async (f: Parameters<typeof leases.list>[0], limit?: number) => (await leases.list(f, limit)).map((l) => l.id);
  assert.deepEqual(await ids({}), ['lse_new', 'lse_a', 'lse_b', 'lse_c', 'lse_old'], 'issued_at desc, then id');
  assert.deepEqual(await ids({}, 2), ['lse_new', 'lse_a']);
  assert.deepEqual(await ids({ identityId: 'user:a' }), ['lse_b', 'lse_c', 'lse_old']);
  assert.deepEqual(await ids({ identityId: ['user:b', 'user:c'] }), ['lse_new', 'lse_a']);
  assert.deepEqual(await ids({ identityId: [] }), [], 'an empty any-of matches nothing');
  assert.deepEqual(await ids({ status: ['active', 'expired'] }), ['lse_b', 'lse_c', 'lse_old']);
  assert.deepEqual(await ids({ status: 'active', target: 'db' }), ['lse_b']);
  assert.deepEqual(await ids({ kind: 'postgres' }), ['lse_a', 'lse_b']);
  assert.deepEqual(await ids({ sessionId: 's1' }), ['lse_c']);
  assert.deepEqual(await ids({ decisionId: 'd2' }), ['lse_a']);
  assert.deepEqual(await ids({ grantId: 'g1' }), ['lse_new', 'lse_c']);
  assert.deepEqual(await ids({ trust: 't1', identityId: 'user:a' }), ['lse_c']);
});

forEachStore('children: leases exchanged from a parent that may still hold a credential', async (open) => {
  const { leases } = (await open()).credentials;
  const statuses = ['issuing', 'active', 'revoke_failed', 'revoking', 'revoked', 'expired', 'failed'] as const;
  await Promise.all(statuses.map((status, i) => leases.insert(lease(`lse_k${i}`, { status, params: { parent: 'lse_p' } }))));
  await leases.insert(lease('lse_other', { status: 'active', params: { parent: 'lse_q' } }));
  await leases.insert(lease('lse_root', { status: 'active' }));
  assert.deepEqual((await leases.children('lse_p')).map((l) => l.status).sort(), ['active', 'issuing', 'revoke_failed']);
  assert.deepEqual(await leases.children('lse_none'), []);
});

forEachStore('due: active leases past their end and failed revocations due again, soonest end first, limited', async (open) => {
  const { leases } = (await open()).credentials;
  await Promise.all([
    leases.insert(lease('lse_ended', { status: 'active', expiresAt: NOW - 10 })),
    leases.insert(lease('lse_now', { status: 'active', expiresAt: NOW })),
    leases.insert(lease('lse_live', { status: 'active', expiresAt: NOW + 1 })),
    leases.insert(lease('lse_retry', { status: 'revoke_failed', expiresAt: NOW - 20, nextAttemptAt: NOW - 1 })),
    leases.insert(lease('lse_retry_null', { status: 'revoke_failed', expiresAt: NOW + 50, nextAttemptAt: null })),
    leases.insert(lease('lse_later', { status: 'revoke_failed', expiresAt: NOW - 30, nextAttemptAt: NOW + 1 })),
    leases.insert(lease('lse_issuing', { status: 'issuing', expiresAt: NOW - 40 })),
    leases.insert(lease('lse_revoked', { status: 'revoked', expiresAt: NOW - 40 })),
  ]);
  assert.deepEqual((await leases.due(NOW)).map((l) => l.id), ['lse_retry', 'lse_ended', 'lse_now', 'lse_retry_null']);
  assert.deepEqual((await leases.due(NOW, 2)).map((l) => l.id), ['lse_retry', 'lse_ended']);
});

forEachStore('two replicas claiming the same due leases: exactly one claim each', async (open, kind) => {
  await withReplicas(kind, open, async (a, b) => {
    const n = 30;
    await Promise.all(
      Array.from({ length: n }, (_, i) =>
        a.credentials.leases.insert(
          lease(`lse_d${String(i).padStart(2, '0')}`, i % 2 ? { status: 'active', expiresAt: NOW - i } : { status: 'revoke_failed', expiresAt: NOW - i, nextAttemptAt: NOW - 1, revokeAttempts: 1 }),
        ),
      ),
    );
    // Each replica's reaper lists what is due and claims it: a failed revocation's next attempt
    // (revoke_failed → revoking), an ended lease (active → revoking); both replicas twice over.
    const reapers = [a, b, a, b];
    const listed = await Promise.all(reapers.map((s) => s.credentials.leases.due(NOW, 1000)));
    for (const due of listed) assert.equal(due.length, n, 'every reaper sees every due lease');
    const claims = new Map<string, number>();
    await Promise.all(
      reapers.map((s, r) =>
        Promise.all(
          listed[r]!.map(async (l) => {
            const got = await s.credentials.leases.transition(l.id, [l.status], 'revoking', { revokedBy: `reaper-${r}`, revokeReason: l.status === 'active' ? 'expired' : l.revokeReason });
            if (got) claims.set(l.id, (claims.get(l.id) ?? 0) + 1);
          }),
        ),
      ),
    );
    assert.equal(claims.size, n, 'every due lease was claimed');
    assert.deepEqual([...new Set(claims.values())], [1], 'and by exactly one claimant');
    const rows = await b.credentials.leases.list({ status: 'revoking' });
    assert.equal(rows.length, n);
    assert.deepEqual(await a.credentials.leases.due(NOW), []);
    // One lease, many claimants from both replicas in one turn: one wins.
    await a.credentials.leases.insert(lease('lse_one', { status: 'revoke_failed', nextAttemptAt: null }));
    const tries = await Promise.all(Array.from({ length: 16 }, (_, i) => (i % 2 ? a : b).credentials.leases.transition('lse_one', ['revoke_failed'], 'revoking', { revokedBy: `r${i}` })));
    const winners = tries.filter((t) => t !== undefined);
    assert.equal(winners.length, 1);
    assert.equal((await a.credentials.leases.get('lse_one'))?.revokedBy, winners[0]!.revokedBy);
  });
});

test('PostgreSQL: every lookup the lease port makes is served by an index', async () => {
  const store = await PostgresStore.open(await freshStoreUrl(), { pool: 2 });
  try {
    const plan = (sql: string, params: unknown[]) =>
      store.transaction(async () => {
        await store.db.query('SET LOCAL enable_seqscan = off');
        return (await store.db.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${sql}`, params)).map((r) => r['QUERY PLAN']).join('\n');
      });
    const cases: [string, unknown[], RegExp][] = [
      ['SELECT * FROM credential_leases WHERE id = $1', ['x'], /credential_leases_pkey/],
      ['SELECT * FROM credential_leases WHERE kind = $1 AND handle = $2', ['api', 'x'], /credential_leases_handle/],
      ["SELECT * FROM credential_leases WHERE params ->> 'parent' = $1", ['x'], /credential_leases_parent/],
      ['SELECT * FROM credential_leases WHERE identity_id = $1', ['x'], /credential_leases_identity/],
      ['SELECT * FROM credential_leases WHERE session_id = $1', ['x'], /credential_leases_session/],
      ['SELECT * FROM credential_leases WHERE grant_id = $1', ['x'], /credential_leases_grant/],
      ['SELECT * FROM credential_leases WHERE decision_id = $1', ['x'], /credential_leases_decision/],
      ['SELECT * FROM credential_leases WHERE target = $1', ['x'], /credential_leases_target/],
      ['SELECT * FROM credential_leases ORDER BY issued_at DESC, id LIMIT 10', [], /credential_leases_issued/],
      [
        "SELECT * FROM credential_leases WHERE (status = 'active' AND expires_at <= $1) OR (status = 'revoke_failed' AND (next_attempt_at IS NULL OR next_attempt_at <= $1))",
        [NOW],
        /credential_leases_status/,
      ],
    ];
    for (const [sql, params, index] of cases) assert.match(await plan(sql, params), index, sql);
  } finally {
    await store.close();
  }
});

test('PostgreSQL: a store closed with lease writes queued commits them first', async () => {
  const url = await freshStoreUrl();
  const store = await PostgresStore.open(url, { pool: 2 });
  const writes = Array.from({ length: 10 }, (_, i) => store.credentials.leases.insert(lease(`lse_q${i}`)));
  await store.close();
  await Promise.all(writes);
  const again = await PostgresStore.open(url, { pool: 1 });
  try {
    assert.equal((await again.credentials.leases.list()).length, 10);
  } finally {
    await again.close();
  }
});

test('PostgreSQL group commit: one turn\'s writes share one transaction and a statement per shape; without it, one statement each', async () => {
  const store = await PostgresStore.open(await freshStoreUrl(), { pool: 4 });
  try {
    const pool = store.db.pool;
    const seen: string[] = [];
    const connect = pool.connect.bind(pool);
    const watched = new WeakSet<object>();
    // pool.query checks out with a callback (autocommit): left alone; transactions await connect().
    (pool as { connect: unknown }).connect = async (...cb: unknown[]) => {
      if (cb.length > 0) return (connect as (...a: unknown[]) => unknown)(...cb);
      const client = await connect();
      if (watched.has(client)) return client;
      watched.add(client);
      const query = client.query.bind(client) as (sql: string, ...rest: unknown[]) => unknown;
      (client as { query: unknown }).query = (sql: string, ...rest: unknown[]) => {
        seen.push(String(sql).trim().split(/\s+/)[0]!);
        return query(sql, ...rest);
      };
      return client;
    };
    const ids = Array.from({ length: 20 }, (_, i) => `lse_g${String(i).padStart(2, '0')}`);
    await Promise.all(ids.map((id) => store.credentials.leases.insert(lease(id))));
    assert.deepEqual(seen, ['BEGIN', 'INSERT', 'COMMIT'], 'twenty inserts: one transaction, one statement');
    seen.length = 0;
    const moved = await Promise.all(ids.map((id, i) => store.credentials.leases.transition(id, ['issuing'], 'active', { handle: `h-${id}`, ...(i < 5 ? { expiresAt: NOW + i } : {}) })));
    assert.deepEqual(seen, ['BEGIN', 'UPDATE', 'UPDATE', 'COMMIT'], 'two shapes of transition: two statements');
    assert.deepEqual(moved.map((l) => l?.handle), ids.map((id) => `h-${id}`));
    assert.equal(moved[3]?.expiresAt, NOW + 3);
    // Without grouping: the same answers, each write autocommitted on its own.
    const { pgCredentialStore } = await import('../../src/store/postgres/credentials.ts');
    const plain = pgCredentialStore(store.db, { batchWrites: false }).leases;
    seen.length = 0;
    await Promise.all(['lse_p1', 'lse_p2'].map((id) => plain.insert(lease(id, { params: { parent: 'lse_g00' } }))));
    assert.ok(!seen.includes('BEGIN'), 'no transaction: each statement autocommitted');
    assert.deepEqual((await plain.children('lse_g00')).map((l) => l.id).sort(), ['lse_p1', 'lse_p2']);
    assert.equal((await plain.transition('lse_p1', ['issuing'], 'active'))?.status, 'active');
    assert.equal(await plain.transition('lse_p1', ['issuing'], 'active'), undefined);
    await assert.rejects(plain.insert(lease('lse_p1')), /exists already/);
    await assert.rejects(plain.update('lse_nope', {}), /lease lse_nope not found/);
  } finally {
    await store.close();
  }
});
