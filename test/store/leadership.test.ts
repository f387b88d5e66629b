// Leadership of the cluster jobs and intent holds on PostgreSQL (src/store/postgres/leadership.ts):
// one leader at a time, take-over when it goes, two leaders at once (a leader cut off from the
// store that has not noticed yet) fenced by the epoch, and a replica's intent holds that end with it.
import assert from 'node:assert/strict';
import { createServer, connect } from 'node:net';
import type { Server, Socket } from 'node:net';
import { test } from 'node:test';
import { PgDb } from '../../src/store/postgres/db.ts';
import { MIGRATIONS, NotLeader, PgLeadership } from '../../src/store/postgres/leadership.ts';
import { freshStoreUrl } from './pg.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, check: () => boolean | Promise<boolean>, limitMs = 5000): Promise<number> {
  const t0 = performance.now();
  while (!(await check())) {
    if (performance.now() - t0 > limitMs) assert.fail(`${what}: not within ${limitMs} ms`);
    await sleep(10);
  }
  return performance.now() - t0;
}

/**
 * A TCP proxy in front of the store whose `partition()` closes the server side of every
 * connection but leaves the client side open and silent — a replica cut off without a FIN:
 * the server releases its session (and locks) at once, the replica notices nothing.
 */
async function partitionableProxy(target: URL): Promise<{ url: string; partition(): void; close(): Promise<void> }> {
  const pairs: { client: Socket; server: Socket }[] = [];
  const proxy: Server = createServer((client) => {
    const server = connect(Number(target.port), target.hostname);
    pairs.push({ client, server });
    client.on('error', () => {});
    server.on('error', () => {});
    client.pipe(server);
    server.pipe(client);
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  const url = new URL(target.href);
  url.port = String((proxy.address() as { port: number }).port);
  return {
    url: url.href,
    partition() {
      for (const p of pairs) {
        p.server.unpipe(p.client);
        p.client.unpipe(p.server);
        p.server.destroy();
        p.client.pause(); // what the replica sends goes nowhere, and nothing comes back
      }
    },
    async close() {
      for (const p of pairs) p.client.destroy();
      await new Promise((r) => proxy.close(r));
    },
  };
}

async function migratedDb(url: string): Promise<PgDb> {
  const db = await PgDb.open(url, { pool: 3 });
  await db.migrate([MIGRATIONS]);
  return db;
}

test('PostgreSQL leadership: one leader of two; when it goes, the other leads with a higher epoch', async () => {
  const url = await freshStoreUrl();
  const db = await migratedDb(url);
  const a = new PgLeadership(db, { pollMs: 50 });
  const b = new PgLeadership(db, { pollMs: 50 });
  try {
    a.start();
    await until('A leads', () => a.leading);
    b.start();
    await sleep(200);
    assert.equal(b.leading, false, 'B does not lead while A does');
    const first = a.epoch!;
    await a.close();
    const took = await until('B leads', () => b.leading);
    assert.ok(b.epoch! > first, `epoch ${first} -> ${b.epoch}`);
    console.log(`# take-over after the leader's session ended: ${took.toFixed(0)} ms`);
  } finally {
    await a.close();
    await b.close();
    await db.close();
  }
});

test('PostgreSQL leadership: two leaders at once — the one cut off is fenced out of job writes, its successor is not', async () => {
  const url = await freshStoreUrl();
  const db = await migratedDb(url);
  const proxy = await partitionableProxy(new URL(url));
  // A's own session goes through the proxy; it checks its lead only once an hour, so after the
  // partition it still believes it leads.
  const a = new PgLeadership(db, { pollMs: 3_600_000, sessionUrl: proxy.url });
  const b = new PgLeadership(db, { pollMs: 50 });
  try {
    a.start();
    await until('A leads', () => a.leading);
    await db.transaction(() => a.fence()); // A's job writes pass while it leads
    b.start();
    proxy.partition();
    await until('B leads', () => b.leading);
    assert.equal(a.leading, true, 'A has not noticed: two replicas believe they lead');
    assert.ok(b.epoch! > a.epoch!);

    // A job write of the deposed leader fails, and its transaction rolls back.
    let wrote = false;
    await assert.rejects(
      db.transaction(async () => {
        await db.execute("CREATE TABLE IF NOT EXISTS job_marks (who TEXT)");
        await db.execute("INSERT INTO job_marks VALUES ('A')");
        await a.fence();
        wrote = true;
      }),
      NotLeader,
    );
    assert.equal(wrote, false);
    assert.equal(a.leading, false, 'a failed fence makes A step down');
    await db.transaction(async () => {
      await db.execute('CREATE TABLE IF NOT EXISTS job_marks (who TEXT)');
      await db.execute("INSERT INTO job_marks VALUES ('B')");
      await b.fence();
    });
    assert.deepEqual((await db.query<{ who: string }>('SELECT who FROM job_marks')).map((r) => r.who), ['B']);
  } finally {
    await b.close();
    await a.close();
    await proxy.close();
    await db.close();
  }
});

test('PostgreSQL intent holds: another replica leaves a held intent alone and takes a dead replica\'s', async () => {
  const url = await freshStoreUrl();
  const db = await migratedDb(url);
  const proxy = await partitionableProxy(new URL(url));
  const a = new PgLeadership(db, { pollMs: 3_600_000, sessionUrl: proxy.url });
  const b = new PgLeadership(db, { pollMs: 3_600_000 });
  try {
    const release = await a.hold('lse_one');
    await a.hold('lse_two');
    let ran = 0;
    const take = (key: string) => b.ifAbandoned(key, async () => ++ran);
    assert.equal(await take('lse_one'), undefined, 'held by a live replica: not run');
    assert.equal(await take('lse_two'), undefined);
    assert.equal(await take('lse_other'), 1, 'nobody holds it: run');
    // A's own process may decide about its own holds (the lock is re-entrant for its session only).
    await release();
    assert.equal(await take('lse_one'), 2, 'released: run');
    // While B decides about a key, nobody else may: its hold is exclusive for the transaction.
    await b.ifAbandoned('lse_three', async () => {
      await assert.rejects(a.hold('lse_three'), /held elsewhere/);
    });
    // A dies without a word (the server drops its session): its holds end with it.
    proxy.partition();
    await until("A's hold released by the server", async () => (await take('lse_two')) !== undefined);
  } finally {
    await a.close();
    await b.close();
    await proxy.close();
    await db.close();
  }
});
