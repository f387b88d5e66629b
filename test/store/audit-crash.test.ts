// A crash of the PostgreSQL server under audit appends from two replicas: every answered record
// survives, and each stream's chain stays gap-free and verifies (docs/storage.md, "Audit on
// PostgreSQL": commits do not wait for the WAL flush, answers do). Runs its own embedded cluster,
// since it kills every process of it (kill -9) and restarts it on the same data directory.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import EmbeddedPostgres from '../embedded-postgres.ts';
import type { ChildProcess } from 'node:child_process';
import pg from 'pg';
import { AuditLog } from '../../src/audit/log.ts';
import { normalizeQuery } from '../../src/audit/query.ts';
import type { AuditRecord } from '../../src/audit/types.ts';
import { verifyAll } from '../../src/audit/verify.ts';
import { PgDb } from '../../src/store/postgres/db.ts';
import { MIGRATIONS, pgAuditStore } from '../../src/store/postgres/audit.ts';
import { ed25519Key, resolverOf } from '../audit/helpers.ts';
import { freePort } from '../credentials/helpers.ts';

const key = ed25519Key('crash-k1');

/** A process's parent pid (Linux /proc), 0 when it is gone. */
function parentOf(pid: number): number {
  try {
    return Number(readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ')[1]);
  } catch {
    return 0;
  }
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A cluster as the production one runs (fsync, synchronous commits), that can be killed and started again. */
async function cluster() {
  const root = mkdtempSync(join(tmpdir(), 'pcx-audit-crash-'));
  chmodSync(root, 0o755);
  const dataDir = join(root, 'data');
  const port = await freePort();
  const password = randomBytes(12).toString('hex');
  const make = () =>
    new EmbeddedPostgres({
      databaseDir: dataDir,
      port,
      user: 'postgres_su',
      password,
      authMethod: 'scram-sha-256',
      persistent: true,
      createPostgresUser: true,
      postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-k', dataDir],
      onLog: process.env.PCX_PG_LOG ? (m) => console.error(m) : () => {},
      onError: () => {},
    });
  let server = make();
  await server.initialise();
  await server.start();
  const url = `postgres://postgres_su:${password}@127.0.0.1:${port}/postgres`;
  return {
    url,
    /**
     * kill -9 of the postmaster and of every process it started, at once, the WAL writer first:
     * WAL still in the server's buffers (not written) is lost, as in a crash of the machine.
     */
    async crash(): Promise<void> {
      const admin = new pg.Client({ connectionString: url });
      admin.on('error', () => {}); // the server dies under it
      await admin.connect();
      const walWriter = (await admin.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE backend_type = 'walwriter'")).rows.map((r) => r.pid);
      const postmaster = (server as unknown as { process: ChildProcess }).process;
      const children = readdirSync('/proc')
        .filter((d) => /^\d+$/.test(d) && parentOf(Number(d)) === postmaster.pid)
        .map(Number);
      const exited = new Promise((r) => postmaster.once('exit', r));
      for (const pid of [...walWriter, ...children, postmaster.pid!]) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      await exited;
      await admin.end().catch(() => {});
      // The children, reparented, must be gone before a new postmaster can take the data directory.
      for (const pid of children) {
        for (let i = 0; i < 500; i++) {
          try {
            process.kill(pid, 0);
          } catch {
            break;
          }
          await sleep(10);
        }
      }
    },
    /** Starts the server again on the same files (crash recovery replays the WAL that was written). */
    async restart(): Promise<void> {
      server = make();
      await server.start();
    },
    async stop(): Promise<void> {
      await server.stop().catch(() => {});
      rmSync(root, { recursive: true, force: true });
    },
  };
}

test('a crash of the PostgreSQL server loses no answered audit record, and the chain stays gap-free', { timeout: 120_000 }, async () => {
  const c = await cluster();
  try {
    const setup = await PgDb.open(c.url, { pool: 1 });
    await setup.migrate([MIGRATIONS]);
    await setup.close();

    // Two replicas append to authz (and a little to admin) back to back until the server dies.
    const dbs = await Promise.all([PgDb.open(c.url, { pool: 2 }), PgDb.open(c.url, { pool: 2 })]);
    const stores = dbs.map((d) => pgAuditStore(d));
    const logs = stores.map((s, i) => new AuditLog(s, i === 0 ? { signer: key.signer, checkpointEvery: 200 } : {}));
    const answered: AuditRecord[] = [];
    let failed = 0;
    let stop = false;
    const load = logs.map(async (log, r) => {
      for (let i = 0; !stop; i++) {
        const wave = Array.from({ length: 20 }, (_, j) =>
          log.append({ stream: j === 0 ? 'admin' : 'authz', type: 'authz.decision', actor: `workload:r${r}`, payload: { i, j } }).then(
            (rec) => void answered.push(rec),
            () => void failed++,
          ),
        );
        await Promise.all(wave);
        if (failed > 0) return;
      }
    });
    while (answered.length < 3000) await sleep(20);
    await c.crash();
    stop = true;
    await Promise.all(load);
    assert.ok(failed > 0, 'appends in flight failed with the server');
    for (const l of logs) await l.close().catch(() => {});
    for (const s of stores) await s.close();
    for (const d of dbs) await d.close();

    await c.restart();
    const db = await PgDb.open(c.url, { pool: 2 });
    const store = pgAuditStore(db);
    try {
      const stored = new Map<string, string>();
      for (const stream of ['authz', 'admin'] as const) {
        const [scan] = await store.scanStreams({ streams: [stream] });
        assert.equal(scan.scan.count, scan.head?.seq ?? 0, `${stream}: one row per seq up to the head`);
        for (let after = 0; ; ) {
          const page = await store.query(normalizeQuery({ stream, afterSeq: after, limit: 1000 }));
          for (const r of page) stored.set(`${r.stream}/${r.seq}`, r.hash);
          if (page.length < 1000) break;
          after = page.at(-1)!.seq;
        }
      }
      const lost = answered.filter((r) => stored.get(`${r.stream}/${r.seq}`) !== r.hash);
      assert.deepEqual(lost.slice(0, 5), [], `${lost.length} of ${answered.length} answered records lost or changed`);
      const v = await verifyAll(store, resolverOf(key));
      assert.equal(v.ok, true, JSON.stringify(v.streams.filter((s) => !s.ok)));

      // Appends go on from the recovered heads.
      const log = new AuditLog(store, { signer: key.signer, checkpointEvery: 200 });
      const more = await Promise.all(Array.from({ length: 10 }, (_, i) => log.append({ stream: 'authz', type: 'authz.decision', actor: 'workload:after', payload: { i } })));
      await log.close();
      const [authz] = await store.scanStreams({ streams: ['authz'] });
      assert.equal(more.at(-1)!.seq, authz.head!.seq);
      assert.equal((await verifyAll(store, resolverOf(key))).ok, true);
    } finally {
      await store.close();
      await db.close();
    }
  } finally {
    await c.stop();
  }
});
