// The SQLite unit of work: a transaction spans awaits, other flows wait for it, nested calls join,
// a throw rolls everything back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SqliteDb, openDatabase } from '../../src/store/sqlite/db.ts';

function fresh(): SqliteDb {
  const db = new SqliteDb(openDatabase(':memory:'));
  db.raw.exec('CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)');
  return db;
}
const get = (db: SqliteDb, k: string) => db.run((r) => (r.prepare('SELECT v FROM t WHERE k = ?').get(k) as { v: number } | undefined)?.v);
const put = (db: SqliteDb, k: string, v: number) => db.atomic((r) => r.prepare('INSERT OR REPLACE INTO t (k, v) VALUES (?, ?)').run(k, v));
const tick = () => new Promise((r) => setTimeout(r, 5));

test('another flow waits for an open transaction and then sees only its committed result', async () => {
  const db = fresh();
  await put(db, 'a', 1);
  const seen: Array<number | undefined> = [];
  const tx = db.transaction(async () => {
    await put(db, 'a', 2);
    await tick();
    assert.equal(await get(db, 'a'), 2, 'the transaction reads its own write');
    await put(db, 'a', 3);
  });
  const reader = (async () => {
    await Promise.resolve();
    seen.push(await get(db, 'a'));
  })();
  await Promise.all([tx, reader]);
  assert.deepEqual(seen, [3], 'the reader never saw the intermediate value');
});

test('a throw inside a transaction rolls back every write made in it, across awaits and nested calls', async () => {
  const db = fresh();
  await put(db, 'a', 1);
  await assert.rejects(
    db.transaction(async () => {
      await put(db, 'a', 2);
      await db.transaction(async () => {
        await tick();
        await put(db, 'b', 7);
      });
      assert.equal(db.raw.isTransaction, true, 'the nested call joined the outer transaction');
      throw new Error('boom');
    }),
    /boom/,
  );
  assert.equal(await get(db, 'a'), 1);
  assert.equal(await get(db, 'b'), undefined);
  await put(db, 'c', 1);
  assert.equal(await get(db, 'c'), 1, 'the connection is usable after the rollback');
});

test('concurrent transactions run one after the other and neither is lost', async () => {
  const db = fresh();
  await put(db, 'n', 0);
  const bump = () =>
    db.transaction(async () => {
      const v = (await get(db, 'n'))!;
      await tick();
      await put(db, 'n', v + 1);
    });
  await Promise.all(Array.from({ length: 10 }, bump));
  assert.equal(await get(db, 'n'), 10);
});

test('lock() is refused outside a transaction and allowed inside one', async () => {
  const db = fresh();
  await assert.rejects(db.lock('x'), /outside a transaction/);
  await db.transaction(() => db.lock('x'));
});
