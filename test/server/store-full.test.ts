// A full disk is 503 store_unavailable everywhere, never 500: the data directory on a real small
// filesystem (tmpfs, needs root to mount) is filled, then logins, decisions, credential issuance
// and administrative writes are tried over real HTTP. Then space comes back and so does service.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { startHarness } from '../integration/harness.ts';
import { TEST_STORE } from '../store/pg.ts';
import { CONNECTION_PRAGMAS, JOURNAL_SIZE_LIMIT, openDatabase } from '../../src/store/sqlite/db.ts';
import { isStoreFailure, toProblem } from '../../src/server/problem.ts';
import type { Json } from '../json.ts';

function fill(dir: string): string {
  const path = join(dir, 'filler');
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(64 * 1024, 1);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  } finally {
    closeSync(fd);
  }
  // Also the last partial chunk.
  const fd2 = openSync(path, 'a');
  try {
    for (let n = 4096; n >= 1; n = Math.floor(n / 2)) {
      try {
        for (;;) writeSync(fd2, chunk.subarray(0, n));
      } catch {
        /* next smaller */
      }
    }
  } finally {
    closeSync(fd2);
  }
  return path;
}

const isRoot = process.getuid?.() === 0;

test('full disk: logins, decisions, issuance and writes answer 503 store_unavailable (never 500); service returns with space', { skip: TEST_STORE === 'postgres' ? 'fills the SQLite data directory (PostgreSQL unavailability: test/server/pg-unavailable.test.ts)' : !isRoot && 'mounting a tmpfs needs root' }, async () => {
  const mnt = mkdtempSync(join(tmpdir(), 'pcx-full-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', mnt]);
  const umount = () => {
    try {
      execFileSync('umount', [mnt]);
    } catch {
      execFileSync('umount', ['-l', mnt]);
    }
    rmSync(mnt, { recursive: true, force: true });
  };
  const h = await startHarness(
    `targets:\n  - { name: orders-api, kind: api, audience: https://orders.acme.test, scopes: [orders:read], max_ttl: 30m }\nlimits:\n  login:\n    per_address: { requests: 100000, window: 1m }\n    per_key: { requests: 100000, window: 1m }\n`,
    {},
    undefined,
    { dataDir: join(mnt, 'data'), resources: '  - { type: Api, id: orders-api, boundary: application, environment: prod }', policies: '\npermit (principal, action == Action::"credential.issue", resource == Api::"orders-api");\n' },
  ).catch((err: unknown) => {
    umount();
    throw err;
  });
  try {
    const admin = await h.admin();
    const workload = await h.loginCi();
    const calls: Record<string, () => Promise<{ status: number; body: Json; headers: Headers }>> = {
      login: async () => h.post('/v1/auth/token', { token: await h.ciToken() }),
      authorize: () => h.post('/v1/authorize', { action: 'db.select', resource: { type: 'Database', id: 'analytics' } }, workload),
      issue: () => h.post('/v1/credentials', { target: 'orders-api', scopes: ['orders:read'], ttl: '5m', reason: 'disk full test' }, workload),
      write: () => h.post('/v1/identities', { id: `workload:test/w${Math.random().toString(36).slice(2)}`, kind: 'workload', boundary: 'application', environment: 'prod', owner: 'team:x' }, admin),
    };
    for (const [name, call] of Object.entries(calls)) {
      const r = await call();
      assert.ok(r.status === 200 || r.status === 201, `${name} works before: ${r.status} ${JSON.stringify(r.body)}`);
    }
    const filler = fill(mnt);
    // SQLite may still have room in pages and WAL it already owns: keep going until each call hits the wall.
    const seen: Record<string, number[]> = { login: [], authorize: [], issue: [], write: [] };
    for (let round = 0; round < 400 && Object.values(seen).some((s) => !s.includes(503)); round++) {
      for (const [name, call] of Object.entries(calls)) {
        if (seen[name]!.includes(503)) continue;
        const r = await call();
        seen[name]!.push(r.status);
        assert.ok(r.status < 500 || r.status === 503, `${name}: ${r.status} ${JSON.stringify(r.body)}`);
        if (r.status === 503) {
          assert.equal(r.body.code, 'store_unavailable', `${name}: ${JSON.stringify(r.body)}`);
          assert.match(r.headers.get('content-type') ?? '', /application\/problem\+json/);
          assert.ok(Number(r.headers.get('retry-after')) > 0);
        }
      }
    }
    for (const [name, statuses] of Object.entries(seen)) assert.ok(statuses.includes(503), `${name} reached the full disk: ${statuses.slice(-5)}`);
    unlinkSync(filler);
    for (const [name, call] of Object.entries(calls)) {
      let r = await call();
      // The audit writer may need one failed batch to notice; the next attempt must succeed.
      if (r.status === 503) r = await call();
      assert.ok(r.status === 200 || r.status === 201, `${name} works again: ${r.status} ${JSON.stringify(r.body)}`);
    }
  } finally {
    await h.close();
    umount();
  }
});

test('every store connection bounds its WAL (journal_size_limit), the audit writer’s too', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pcx-wal-'));
  try {
    const db = openDatabase(join(dir, 'x.db'));
    assert.equal((db.prepare('PRAGMA journal_size_limit').get() as Record<string, number>).journal_size_limit, JOURNAL_SIZE_LIMIT);
    db.close();
    // The audit writer worker opens its connection with CONNECTION_PRAGMAS.
    const w = new DatabaseSync(join(dir, 'y.db'));
    w.exec(CONNECTION_PRAGMAS);
    assert.equal((w.prepare('PRAGMA journal_size_limit').get() as Record<string, number>).journal_size_limit, JOURNAL_SIZE_LIMIT);
    w.close();
    assert.ok(JOURNAL_SIZE_LIMIT > 0 && JOURNAL_SIZE_LIMIT <= 256 * 1024 * 1024);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('store failures are recognised through wrappers and worker boundaries; caller errors are not', () => {
  const sqlite = (errcode: number, message: string) => Object.assign(new Error(message), { code: 'ERR_SQLITE_ERROR', errcode, errstr: message });
  for (const e of [
    sqlite(13, 'database or disk is full'),
    sqlite(10 | (4 << 8), 'disk I/O error'), // SQLITE_IOERR_WRITE
    sqlite(10 | (13 << 8), 'disk I/O error'), // SQLITE_IOERR_FSYNC… any extended IOERR
    sqlite(8, 'attempt to write a readonly database'),
    Object.assign(new Error('write'), { code: 'ENOSPC' }),
    Object.assign(new Error('write'), { code: 'EIO' }),
    new Error('wrapped', { cause: sqlite(13, 'database or disk is full') }),
    new Error('database or disk is full'), // text only: crossed a worker boundary
  ]) {
    assert.equal(isStoreFailure(e), true, e.message);
    const p = toProblem(e);
    assert.equal(p.status, 503);
    assert.equal(p.code, 'store_unavailable');
  }
  for (const e of [sqlite(19, 'UNIQUE constraint failed'), new Error('boom'), Object.assign(new Error('x'), { code: 'ENOENT' })]) {
    assert.equal(isStoreFailure(e), false, e.message);
    assert.equal(toProblem(e).status, 500);
  }
});
