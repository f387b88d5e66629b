// Crash safety with a real process kill: a broker child is SIGKILLed (a) after creating the role but
// before recording the lease, (b) after deciding to revoke but before DROP ROLE. reconcile() on the
// next start, against the same SQLite file and the real PostgreSQL, must clean up both.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { validateTargets } from '../../src/credentials/config.ts';
import { createCredentialService } from '../../src/credentials/service.ts';
import { connectAs, MemoryAudit, startPostgres, sqliteLeases } from './helpers.ts';
import type { TestPostgres } from './helpers.ts';

const NODE = process.execPath;
const CHILD = new URL('./fixtures/crash-child.ts', import.meta.url).pathname;
let pgdb: TestPostgres;
let dir: string;
let target: Record<string, unknown>;

before(async () => {
  pgdb = await startPostgres();
  dir = mkdtempSync(join(tmpdir(), 'pcx-crash-'));
  target = {
    name: 'orders-db', kind: 'postgres', host: pgdb.host, port: pgdb.port, database: pgdb.database,
    admin: { user: pgdb.user, password_env: 'PCX_TEST_PG_ADMIN' }, permissions: { readonly: 'readonly' }, max_ttl: '1h',
  };
});

after(async () => {
  await pgdb?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Child {
  first: Promise<string | undefined>;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  send(line: string): void;
}

function startChild(db: string, crashAt: string): Child {
  const p = spawn(NODE, [CHILD], {
    env: { ...process.env, PCX_TEST_PG_ADMIN: pgdb.password, PCX_CRASH_CHILD: JSON.stringify({ db, target, crashAt }) },
    stdio: ['pipe', 'pipe', 'inherit'],
    timeout: 30_000,
  });
  const rl = createInterface({ input: p.stdout! });
  const first = new Promise<string | undefined>((resolve) => {
    rl.once('line', resolve);
    p.once('exit', () => resolve(undefined));
  });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => p.once('exit', (code, signal) => resolve({ code, signal })));
  return { first, exit, send: (l) => p.stdin!.write(`${l}\n`) };
}

async function roles(): Promise<{ rolname: string; comment: string | null }[]> {
  const c = pgdb.admin();
  await c.connect();
  try {
    return (await c.query(`SELECT rolname, shobj_description(oid, 'pg_authid') AS comment FROM pg_roles WHERE rolname LIKE 'pcx\\_%'`)).rows;
  } finally {
    await c.end();
  }
}

function restartedService(db: string, audit = new MemoryAudit()) {
  return createCredentialService({
    leases: sqliteLeases(db),
    audit,
    decide: async () => ({ decision: 'allow', decisionId: 'dec_parent' }),
    targets: validateTargets([target]),
    env: { PCX_TEST_PG_ADMIN: pgdb.password },
  });
}

test('killed between CREATE ROLE and recording the lease: reconcile drops the orphan role', async () => {
  const db = join(dir, 'a.sqlite');
  const child = startChild(db, 'issue.before_record');
  assert.equal(await child.first, undefined, 'the child dies before handing anything out');
  assert.equal((await child.exit).signal, 'SIGKILL');
  const orphans = await roles();
  assert.equal(orphans.length, 1, 'the role exists at the target');
  const svc = restartedService(db);
  const [intent] = await svc.list();
  assert.equal(intent!.status, 'issuing', 'intent was recorded before the role was created');
  assert.match(orphans[0]!.comment!, new RegExp(`lease=${intent!.id} `));
  const report = await svc.reconcile();
  assert.deepEqual(report.dropped.map((d) => d.handle), [orphans[0]!.rolname]);
  assert.deepEqual(await roles(), []);
  assert.equal((await svc.get(intent!.id)).status, 'failed');
  assert.equal((await svc.get(intent!.id)).handle, orphans[0]!.rolname);
  // Idempotent: a second run finds nothing to do.
  const again = await svc.reconcile();
  assert.deepEqual([again.dropped, again.closed, again.abandoned], [[], [], []]);
  await svc.stop();
});

test('killed between the revoke decision and DROP ROLE: reconcile finishes the revocation and ends the live session', async () => {
  const db = join(dir, 'b.sqlite');
  const child = startChild(db, 'revoke.before_target');
  const line = await child.first;
  assert.ok(line, 'issued');
  const { lease, user, password } = JSON.parse(line) as { lease: string; user: string; password: string };
  const live = await connectAs(pgdb, user, password);
  const ended = new Promise<void>((resolve) => live.on('end', () => resolve()));
  child.send('revoke');
  assert.equal((await child.exit).signal, 'SIGKILL');
  assert.equal((await live.query('SELECT 1 AS one')).rows[0].one, 1, 'the session survived the crash');
  const audit = new MemoryAudit();
  const svc = restartedService(db, audit);
  assert.equal((await svc.get(lease)).status, 'revoking');
  const t0 = performance.now();
  const report = await svc.reconcile();
  await ended;
  console.log(`# reconcile after crash: revocation completed, live session ended ${(performance.now() - t0).toFixed(1)} ms after start`);
  assert.deepEqual(report.completed, [{ leaseId: lease, status: 'revoked' }]);
  assert.equal((await svc.get(lease)).status, 'revoked');
  assert.equal((await svc.get(lease)).revokeReason, 'crash test revoke', 'the original reason and revoker are kept');
  assert.equal((await svc.get(lease)).revokedBy, 'user:ops');
  assert.deepEqual(await roles(), []);
  await assert.rejects(connectAs(pgdb, user, password), /password authentication failed/);
  assert.equal(audit.ofType('credential.revoked').length, 1);
  await svc.stop();
});
