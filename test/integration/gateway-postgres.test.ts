// The PostgreSQL gateway end to end (issue #11): real node-postgres, psql and pgbench through a
// real Portcullis server to a real PostgreSQL target; every statement decided (42501 and the
// session goes on), transactions aborted as PostgreSQL would, recordings complete and verified,
// revocation ending the session within 1 s.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import type pg from 'pg';
import type { AuditRecord } from '../../src/audit/types.ts';
import { missingDependency } from '../ci.ts';
import { TEST_STORE } from '../store/pg.ts';
import { has, jtiOf, run, startGatewayFixture, type GatewayFixture } from './gateway-postgres-helpers.ts';

let f: GatewayFixture;

before(async () => {
  f = await startGatewayFixture();
});

after(async () => {
  await f?.close();
});

/** The session stream's records of one gateway session, in order. */
async function recordsOf(session: string): Promise<AuditRecord[]> {
  await f.h.running.broker.audit.flush();
  const all = await f.h.running.broker.audit.query({ stream: 'session', limit: 1000 });
  return all.filter((r) => r.payload.session === session).sort((a, b) => Number(a.payload.n) - Number(b.payload.n));
}

async function sessionIdOf(c: pg.Client): Promise<string> {
  // The newest session.start of this identity whose client port is ours is not observable; the
  // live registry knows which session is this connection's: the one started last.
  const live = f.h.running.broker.gatewayAddresses();
  assert.ok(live.has('orders-gw'));
  await f.h.running.broker.audit.flush();
  const starts = await f.h.running.broker.audit.query({ stream: 'session', type: 'session.start', order: 'desc', limit: 1 });
  void c;
  return String(starts[0]!.payload.session);
}

const denied = (e: unknown) => {
  const err = e as { code?: string; message?: string };
  assert.equal(err.code, '42501', err.message);
  assert.match(err.message ?? '', /permission denied by Portcullis: .* \(decision [0-9a-f-]{36}\)/);
  return true;
};

test('allowed and denied statements: 42501 with the decision id, and the session goes on', async () => {
  const c = await f.client(await f.token());
  const id = await sessionIdOf(c);
  assert.deepEqual((await c.query('SELECT id, name FROM items ORDER BY id LIMIT 2')).rows, [{ id: 1, name: 'one' }, { id: 2, name: 'two' }]);
  await assert.rejects(c.query('SELECT * FROM secrets'), denied);
  await assert.rejects(c.query('SELECT pg_terminate_backend(1)'), (e: Error) => denied(e) && /db\.execute on Function::"pg_terminate_backend"/.test(e.message));
  await assert.rejects(c.query('SELEC 1'), (e: Error & { code?: string }) => e.code === '42501' && /could not be parsed/.test(e.message));
  await assert.rejects(c.query('SET ROLE postgres_su'), denied);
  await assert.rejects(c.query("COPY items TO PROGRAM 'id'"), denied);
  // Extended protocol: decided at Parse; a named statement executed twice is recorded twice.
  await assert.rejects(c.query('SELECT secret FROM secrets WHERE id = $1', [1]), denied);
  for (const v of [1, 2]) assert.equal((await c.query({ name: 'by-id', text: 'SELECT name FROM items WHERE id = $1', values: [v] })).rows.length, 1);
  assert.equal((await c.query('SELECT count(*)::int AS n FROM items')).rows[0].n >= 2, true);
  await c.end();
  const recs = await recordsOf(id);
  const statements = recs.filter((r) => r.type === 'db.statement');
  assert.deepEqual(recs.map((r) => r.payload.n), recs.map((_, i) => i + 1), 'numbered 1..N without gaps');
  assert.equal(recs.at(-1)!.type, 'session.end');
  assert.equal(recs.at(-1)!.payload.records, recs.length);
  const byText = (s: string) => statements.filter((r) => r.payload.statement === s);
  assert.equal(byText('SELECT * FROM secrets')[0]!.decision, 'deny');
  assert.equal(byText('SELECT * FROM secrets')[0]!.payload.executed, false);
  assert.equal(byText('SELECT name FROM items WHERE id = $1').length, 2);
  assert.ok(byText('SELECT name FROM items WHERE id = $1').every((r) => r.payload.executed === true && r.payload.rows === 1 && r.payload.protocol === 'extended'));
  assert.equal(byText('SELECT id, name FROM items ORDER BY id LIMIT $1')[0]!.payload.rows, 2);
  // Normalized: the literal in the unparsable statement or in COPY … PROGRAM is never raw text unless opted in.
  assert.ok(statements.every((r) => r.payload.text === undefined));
  const unparsable = statements.find((r) => r.payload.kind === 'unparsable')!;
  assert.equal(unparsable.payload.statement, null);
  assert.equal(unparsable.decision, 'deny');
});

test('a denied DDL inside a transaction aborts it, as PostgreSQL would; ROLLBACK ends it and the session goes on', async () => {
  const c = await f.client(await f.token());
  await c.query('BEGIN');
  await c.query("INSERT INTO items VALUES (100, 'in tx')");
  await assert.rejects(c.query('DROP TABLE items'), denied);
  await assert.rejects(c.query('SELECT 1'), (e: Error & { code?: string }) => e.code === '25P02');
  await c.query('ROLLBACK');
  assert.equal((await c.query('SELECT count(*)::int AS n FROM items WHERE id = 100')).rows[0].n, 0, 'the insert before the denied DDL was rolled back');
  // Multi-statement: the first runs inside the implicit transaction, the denied second fails it, the third never runs.
  await assert.rejects(c.query("INSERT INTO items VALUES (101, 'a'); SELECT * FROM secrets; INSERT INTO items VALUES (102, 'b')"), denied);
  assert.equal((await c.query('SELECT count(*)::int AS n FROM items WHERE id IN (101, 102)')).rows[0].n, 0);
  await c.end();
});

test('a prepared statement decided at Parse is decided again once the policy changes', async () => {
  const c = await f.client(await f.token());
  const q = (v: number) => c.query({ name: 'p-items', text: 'SELECT name FROM items WHERE id = $1', values: [v] });
  assert.equal((await q(1)).rows[0].name, 'one');
  const dp = f.h.running.broker.decisions;
  const before = dp.version!;
  await dp.activate([...before.files, { name: 'zz-no-items.cedar', origin: 'api', text: 'forbid (principal, action == Action::"db.select", resource == Table::"public.items");' }], 'test', 'deny items');
  try {
    await assert.rejects(q(2), denied);
    assert.equal((await c.query('SELECT 1 AS one')).rows[0].one, 1, 'the session goes on');
  } finally {
    await dp.activate(before.files, 'test', 'restore');
  }
  assert.equal((await c.query('SELECT name FROM items WHERE id = $1', [2])).rows[0].name, 'two');
  await c.end();
});

test('psql: allowed, denied and COPY through the gateway; the password is the session token', async (t) => {
  if (!has('psql')) return t.skip(missingDependency('psql', 'apt-get install postgresql-client'));
  const token = await f.token();
  const dir = f.h.dir;
  const script = join(dir, 'script.sql');
  writeFileSync(script, "SELECT name FROM items WHERE id = 1;\nSELECT secret FROM secrets;\nCOPY items FROM STDIN;\n200\tcopied\n\\.\nCOPY (SELECT name FROM items WHERE id = 200) TO STDOUT;\n");
  const env = { ...process.env, PGPASSWORD: token, PGCONNECT_TIMEOUT: '10' };
  const r = await run('psql', ['-X', '-A', '-t', '-h', '127.0.0.1', '-p', String(f.port), '-U', 'api', '-d', 'orders-db', '-f', script], { env }).catch((e: { stdout: string; stderr: string; code: number }) => e);
  assert.match(r.stdout, /^one$/m);
  assert.match(r.stdout, /^copied$/m);
  assert.match(r.stderr, /permission denied by Portcullis: db\.select on Table::"public\.secrets"/);
  // A wrong password: refused like PostgreSQL refuses one.
  const bad = await run('psql', ['-X', '-h', '127.0.0.1', '-p', String(f.port), '-U', 'api', '-d', 'orders-db', '-c', 'SELECT 1'], { env: { ...env, PGPASSWORD: 'not-a-token' } }).catch((e: { stderr: string; code: number }) => e);
  assert.match(bad.stderr, /password authentication failed for user "api"/);
});

test('pgbench -M simple and -M prepared run through the gateway, every statement recorded', async (t) => {
  if (!has('pgbench')) return t.skip(missingDependency('pgbench', 'apt-get install postgresql-client'));
  const env = { ...process.env, PGPASSWORD: await f.token(), PGCONNECT_TIMEOUT: '10' };
  await f.h.running.broker.audit.flush();
  const before = (await f.h.running.broker.audit.query({ stream: 'session', type: 'db.statement', order: 'desc', limit: 1 }))[0]?.seq ?? 0;
  for (const mode of ['simple', 'prepared']) {
    for (const script of [['-S'], []]) {
      const r = await run('pgbench', ['-n', ...script, '-M', mode, '-c', '2', '-t', '10', '-h', '127.0.0.1', '-p', String(f.port), '-U', 'api', 'orders-db'], { env });
      assert.match(r.stdout, /number of transactions actually processed: 20\/20/, `${mode} ${script.join(' ')}: ${r.stdout}${r.stderr}`);
    }
  }
  await f.h.running.broker.audit.flush();
  const recs = (await f.h.running.broker.audit.query({ stream: 'session', type: 'db.statement', limit: 1000, afterSeq: before })).filter((r) => String(r.payload.statement).includes('pgbench_'));
  // -S: 1 select per transaction; TPC-B: 5 statements (3 updates, select, insert) per transaction.
  const executed = recs.filter((r) => r.payload.executed === true && r.decision === 'allow');
  assert.equal(executed.filter((r) => r.payload.kind === 'select' && String(r.payload.statement).startsWith('SELECT abalance')).length, 2 * 20 + 2 * 20);
  assert.equal(executed.filter((r) => r.payload.kind === 'update').length, 2 * 3 * 20);
  assert.equal(executed.filter((r) => r.payload.kind === 'insert').length, 2 * 20);
});

test('revoking the login session mid-query ends the gateway session within 1 s, with a clear FATAL error', async () => {
  const token = await f.token();
  const c = await f.client(token);
  const id = await sessionIdOf(c);
  const q = c.query('SELECT pg_sleep(30)').then(() => undefined, (e: Error & { code?: string }) => e);
  const ended = new Promise<Error & { code?: string }>((r) => c.once('error', r));
  await new Promise((r) => setTimeout(r, 200));
  const t0 = performance.now();
  const rv = await f.h.post('/v1/sessions/revoke', { jti: jtiOf(token) }, token);
  assert.equal(rv.status, 200);
  const err = (await Promise.race([q, ended]))!;
  const ms = performance.now() - t0;
  assert.ok(err, 'the query did not finish normally');
  assert.ok(ms <= 1000, `ended after ${ms.toFixed(0)} ms`);
  assert.equal(err.code, '57P01', err.message);
  assert.match(err.message, /terminating connection: the login session was revoked \(Portcullis\)/);
  const recs = await waitFor(async () => {
    const r = await recordsOf(id);
    return r.at(-1)?.type === 'session.end' ? r : undefined;
  });
  assert.match(String(recs.at(-1)!.payload.reason), /login session was revoked/);
  // The lease the gateway held is revoked with the session.
  const lease = String(recs[0]!.payload.lease);
  await waitFor(async () => ((await f.h.running.broker.credentials.isActive(lease)) ? undefined : true));
});

test('revoking the upstream lease ends the session within 1 s', async () => {
  const c = await f.client(await f.token());
  const id = await sessionIdOf(c);
  const lease = String((await recordsOf(id))[0]!.payload.lease);
  const q = c.query('SELECT pg_sleep(30)').then(() => undefined, (e: Error & { code?: string }) => e);
  await new Promise((r) => setTimeout(r, 200));
  const t0 = performance.now();
  const r = await f.h.post('/v1/revocations', { selector: { lease }, reason: 'test: lease revoked' }, await f.h.admin());
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const err = await q;
  const ms = performance.now() - t0;
  assert.ok(err instanceof Error);
  assert.ok(ms <= 1000, `ended after ${ms.toFixed(0)} ms`);
  // Whichever is first — the target ending the lease role's backend or the registry — the client is told.
  assert.ok(err.code === '57P01' || err.code === '08006', `${err.code}: ${err.message}`);
});

async function waitFor<T>(fn: () => Promise<T | undefined>, ms = 5000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('an API key as the password: the session hangs on the key, and revoking the key ends it within 1 s', async () => {
  const admin = await f.h.admin();
  const minted = await f.h.post('/v1/apikeys', { identity: 'workload:github/acme/api', ttl: '1h' }, admin);
  assert.equal(minted.status, 201, JSON.stringify(minted.body));
  const { api_key: key, id } = minted.body as { api_key: string; id: string };
  const c = await f.client(key);
  assert.equal((await c.query('SELECT name FROM items WHERE id = 1')).rows[0].name, 'one');
  // The policy forbids writes through an API key (no-api-key-writes): decided with the key's authn method.
  await assert.rejects(c.query("INSERT INTO items VALUES (300, 'x')"), denied);
  const ended = new Promise<Error & { code?: string }>((r) => c.once('error', r));
  const t0 = performance.now();
  assert.equal((await f.h.post(`/v1/apikeys/${encodeURIComponent(id)}/revoke`, { reason: 'test' }, admin)).status, 200);
  const err = await ended;
  assert.ok(performance.now() - t0 <= 1000);
  assert.equal(err.code, '57P01', err.message);
  assert.match(err.message, /API key .* was revoked/);
});

// ── Sessions API and CLI ────────────────────────────────────────────────────────────────────

test('sessions API: list your own, read a recording only with session.read (audited), verify, terminate your live session', async () => {
  const token = await f.token();
  const c = await f.client(token);
  const id = await sessionIdOf(c);
  await c.query('SELECT name FROM items WHERE id = 1');
  const mine = await f.h.get('/v1/sessions?mine=true&live=true', token);
  assert.equal(mine.status, 200);
  const listed = (mine.body as { sessions: { id: string; live: boolean; here: boolean; gateway: string }[] }).sessions.find((s) => s.id === id);
  assert.deepEqual([listed?.live, listed?.here, listed?.gateway], [true, true, 'orders-gw']);
  // Anyone's sessions, and any recording, are session.read: the workload has no such permit.
  assert.equal((await f.h.get('/v1/sessions', token)).status, 403);
  assert.equal((await f.h.get(`/v1/sessions/${id}`, token)).status, 404, 'a recording one may not read answers like an unknown session');
  const admin = await f.h.admin();
  const shown = await f.h.get(`/v1/sessions/${id}?verify=true`, admin);
  assert.equal(shown.status, 200, JSON.stringify(shown.body));
  const body = shown.body as { records: { type: string; payload: Record<string, unknown> }[]; verification: { ok: boolean; complete: boolean } };
  assert.equal(body.verification.ok, true);
  assert.equal(body.verification.complete, false);
  assert.ok(body.records.some((r) => r.payload.statement === 'SELECT name FROM items WHERE id = $1'));
  const rec = await f.h.get(`/v1/sessions/${id}/recording`, admin);
  assert.equal(rec.status, 200);
  assert.equal(String(rec.body).trim().split('\n').length, body.records.length);
  // Reading it was decided and audited.
  await f.h.running.broker.audit.flush();
  const reads = await f.h.running.broker.audit.query({ stream: 'authz', type: 'authz.decision', order: 'desc', limit: 50 });
  assert.ok(reads.some((r) => r.payload.action === 'session.read' && r.payload.resource === `Session::${id}` && r.decision === 'deny'));
  assert.ok(reads.some((r) => r.payload.action === 'session.read' && r.payload.resource === `Session::${id}` && r.decision === 'allow'));
  // Terminating one's own live session needs no permission; the client is told within 1 s.
  const ended = new Promise<Error & { code?: string }>((r) => c.once('error', r));
  const t0 = performance.now();
  const t = await f.h.post(`/v1/sessions/${id}/terminate`, { reason: 'test' }, token);
  assert.equal(t.status, 200, JSON.stringify(t.body));
  const err = await ended;
  assert.ok(performance.now() - t0 <= 1000);
  assert.equal(err.code, '57P01', err.message);
  assert.match(err.message, /terminating connection: terminated by workload:github\/acme\/api: test \(Portcullis\)/);
  await waitFor(async () => ((await f.h.get(`/v1/sessions/${id}`, admin)).body as { session: { live: boolean } }).session.live ? undefined : true);
  const after = (await f.h.get(`/v1/sessions/${id}?verify=true`, admin)).body as { verification: { ok: boolean; complete: boolean } };
  assert.deepEqual([after.verification.ok, after.verification.complete], [true, true]);
  assert.equal((await f.h.get('/v1/sessions/gws_not-a-real-session-id!', admin)).status, 400);
});

test('CLI: portcullis db connect runs psql through the gateway with the reason; sessions list/show/verify', async (t) => {
  if (!has('psql')) return t.skip(missingDependency('psql', 'apt-get install postgresql-client'));
  const bin = join(import.meta.dirname, '..', '..', 'bin', 'portcullis.js');
  const base: NodeJS.ProcessEnv = { ...process.env, PORTCULLIS_ADDR: f.h.url, PORTCULLIS_HOME: join(f.h.dir, 'cli-home') };
  for (const k of ['PGHOST', 'PGPORT', 'PGUSER', 'PGDATABASE', 'PGPASSWORD', 'PGPASSFILE', 'PGOPTIONS']) delete base[k];
  const token = await f.token();
  const r = await run(process.execPath, [bin, 'db', 'connect', 'orders-gw', '--reason', 'ticket OPS-7 read items', '--', '-X', '-A', '-t', '-c', 'SELECT name FROM items WHERE id = 2'], { env: { ...base, PORTCULLIS_TOKEN: token } });
  assert.match(r.stdout, /^two$/m);
  await f.h.running.broker.audit.flush();
  const start = (await f.h.running.broker.audit.query({ stream: 'session', type: 'session.start', order: 'desc', limit: 1 }))[0]!;
  assert.deepEqual(start.payload.purpose, { reason: 'ticket OPS-7 read items' });
  const id = String(start.payload.session);
  const list = await run(process.execPath, [bin, 'sessions', 'list', '--mine', '--json'], { env: { ...base, PORTCULLIS_TOKEN: token } });
  assert.ok((JSON.parse(list.stdout) as { sessions: { id: string }[] }).sessions.some((s) => s.id === id));
  const admin = await f.h.admin();
  await waitFor(async () => ((await f.h.get(`/v1/sessions/${id}`, admin)).body as { session: { live: boolean } }).session.live ? undefined : true);
  const verify = await run(process.execPath, [bin, 'sessions', 'verify', id], { env: { ...base, PORTCULLIS_TOKEN: admin } });
  assert.match(verify.stdout, /^ok: \d+ records/m);
  const show = await run(process.execPath, [bin, 'sessions', 'show', id], { env: { ...base, PORTCULLIS_TOKEN: admin } });
  assert.match(show.stdout, /db\.statement allow select SELECT name FROM items WHERE id = \$1 → 1 rows/);
  assert.match(show.stdout, /verification: ok/);
});

// Last: it breaks the session stream on purpose.
test('the recordings verify; a tampered session record makes verification fail', async (t) => {
  const admin = await f.h.admin();
  const ok = await f.h.get('/v1/audit/verify', admin);
  assert.equal(ok.status, 200);
  const session = (ok.body as { streams: { stream: string; ok: boolean; events: number }[] }).streams.find((s) => s.stream === 'session')!;
  assert.equal(session.ok, true);
  assert.ok(session.events > 50);
  const listed = await f.h.get('/v1/audit/session?limit=5', admin);
  assert.equal(listed.status, 200);
  if (TEST_STORE !== 'sqlite') return t.skip('tampering is done on the SQLite audit file');
  const db = new DatabaseSync(join(f.h.dir, 'data', 'audit.db'));
  try {
    db.prepare("UPDATE audit_events SET payload = replace(payload, '\"decision_id\"', '\"decision_idX\"') WHERE stream = 'session' AND seq = 3").run();
  } finally {
    db.close();
  }
  const bad = await f.h.get('/v1/audit/verify', admin);
  const s2 = (bad.body as { streams: { stream: string; ok: boolean; first_bad_seq?: number }[] }).streams.find((s) => s.stream === 'session')!;
  assert.equal(s2.ok, false);
});
