// Exactly the expected audit events, and `portcullis audit verify --data` catching tampering at
// the right sequence number while the server is down.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { DatabaseSync } from 'node:sqlite';
import { cpSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startHarness } from './harness.ts';
import { AUDIT_DB_FILE } from '../../src/store/sqlite/index.ts';
import type { Harness } from './harness.ts';
import type { Json } from '../json.ts';
import { TEST_STORE } from '../store/pg.ts';

const CLI = join(import.meta.dirname, '..', '..', 'src', 'cli', 'main.ts');

function verifyOffline(dataDir: string): { status: number; out: Json } {
  const r = spawnSync(process.execPath, [CLI, 'audit', 'verify', '--data', dataDir, '--json'], { encoding: 'utf8' });
  return { status: r.status ?? -1, out: JSON.parse(r.stdout) };
}

describe('audit streams', () => {
  let h: Harness;
  let dataDir: string;
  before(async () => {
    h = await startHarness();
    dataDir = join(h.dir, 'data');
  });
  after(async () => h.close());

  it('records exactly the expected events in separate streams, with no secrets', async () => {
    const audit = h.running.broker.audit;
    await audit.flush();
    const base = { authn: (await audit.head('authn')).seq, authz: (await audit.head('authz')).seq, admin: (await audit.head('admin')).seq };
    const token = await h.ciToken();
    const session = (await h.post('/v1/auth/token', { token })).body.session_token as string;
    await h.post('/v1/auth/token', { token: `${token.slice(0, -4)}AAAA` }); // bad signature
    await h.post('/v1/authorize', { action: 'db.select', resource: { type: 'Database', id: 'orders' }, context: { purpose: { reason: 'r' } } }, session);
    await h.post('/v1/authorize', { action: 'db.select', resource: { type: 'Database', id: 'analytics' } }, session);
    await audit.flush();
    const authn = await audit.query({ stream: 'authn', afterSeq: base.authn });
    const authz = await audit.query({ stream: 'authz', afterSeq: base.authz });
    const admin = await audit.query({ stream: 'admin', afterSeq: base.admin });
    assert.deepEqual(authn.map((e) => [e.type, e.actor]), [
      ['authn.success', 'workload:github/acme/api'],
      ['authn.failure', 'anonymous'],
    ]);
    assert.equal(authn[1]!.payload.reason, 'bad_signature');
    assert.deepEqual(authz.map((e) => [e.decision, e.payload.resource, e.boundary]), [
      ['allow', 'Database::orders', 'application'],
      ['deny', 'Database::analytics', 'platform'],
    ]);
    assert.deepEqual(authz[1]!.payload.reasons, ['system:boundary-guard']);
    assert.equal(admin.length, 0, 'reads and decisions are not admin events');
    const all = JSON.stringify([...authn, ...authz]);
    assert.ok(!all.includes(token) && !all.includes(session) && !all.includes(token.split('.')[2]!), 'no token in any event');
  });

  it('verifies online', async () => {
    const admin = await h.admin();
    const r = await h.get('/v1/audit/verify', admin);
    assert.equal(r.status, 200);
    assert.equal(r.body.ok, true);
    assert.ok(r.body.streams.every((s: { checkpoints: number }) => s.checkpoints >= 0));
  });

  it('order=desc answers newest first (the console reads the newest page), asc and the default oldest first; with filters and after', async () => {
    const admin = await h.admin();
    const session = await h.loginCi();
    for (let i = 0; i < 4; i++) await h.post('/v1/authorize', { action: 'db.select', resource: { type: 'Database', id: 'orders' }, context: { purpose: { reason: `r${i}` } } }, session);
    await h.running.broker.audit.flush();
    const seqs = async (qs: string) => {
      const r = await h.get(`/v1/audit/authz?${qs}`, admin);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return (r.body.events as { seq: number }[]).map((e) => e.seq);
    };
    // The query's own audit.read decision is an authz event too: the newest is at least the head before it.
    const before = (await h.running.broker.audit.head('authz')).seq;
    const newest = await seqs('order=desc&limit=3');
    const head = newest[0]!;
    assert.ok(head >= before, `${head} >= ${before}`);
    assert.deepEqual(newest, [head, head - 1, head - 2]);
    const asc = await seqs('order=asc&limit=3');
    assert.deepEqual(asc, [1, 2, 3]);
    assert.deepEqual(await seqs('limit=3'), asc, 'oldest first by default');
    const mine = await seqs('order=desc&identity=workload:github/acme/api&decision=allow&limit=1000');
    assert.ok(mine.length >= 4);
    assert.deepEqual(mine, [...mine].sort((a, b) => b - a));
    const after = await seqs(`order=desc&after=${head - 2}`);
    assert.deepEqual(after.slice(-2), [head, head - 1], 'after with desc: the newest after it, newest first');
    assert.deepEqual(after, [...after].sort((a, b) => b - a));
    assert.equal((await h.get('/v1/audit/authz?order=up', admin)).status, 400);
  });

  it('follows new events as NDJSON and exports JSON lines', async () => {
    const admin = await h.admin();
    const ctrl = new AbortController();
    const res = await fetch(`${h.url}/v1/audit/authz?follow=true`, { headers: { authorization: `Bearer ${admin}` }, signal: ctrl.signal });
    assert.equal(res.headers.get('content-type'), 'application/x-ndjson');
    const reader = res.body!.getReader();
    const session = await h.loginCi();
    await h.post('/v1/authorize', { action: 'db.select', resource: { type: 'Database', id: 'orders' } }, session);
    const { value } = await reader.read();
    const event = JSON.parse(Buffer.from(value!).toString().split('\n')[0]!);
    assert.equal(event.stream, 'authz');
    assert.equal(event.actor, 'workload:github/acme/api');
    ctrl.abort();
    const exported = await fetch(`${h.url}/v1/audit/authn?format=ndjson`, { headers: { authorization: `Bearer ${admin}` } }).then((r) => r.text());
    const lines = exported.trim().split('\n').map((l) => JSON.parse(l));
    assert.ok(lines.length >= 2);
    assert.deepEqual(lines.map((l) => l.seq), lines.map((_, i) => i + 1));
  });

  it('offline verify passes on the untouched data directory and fails at the right seq on edit, delete, truncation', { skip: TEST_STORE === 'postgres' ? 'tampers with the SQLite files (PostgreSQL: test/store/audit.test.ts)' : false }, async () => {
    await h.running.stop();
    const clean = verifyOffline(dataDir);
    assert.equal(clean.status, 0, JSON.stringify(clean.out));
    const events = (d: string) => new DatabaseSync(join(d, AUDIT_DB_FILE));
    const copy = (name: string) => {
      const d = join(h.dir, name);
      cpSync(dataDir, d, { recursive: true });
      return d;
    };

    const edited = copy('edited');
    let db = events(edited);
    db.prepare("UPDATE audit_events SET payload = replace(payload, 'Database::analytics', 'Database::orders') WHERE stream = 'authz' AND seq = 2").run();
    db.close();
    let r = verifyOffline(edited);
    assert.equal(r.status, 1);
    assert.deepEqual(r.out.streams.find((s: { stream: string }) => s.stream === 'authz').first_bad_seq, 2);

    const deleted = copy('deleted');
    db = events(deleted);
    db.prepare("DELETE FROM audit_events WHERE stream = 'authn' AND seq = 2").run();
    db.close();
    r = verifyOffline(deleted);
    assert.equal(r.status, 1);
    assert.equal(r.out.streams.find((s: { stream: string }) => s.stream === 'authn').first_bad_seq, 2);

    const truncated = copy('truncated');
    db = events(truncated);
    const max = (db.prepare("SELECT MAX(seq) AS m FROM audit_events WHERE stream = 'authn'").get() as { m: number }).m;
    db.prepare("DELETE FROM audit_events WHERE stream = 'authn' AND seq > ?").run(max - 2);
    db.close();
    r = verifyOffline(truncated);
    assert.equal(r.status, 1);
    assert.equal(r.out.streams.find((s: { stream: string }) => s.stream === 'authn').first_bad_seq, max - 1);
    assert.ok(readdirSync(dataDir).includes(AUDIT_DB_FILE), 'the audit streams have their own file');
    assert.ok(!readFileSync(join(dataDir, 'portcullis.db')).includes(Buffer.from('"d":"')), 'no private JWK in clear in the store');
  });
});
