import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { AuditLog } from '../../src/audit/log.ts';
import { canonicalJson } from '../../src/audit/canonical.ts';
import { AUDIT_QUERY_MAX_LIMIT } from '../../src/audit/query.ts';
import { InvalidInput } from '../../src/common/errors.ts';
import { ManualClock } from '../../src/common/clock.ts';
import type { AuditRecord } from '../../src/audit/types.ts';
import { auditStore, queryEvents, tempStore, type TempStore } from './helpers.ts';

async function seeded(): Promise<{ s: TempStore; log: AuditLog; clock: ManualClock }> {
  const s = tempStore();
  const clock = new ManualClock(Date.parse('2026-03-01T00:00:00Z'));
  const log = new AuditLog(auditStore(s.db), { clock });
  for (let i = 0; i < 30; i++) {
    void log.append({
      stream: 'authz',
      type: 'authz.decision',
      actor: i % 2 ? 'workload:api' : 'agent:bot',
      subject: i % 5 === 0 ? 'workload:api' : undefined,
      boundary: i < 20 ? 'platform' : 'ai-platform',
      decision: i % 3 === 0 ? 'deny' : 'allow',
      payload: { i },
    });
    void log.append({ stream: 'authn', type: i % 4 ? 'authn.success' : 'authn.failure', actor: 'workload:api', payload: { i } });
    await log.flush();
    clock.advance(60_000);
  }
  void log.append({ stream: 'admin', type: 'policy.activated', actor: 'user:alice', payload: { version: 2 } });
  await log.flush();
  return { s, log, clock };
}

test('query filters: stream, identity, actor, subject, boundary, decision, type, time, after-seq, limit, order', async () => {
  const { s, log } = await seeded();
  try {
    assert.equal((await log.query({ stream: 'authz', limit: 1000 })).length, 30);
    assert.equal((await log.query({ limit: 1000 })).length, 61);
    const denies = await log.query({ stream: 'authz', decision: 'deny', limit: 1000 });
    assert.deepEqual(denies.map((r) => r.payload.i), [0, 3, 6, 9, 12, 15, 18, 21, 24, 27]);
    assert.equal((await log.query({ stream: 'authz', actor: 'agent:bot', limit: 1000 })).length, 15);
    assert.equal((await log.query({ stream: 'authz', subject: 'workload:api', limit: 1000 })).length, 6);
    // identity matches actor or subject: 15 as actor + subjects at i = 0, 10, 20 (even i: actor agent:bot)
    assert.equal((await log.query({ stream: 'authz', identity: 'workload:api', limit: 1000 })).length, 18);
    assert.equal((await log.query({ boundary: 'ai-platform', limit: 1000 })).length, 10);
    assert.equal((await log.query({ type: 'authn.failure', limit: 1000 })).length, 8);
    const window = await log.query({ stream: 'authz', since: '2026-03-01T00:10:00Z', until: Date.parse('2026-03-01T00:15:00Z') });
    assert.deepEqual(window.map((r) => r.payload.i), [10, 11, 12, 13, 14]);
    assert.deepEqual((await log.query({ stream: 'authz', afterSeq: 27 })).map((r) => r.seq), [28, 29, 30]);
    assert.deepEqual((await log.query({ stream: 'authz', order: 'desc', limit: 2 })).map((r) => r.seq), [30, 29]);
    assert.equal((await log.query({})).length, 61);
    const all = await log.query({ limit: 1000 });
    assert.deepEqual(all[0].time <= all[1].time, true, 'multi-stream results are in time order');
    assert.deepEqual((await log.query({ stream: 'admin' }))[0], { stream: 'admin', seq: 1, time: '2026-03-01T00:30:00.000Z', type: 'policy.activated', actor: 'user:alice', payload: { version: 2 }, prev_hash: (await log.query({ stream: 'admin' }))[0].prev_hash, hash: (await log.head('admin')).hash });
    await log.close();
  } finally {
    s.cleanup();
  }
});

test('query limits and bad filters', async () => {
  const s = tempStore();
  try {
    const log = new AuditLog(auditStore(s.db));
    await Promise.all(Array.from({ length: 1100 }, (_, i) => log.append({ stream: 'authn', type: 'authn.success', actor: 'x', payload: { i } })));
    assert.equal((await log.query({ stream: 'authn' })).length, 100);
    assert.equal((await log.query({ stream: 'authn', limit: 5000 })).length, AUDIT_QUERY_MAX_LIMIT);
    for (const bad of [{ limit: 0 }, { limit: 1.5 }, { afterSeq: 3 }, { stream: 'x' }, { since: 'yesterday' }, { decision: 'maybe' }, { actor: '' }, { order: 'up' }]) {
      await assert.rejects(queryEvents(s.db, bad as never), InvalidInput, JSON.stringify(bad));
    }
    await log.close();
  } finally {
    s.cleanup();
  }
});

test('follow yields new events as they commit, with filters, and stops on abort', async () => {
  const s = tempStore();
  try {
    const log = new AuditLog(auditStore(s.db));
    await log.append({ stream: 'authz', type: 'authz.decision', actor: 'a', decision: 'allow', payload: {} }); // before: not followed
    const ac = new AbortController();
    const seen: AuditRecord[] = [];
    const done = (async () => {
      for await (const r of log.follow({ stream: 'authz', decision: 'deny', signal: ac.signal })) {
        seen.push(r);
        if (seen.length === 3) ac.abort();
      }
    })();
    for (let i = 0; i < 6; i++) {
      await log.append({ stream: 'authz', type: 'authz.decision', actor: 'a', decision: i % 2 ? 'deny' : 'allow', payload: { i } });
      await new Promise((r) => setImmediate(r));
    }
    await done;
    assert.deepEqual(seen.map((r) => r.payload.i), [1, 3, 5]);
    await log.close();
  } finally {
    s.cleanup();
  }
});

test('follow replays from afterSeq, then goes live across pages; close() ends it', async () => {
  const s = tempStore();
  try {
    const log = new AuditLog(auditStore(s.db));
    await Promise.all(Array.from({ length: 1200 }, (_, i) => log.append({ stream: 'admin', type: 'x', actor: 'a', payload: { i } })));
    const seen: number[] = [];
    const done = (async () => {
      for await (const r of log.follow({ stream: 'admin', afterSeq: 100 })) seen.push(r.seq);
    })();
    // Waits for the follower to reach each point (close() ends it wherever it is, and a loaded
    // machine may be slow to get there); only a follower that never gets there fails.
    const until = async (n: number) => {
      const deadline = Date.now() + 60_000;
      while (seen.length < n) {
        assert.ok(Date.now() < deadline, `follower saw ${seen.length} of ${n} events within 60 s`);
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    await until(1100);
    await Promise.all(Array.from({ length: 10 }, (_, i) => log.append({ stream: 'admin', type: 'x', actor: 'a', payload: { i } })));
    await until(1110);
    await log.close();
    await done;
    assert.equal(seen.length, 1110);
    assert.deepEqual(seen.slice(0, 2), [101, 102]);
    assert.equal(seen.at(-1), 1210);
  } finally {
    s.cleanup();
  }
});

test('follow across all streams and the onAppend listener', async () => {
  const s = tempStore();
  try {
    const log = new AuditLog(auditStore(s.db));
    const batches: number[] = [];
    const off = log.onAppend((rs) => batches.push(rs.length));
    const it = log.follow()[Symbol.asyncIterator]();
    const first = it.next();
    await Promise.all([
      log.append({ stream: 'authn', type: 'a', actor: 'x', payload: {} }),
      log.append({ stream: 'admin', type: 'b', actor: 'x', payload: {} }),
    ]);
    const a = await first;
    const b = await it.next();
    assert.deepEqual([a.value?.stream, b.value?.stream].sort(), ['admin', 'authn']);
    off();
    await log.append({ stream: 'authn', type: 'c', actor: 'x', payload: {} });
    assert.deepEqual(batches, [2]);
    await it.return(undefined);
    await log.close();
  } finally {
    s.cleanup();
  }
});

test('export writes canonical JSON lines whose hashes anyone can recompute', async () => {
  const { s, log } = await seeded();
  try {
    const lines: string[] = [];
    for await (const line of log.exportJsonLines()) lines.push(line);
    assert.equal(lines.length, 61);
    for (const line of lines) {
      assert.ok(line.endsWith('\n'));
      const rec = JSON.parse(line) as AuditRecord;
      assert.equal(canonicalJson(rec) + '\n', line);
      const { hash, ...rest } = rec;
      assert.equal(createHash('sha256').update(canonicalJson(rest)).digest('hex'), hash);
    }
    const out = new PassThrough();
    const chunks: string[] = [];
    out.on('data', (c: Buffer) => chunks.push(c.toString()));
    const n = await log.exportTo(out, { stream: 'authz', decision: 'deny' });
    out.end();
    assert.equal(n, 10);
    assert.equal(chunks.join('').split('\n').filter(Boolean).length, 10);
    await log.close();
  } finally {
    s.cleanup();
  }
});
