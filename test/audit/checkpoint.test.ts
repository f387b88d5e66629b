import { test } from 'node:test';
import assert from 'node:assert/strict';
import { verify } from 'node:crypto';
import { AuditLog } from '../../src/audit/log.ts';
import { checkpointMessage, type CheckpointRow } from '../../src/audit/checkpoint.ts';
import { ManualClock } from '../../src/common/clock.ts';
import { auditStore, ed25519Key, resolverOf, tempStore, verifyAll, verifyStream } from './helpers.ts';
import { createPublicKey } from 'node:crypto';

const ev = (i: number) => ({ stream: 'authz' as const, type: 'authz.decision', actor: 'workload:a', decision: 'allow' as const, payload: { i } });

function checkpoints(db: import('node:sqlite').DatabaseSync): CheckpointRow[] {
  return db.prepare('SELECT * FROM audit_checkpoints ORDER BY stream, seq').all() as unknown as CheckpointRow[];
}

test('a checkpoint every N events, signed with Ed25519 and stored with its kid', async () => {
  const s = tempStore();
  try {
    const key = ed25519Key('audit-2026-01');
    const log = new AuditLog(auditStore(s.db), { signer: key.signer, checkpointEvery: 10, clock: new ManualClock() });
    const recs = await Promise.all(Array.from({ length: 35 }, (_, i) => log.append(ev(i))));
    await log.flush(); // checkpoints are signed after their events commit, stored with the next write
    const cps = checkpoints(s.db);
    assert.deepEqual(cps.map((c) => [c.seq, c.prev_seq]), [[10, 0], [20, 10], [30, 20]]);
    for (const c of cps) {
      assert.equal(c.kid, 'audit-2026-01');
      assert.equal(c.hash, recs[c.seq - 1].hash);
      const pub = createPublicKey({ key: key.jwk, format: 'jwk' });
      assert.equal(verify(null, checkpointMessage(c), pub, Buffer.from(c.sig, 'base64url')), true);
    }
    const v = await verifyStream(s.db, 'authz', resolverOf(key));
    assert.deepEqual(v, { stream: 'authz', events: 35, checkpoints: 3, ok: true, signedThrough: 30, lastSeq: 35 });
    await log.close(); // a final checkpoint signs the tail
    assert.equal((await verifyStream(s.db, 'authz', resolverOf(key))).signedThrough, 35);
  } finally {
    s.cleanup();
  }
});

test('a checkpoint when T ms passed since the last one', async () => {
  const s = tempStore();
  try {
    const key = ed25519Key('k');
    const clock = new ManualClock();
    const log = new AuditLog(auditStore(s.db), { signer: key.signer, checkpointEvery: 1000, checkpointIntervalMs: 10_000, clock });
    await log.append(ev(1));
    await log.append(ev(2));
    assert.equal(checkpoints(s.db).length, 0);
    clock.advance(10_000);
    await log.append(ev(3)); // the commit notices the interval has passed
    await log.flush();
    assert.deepEqual(checkpoints(s.db).map((c) => c.seq), [3]);
    clock.advance(10_000);
    await log.checkpointNow(); // no new events: nothing to sign
    assert.equal(checkpoints(s.db).length, 1);
    await log.append(ev(4));
    await log.checkpointNow();
    assert.deepEqual(checkpoints(s.db).map((c) => c.seq), [3, 4]);
    assert.equal(checkpoints(s.db)[1].time, new Date(clock.now()).toISOString());
    await log.close();
  } finally {
    s.cleanup();
  }
});

test('key rotation: a signer function is asked at each checkpoint; verify resolves each kid', async () => {
  const s = tempStore();
  try {
    const k1 = ed25519Key('k1');
    const k2 = ed25519Key('k2');
    let current = k1;
    // A manual clock: no interval checkpoint joins in. Each group is flushed before the key
    // changes: the writer may hand a due checkpoint back with a later reply of the same group
    // commit (e.g. one the 1 s timer sent), so it is signed when that reply arrives, not when its
    // events resolve; flush() waits for every reply, so checkpoint 5 is signed while k1 is current.
    const log = new AuditLog(auditStore(s.db), { signer: () => current.signer, checkpointEvery: 5, clock: new ManualClock() });
    await Promise.all(Array.from({ length: 5 }, (_, i) => log.append(ev(i))));
    await log.flush();
    current = k2;
    await Promise.all(Array.from({ length: 5 }, (_, i) => log.append(ev(i))));
    await log.flush();
    assert.deepEqual(checkpoints(s.db).map((c) => c.kid), ['k1', 'k2']);
    assert.equal((await verifyAll(s.db, resolverOf(k1, k2))).ok, true);
    const onlyNew = await verifyStream(s.db, 'authz', resolverOf(k2));
    assert.equal(onlyNew.ok, false);
    assert.equal(onlyNew.firstBadSeq, 1);
    assert.match(onlyNew.reason!, /unknown or non-Ed25519 key "k1"/);
    await log.close();
  } finally {
    s.cleanup();
  }
});

test('a checkpoint signed by another key does not verify', async () => {
  const s = tempStore();
  try {
    const real = ed25519Key('k');
    const impostor = ed25519Key('k');
    const log = new AuditLog(auditStore(s.db), { signer: impostor.signer, checkpointEvery: 3, clock: new ManualClock() });
    await Promise.all(Array.from({ length: 7 }, (_, i) => log.append(ev(i))));
    await log.flush();
    const v = await verifyStream(s.db, 'authz', resolverOf(real));
    assert.equal(v.ok, false);
    assert.equal(v.firstBadSeq, 1);
    assert.match(v.reason!, /invalid signature/);
    await log.close();
  } finally {
    s.cleanup();
  }
});

test('the timer signs idle streams (real time, short interval)', async () => {
  const s = tempStore();
  try {
    const key = ed25519Key('k');
    const log = new AuditLog(auditStore(s.db), { signer: key.signer, checkpointEvery: 1000, checkpointIntervalMs: 50 });
    await log.append(ev(1));
    // Nothing else asks for a checkpoint: only the timer can make one. Waits for it (a loaded
    // machine may take long), fails only if it never comes.
    const deadline = Date.now() + 60_000;
    while (checkpoints(s.db).length === 0) {
      assert.ok(Date.now() < deadline, 'no checkpoint from the timer within 60 s');
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.deepEqual(checkpoints(s.db).map((c) => c.seq), [1]);
    await log.close();
  } finally {
    s.cleanup();
  }
});

test('a failing signer never fails appends; the next checkpoint still links to the last stored one', async () => {
  const s = tempStore();
  try {
    const key = ed25519Key('k');
    let broken = false;
    const signer = { kid: 'k', sign: (d: Uint8Array) => { if (broken) throw new Error('hsm unavailable'); return key.signer.sign(d); } };
    // Flushed between phases so each due checkpoint is signed in its phase (see key rotation).
    const log = new AuditLog(auditStore(s.db), { signer, checkpointEvery: 5, clock: new ManualClock() });
    await Promise.all(Array.from({ length: 5 }, (_, i) => log.append(ev(i))));
    await log.flush();
    broken = true;
    const recs = await Promise.all(Array.from({ length: 5 }, (_, i) => log.append(ev(i))));
    assert.equal(recs.at(-1)!.seq, 10);
    await log.flush(); // checkpoint 10 was due and its signing failed: flush still settles
    assert.deepEqual(checkpoints(s.db).map((c) => c.seq), [5]);
    broken = false;
    await Promise.all(Array.from({ length: 5 }, (_, i) => log.append(ev(i))));
    await log.flush();
    assert.deepEqual(checkpoints(s.db).map((c) => [c.seq, c.prev_seq]), [[5, 0], [15, 5]]);
    assert.equal((await verifyStream(s.db, 'authz', resolverOf(key))).ok, true);
    await log.close();
  } finally {
    s.cleanup();
  }
});

for (const writer of ['inline', 'worker'] as const) {
  test(`checkpoints and verification with the ${writer} writer`, async () => {
    const s = tempStore();
    try {
      const key = ed25519Key('k');
      // A manual clock: only count checkpoints (and the final one), however slow the machine is.
      const log = new AuditLog(auditStore(s.db), { signer: key.signer, checkpointEvery: 7, writer, clock: new ManualClock() });
      for (let round = 0; round < 5; round++) {
        await Promise.all(Array.from({ length: 9 }, (_, i) => log.append({ ...ev(i), stream: round % 2 ? 'admin' : 'authz' })));
      }
      await log.close();
      assert.deepEqual(checkpoints(s.db).map((c) => [c.stream, c.seq, c.prev_seq]), [
        ['admin', 7, 0], ['admin', 14, 7], ['admin', 18, 14],
        ['authz', 7, 0], ['authz', 14, 7], ['authz', 21, 14], ['authz', 27, 21],
      ]);
      const v = await verifyAll(s.db, resolverOf(key));
      assert.equal(v.ok, true);
    } finally {
      s.cleanup();
    }
  });
}
