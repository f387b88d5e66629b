// The SQLite audit store behind the audit ports: appenders (inline and worker) link onto what is
// stored, report the last stored checkpoint with each due one, ignore a checkpoint sent twice;
// the offline reader is read-only and never migrates.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DatabaseSync } from 'node:sqlite';
import { join } from 'node:path';
import { AuditLog } from '../../src/audit/log.ts';
import { normalizeQuery } from '../../src/audit/query.ts';
import { verifyAll } from '../../src/audit/verify.ts';
import { migrate } from '../../src/store/sqlite/db.ts';
import { AUDIT_MIGRATIONS } from '../../src/store/sqlite/audit/schema.ts';
import { openAuditReader } from '../../src/store/sqlite/audit/offline.ts';
import { NotFound } from '../../src/common/errors.ts';
import { ManualClock } from '../../src/common/clock.ts';
import type { AppendBatch } from '../../src/audit/ports.ts';
import type { PreparedEvent } from '../../src/audit/prepare.ts';
import { auditStore, ed25519Key, resolverOf, tempStore } from '../audit/helpers.ts';

const key = ed25519Key('store-k1');
const ev = (i: number) => ({ stream: 'authz' as const, type: 'authz.decision', actor: 'workload:a', payload: { i } });
const prepared = (i: number): PreparedEvent => ({ stream: 'admin', time: '2026-01-01T00:00:00.000Z', type: 't.x', actor: 'a', boundary: null, subject: null, decision: null, payload: `{"i":${i}}` });
const batch = (events: PreparedEvent[], extra: Partial<AppendBatch> = {}): AppendBatch => ({ events, checkpoints: [], now: 0, checkpoint: 'none', ...extra });

for (const writer of ['inline', 'worker'] as const) {
  test(`after a restart the first checkpoint links to the last one stored (${writer})`, async () => {
    const s = tempStore();
    try {
      const first = new AuditLog(auditStore(s.db), { signer: key.signer, checkpointEvery: 5, writer, clock: new ManualClock() });
      await Promise.all(Array.from({ length: 12 }, (_, i) => first.append(ev(i))));
      await first.flush();
      await first.close(); // stores 5, 10 and a final 12
      const store = auditStore(s.db);
      const appender = store.appender({ policy: { enabled: true, every: 5, intervalMs: 3_600_000 }, durability: 'full', writer });
      const r = await appender.append(batch([], { checkpoint: 'force' }));
      assert.deepEqual(r.due, [], 'nothing unsigned');
      const more = await appender.append(batch(Array.from({ length: 5 }, (_, i) => ({ ...prepared(i), stream: 'authz' }))));
      assert.deepEqual(more.seqs, [13, 14, 15, 16, 17]);
      assert.deepEqual(more.due.map((d) => [d.stream, d.seq, d.prevStored]), [['authz', 17, 12]]);
      await appender.close();

      const second = new AuditLog(store, { signer: key.signer, checkpointEvery: 5, writer, clock: new ManualClock() });
      await Promise.all(Array.from({ length: 4 }, (_, i) => second.append(ev(i))));
      await second.close();
      const cps = s.db.prepare("SELECT seq, prev_seq FROM audit_checkpoints WHERE stream = 'authz' ORDER BY seq").all().map((c) => [c.seq, c.prev_seq]);
      assert.deepEqual(cps, [[5, 0], [10, 5], [12, 10], [21, 12]]);
      // 13..17 were appended without a signer: the checkpoint at 21 covers them.
      assert.equal((await verifyAll(store, resolverOf(key))).ok, true);
    } finally {
      s.cleanup();
    }
  });

  test(`a checkpoint sent again is ignored, and a failed batch stores nothing (${writer})`, async () => {
    const s = tempStore();
    try {
      const store = auditStore(s.db);
      const appender = store.appender({ policy: { enabled: false, every: 1000, intervalMs: 1000 }, durability: 'store', writer });
      const r = await appender.append(batch([prepared(1), prepared(2)]));
      const cp = { stream: 'admin', seq: 2, hash: r.hashes[1]!, time: '2026-01-01T00:00:00.000Z', prev_seq: 0, kid: 'k', sig: 'x' };
      await appender.append(batch([prepared(3)], { checkpoints: [cp] }));
      await appender.append(batch([prepared(4)], { checkpoints: [cp] }));
      assert.equal((s.db.prepare('SELECT COUNT(*) AS n FROM audit_checkpoints').get() as { n: number }).n, 1);
      s.db.exec("CREATE TRIGGER boom BEFORE INSERT ON audit_events WHEN NEW.payload = '{\"i\":6}' BEGIN SELECT RAISE(ABORT, 'no'); END");
      await assert.rejects(appender.append(batch([prepared(5), prepared(6)])));
      assert.deepEqual(await store.head('admin'), { seq: 4, hash: (await store.query(normalizeQuery({ stream: 'admin', order: 'desc', limit: 1 })))[0]!.hash });
      await appender.close();
    } finally {
      s.cleanup();
    }
  });
}

test('the offline reader opens audit.db read-only and never migrates it', async () => {
  const s = tempStore();
  try {
    migrate(s.db, 'audit', AUDIT_MIGRATIONS.filter((m) => m.version === 1)); // a version-1 store
    s.db.close();
    const reader = openAuditReader(s.dir);
    try {
      assert.deepEqual(await reader.query(normalizeQuery({ stream: 'authz', since: 0 })), []);
      assert.equal((await verifyAll(reader, () => undefined, { parallel: true })).ok, true);
      assert.equal(await reader.head('authz'), undefined);
    } finally {
      reader.close();
    }
    const db = new DatabaseSync(s.path, { readOnly: true });
    try {
      const versions = db.prepare("SELECT version FROM schema_migrations WHERE domain = 'audit'").all().map((r) => r.version);
      assert.deepEqual(versions, [1], 'not migrated');
    } finally {
      db.close();
    }
    assert.throws(() => openAuditReader(join(s.dir, 'nope')), NotFound);
  } finally {
    s.cleanup();
  }
});
