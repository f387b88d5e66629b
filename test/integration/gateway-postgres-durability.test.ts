// The PostgreSQL gateway's durability rule (docs/gateways.md "Recording, durable before the
// result"), against the real audit store made to refuse one statement's records (a trigger, not a
// stand-in): a read whose record cannot be made durable ran, but not one row of it reaches the
// client, which gets 58000 and loses the session; a write whose decision cannot be made durable
// never runs upstream at all. And every Execute of a prepared statement is decided (and recorded).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import pg from 'pg';
import { AUDIT_DB_FILE } from '../../src/store/sqlite/index.ts';
import { TEST_STORE, adminClient } from '../store/pg.ts';
import { startGatewayFixture, type GatewayFixture } from './gateway-postgres-helpers.ts';

let f: GatewayFixture;

before(async () => {
  f = await startGatewayFixture();
  const su = f.pgsrv.admin();
  await su.connect();
  await su.query("CREATE TABLE public.ledger (id int PRIMARY KEY, note text); INSERT INTO public.ledger VALUES (1, 'first'), (2, 'second')");
  await su.query('GRANT ALL ON public.ledger TO portcullis_broker WITH GRANT OPTION');
  await su.end();
});

after(async () => {
  await f?.close();
});

/** Makes the real audit store refuse records (of `stream`) whose payload contains `marker`, until undone. */
async function refuse(stream: string, marker: string): Promise<() => Promise<void>> {
  if (TEST_STORE === 'sqlite') {
    const db = new DatabaseSync(join(f.h.dir, 'data', AUDIT_DB_FILE));
    db.exec('PRAGMA busy_timeout = 20000'); // the server's audit writer may hold the lock a moment
    db.exec(`CREATE TRIGGER test_refuse BEFORE INSERT ON audit_events WHEN NEW.stream = '${stream}' AND instr(NEW.payload, '${marker}') > 0 BEGIN SELECT RAISE(ABORT, 'injected: audit store refuses this record'); END`);
    return async () => {
      db.exec('DROP TRIGGER test_refuse');
      db.close();
    };
  }
  const store = f.h.running.broker.config.store as { url?: string };
  const c = await adminClient(new URL(store.url!).pathname.slice(1));
  await c.query(`CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected: audit store refuses this record'; END $$;
    CREATE TRIGGER test_refuse BEFORE INSERT ON audit_events FOR EACH ROW WHEN (NEW.stream = '${stream}' AND strpos(NEW.payload, '${marker}') > 0) EXECUTE FUNCTION test_refuse()`);
  return async () => {
    await c.query('DROP TRIGGER test_refuse ON audit_events; DROP FUNCTION test_refuse()');
    await c.end();
  };
}

/** Runs a query through `c`, counting the rows (DataRow messages) that reach the client. */
function rowsSeen(c: pg.Client, text: string): Promise<{ rows: number; error?: Error & { code?: string } }> {
  return new Promise((resolve) => {
    let rows = 0;
    const q = new pg.Query(text);
    q.on('row', () => rows++);
    q.on('end', () => resolve({ rows }));
    q.on('error', (error: Error & { code?: string }) => resolve({ rows, error }));
    void c.query(q);
  });
}

async function ledgerRows(): Promise<number> {
  const su = f.pgsrv.admin();
  await su.connect();
  try {
    return (await su.query('SELECT count(*)::int AS n FROM public.ledger')).rows[0].n as number;
  } finally {
    await su.end();
  }
}

test('a read whose record cannot be made durable: 58000, the session ends, and none of its rows reach the client', async () => {
  const c = await f.client(await f.token());
  assert.equal((await rowsSeen(c, 'SELECT id, note FROM ledger')).rows, 2, 'rows flow once recorded');
  const undo = await refuse('session', 'AS doomed');
  try {
    const r = await rowsSeen(c, 'SELECT id, note AS doomed FROM ledger');
    assert.equal(r.error?.code, '58000', r.error?.message);
    assert.match(r.error?.message ?? '', /could not be recorded/);
    assert.equal(r.rows, 0, 'not one row of an unrecorded statement reached the client');
    await assert.rejects(c.query('SELECT 1'), 'the session ended');
  } finally {
    await undo();
  }
});

test('a prepared read whose record cannot be made durable: not even its BindComplete or RowDescription reaches the client', async () => {
  const c = await f.client(await f.token());
  const seen: string[] = [];
  const conn = (c as unknown as { connection: NodeJS.EventEmitter }).connection;
  for (const m of ['bindComplete', 'rowDescription', 'dataRow', 'commandComplete']) conn.on(m, () => seen.push(m));
  const q = (text: string) => c.query({ name: text.length.toString(), text, values: [1] });
  await q('SELECT id, note FROM ledger WHERE id = $1');
  assert.deepEqual(seen, ['bindComplete', 'rowDescription', 'dataRow', 'commandComplete'], 'a recorded statement gets its whole reply');
  seen.length = 0;
  const undo = await refuse('session', 'AS doomed_prepared');
  try {
    const err = await q('SELECT note AS doomed_prepared FROM ledger WHERE id = $1').then(() => undefined, (e: Error & { code?: string }) => e);
    assert.equal(err?.code, '58000', err?.message);
    // Bind, Describe and Execute went upstream together: everything the server answered for them waited for the record.
    assert.deepEqual(seen, [], 'nothing of the unrecorded statement reached the client');
  } finally {
    await undo();
  }
});

test('a write whose decision cannot be made durable never runs upstream', async () => {
  const c = await f.client(await f.token());
  const before = await ledgerRows();
  // The decisions of a statement naming public.ledger are refused by the authz stream.
  const undo = await refuse('authz', 'public.ledger');
  try {
    const r = await rowsSeen(c, "INSERT INTO ledger VALUES (3, 'never')");
    assert.equal(r.error?.code, '58000', r.error?.message);
  } finally {
    await undo();
  }
  assert.equal(await ledgerRows(), before, 'the insert did not run');
});

test('every Execute of a prepared statement is decided and recorded with its own decision', async () => {
  const c = await f.client(await f.token());
  const q = (v: number) => c.query({ name: 'p-ledger', text: 'SELECT note FROM ledger WHERE id = $1', values: [v] });
  await q(1);
  await q(2);
  await q(1);
  await c.end();
  await f.h.running.broker.audit.flush();
  const statements = (await f.h.running.broker.audit.query({ stream: 'session', type: 'db.statement', order: 'desc', limit: 10 }))
    .filter((r) => r.payload.statement === 'SELECT note FROM ledger WHERE id = $1');
  assert.equal(statements.length, 3);
  const ids = statements.map((r) => (r.payload.decisions as { decision_id: string }[])[0]!.decision_id);
  assert.equal(new Set(ids).size, 3, 'a decision per Execute, none reused');
  const authz = await f.h.running.broker.audit.query({ stream: 'authz', order: 'desc', limit: 50 });
  for (const id of ids) assert.ok(authz.some((r) => r.payload.decision_id === id), `decision ${id} is in the authz stream`);
});
