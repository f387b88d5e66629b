// One gateway session's records read by its id (AuditReader.sessionRecords, audit migration 3) on
// SQLite and PostgreSQL: exactly that session's records of the session stream, in seq order, by
// type and page — and through the partial index on payload.session, never a scan of the stream.
import assert from 'node:assert/strict';
import { AuditLog } from '../../src/audit/log.ts';
import type { AuditStore } from '../../src/audit/ports.ts';
import { SqliteDb } from '../../src/store/sqlite/db.ts';
import { SqliteAuditStore } from '../../src/store/sqlite/audit/index.ts';
import { SESSION_RECORDS_SQL as SQLITE_SQL } from '../../src/store/sqlite/audit/query.ts';
import { SESSION_RECORDS_SQL as PG_SQL } from '../../src/store/postgres/audit/query.ts';
import { PgDb } from '../../src/store/postgres/db.ts';
import { pgAuditStore } from '../../src/store/postgres/audit.ts';
import { tempStore } from '../audit/helpers.ts';
import { adminClient, freshStoreUrl } from './pg.ts';
import { forEachStore, type StoreKind } from './stores.ts';

const A = 'gws_AAAAAAAAAAAAAAAAAAAA';
const B = 'gws_BBBBBBBBBBBBBBBBBBBB';

/** The store, and the plan its database chooses for the session query. */
async function open(kind: StoreKind): Promise<{ store: AuditStore; plan: () => Promise<string>; close: () => Promise<void> }> {
  if (kind === 'sqlite') {
    const t = tempStore();
    const db = new SqliteDb(t.db);
    return {
      store: new SqliteAuditStore(db),
      plan: async () => (t.db.prepare(`EXPLAIN QUERY PLAN ${SQLITE_SQL}`).all(A, 0, null, null, 10) as { detail: string }[]).map((r) => r.detail).join('\n'),
      close: async () => t.cleanup(),
    };
  }
  const url = await freshStoreUrl();
  const db = await PgDb.open(url, { pool: 2 });
  const store = pgAuditStore(db);
  const admin = await adminClient(new URL(url).pathname.slice(1));
  return {
    store,
    plan: async () => {
      // A table this small is read sequentially when the planner may: it may not here, so the plan shows the index it can use.
      await admin.query('SET enable_seqscan = off');
      await admin.query(`PREPARE q(text, bigint, text, bigint) AS ${PG_SQL}`);
      const rows = (await admin.query(`EXPLAIN EXECUTE q('${A}', 0, NULL, 10)`)).rows as { 'QUERY PLAN': string }[];
      return rows.map((r) => r['QUERY PLAN']).join('\n');
    },
    close: async () => {
      await admin.end();
      await store.close();
      await db.close();
    },
  };
}

forEachStore('a session’s records are read by its id, through the session index', async (_o, kind) => {
  const { store, plan, close } = await open(kind);
  const log = new AuditLog(store, { writer: 'inline' });
  try {
    const appends = [];
    for (let n = 1; n <= 5; n++) {
      appends.push(log.append({ stream: 'session', type: n === 1 ? 'session.start' : 'db.statement', actor: 'workload:a', payload: { session: A, n } }));
      appends.push(log.append({ stream: 'session', type: n === 1 ? 'session.start' : 'db.statement', actor: 'workload:a', payload: { session: B, n } }));
      // Another stream's record naming the session is none of its records.
      appends.push(log.append({ stream: 'authz', type: 'authz.decision', actor: 'workload:a', payload: { session: A, n } }));
    }
    await Promise.all(appends);
    const all = await log.sessionRecords(A, { limit: 100 });
    assert.deepEqual(all.map((r) => [r.stream, r.payload.session, r.payload.n]), [1, 2, 3, 4, 5].map((n) => ['session', A, n]));
    assert.ok(all.every((r, i) => i === 0 || r.seq > all[i - 1]!.seq));
    const [start] = await log.sessionRecords(B, { type: 'session.start', limit: 1 });
    assert.equal(start?.payload.n, 1);
    assert.equal(start?.payload.session, B);
    const page = await log.sessionRecords(A, { afterSeq: all[1]!.seq, limit: 2 });
    assert.deepEqual(page.map((r) => r.payload.n), [3, 4]);
    assert.deepEqual(await log.sessionRecords('gws_CCCCCCCCCCCCCCCCCCCC', { limit: 10 }), []);
    assert.match(await plan(), /audit_events_session/);
  } finally {
    await log.close();
    await close();
  }
});
