// Witnessed checkpoints (issue #8 item 11): an attacker who can write the store but not the
// witness truncates the tail with its checkpoints and head row, re-chains everything after a
// point, or deletes a whole stream. Store-only verification cannot see it (asserted, so the test
// shows what the witness adds); verification against the witness fails, offline, in parallel and
// online. A tampered witness fails its own signature checks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { AuditLog } from '../../src/audit/log.ts';
import { recordCanonical, type ChainFields } from '../../src/audit/chain.ts';
import { parseWitness, readWitnessFile } from '../../src/audit/witness.ts';
import { openDatabase } from '../../src/store/sqlite/db.ts';
import type { AuditVerification, StreamVerification } from '../../src/audit/types.ts';
import { auditStore, ed25519Key, resolverOf, tamper, tempStore, verifyDataDir, verifyDataDirParallel, type TempStore, type TestKey } from './helpers.ts';

const key: TestKey = ed25519Key('audit-k1');
const keys = resolverOf(key);

interface Fixture extends TempStore {
  witness: string;
  witnessDir: string;
}

function newLog(db: TempStore['db'], witness: string): AuditLog {
  return new AuditLog(auditStore(db), { signer: key.signer, checkpointEvery: 10, checkpointIntervalMs: 3_600_000, witness: { file: witness } });
}

/** 45 authz events (checkpoints 10..40 stored and witnessed; 41..45 unsigned) and 25 authn events. */
async function fixture(): Promise<Fixture> {
  const s = tempStore();
  const witnessDir = mkdtempSync(join(tmpdir(), 'portcullis-witness-')); // "another volume"
  const witness = join(witnessDir, 'checkpoints.jsonl');
  const log = newLog(s.db, witness);
  for (let i = 1; i <= 45; i++) {
    void log.append({ stream: 'authz', type: 'authz.decision', actor: `workload:w${i % 4}`, decision: i % 3 ? 'allow' : 'deny', payload: { i } });
    if (i <= 25) void log.append({ stream: 'authn', type: 'authn.success', actor: `workload:w${i}`, payload: { method: 'oidc' } });
  }
  await log.flush();
  s.db.close(); // server down, and the log never closed: the tail stays unsigned
  return {
    ...s,
    witness,
    witnessDir,
    cleanup() {
      s.cleanup();
      rmSync(witnessDir, { recursive: true, force: true });
    },
  };
}

async function withFixture(fn: (s: Fixture) => Promise<void>): Promise<void> {
  const s = await fixture();
  try {
    await fn(s);
  } finally {
    s.cleanup();
  }
}

const streamOf = (r: AuditVerification, name: string): StreamVerification => r.streams.find((x) => x.stream === name)!;

/** Store alone, and store + witness serially and in parallel (which must agree). */
async function verifyBoth(s: Fixture): Promise<{ storeOnly: AuditVerification; witnessed: AuditVerification }> {
  const storeOnly = await verifyDataDir(s.dir, keys);
  const w = await readWitnessFile(s.witness, keys);
  const witnessed = await verifyDataDir(s.dir, keys, w);
  const par = await verifyDataDirParallel(s.dir, keys, { threads: 3, minParallel: 20, witness: w });
  assert.deepEqual(par, witnessed, 'parallel verification agrees');
  return { storeOnly, witnessed };
}

/** Re-chains authz from `from` to the end (new content), moves the head, deletes the checkpoints that no longer match. */
function rechain(path: string, from: number, to?: number): void {
  const db = new DatabaseSync(path);
  try {
    if (to !== undefined) db.prepare("DELETE FROM audit_events WHERE stream = 'authz' AND seq > ?").run(to);
    const rows = db.prepare("SELECT * FROM audit_events WHERE stream = 'authz' AND seq >= ? ORDER BY seq").all(from) as unknown as (ChainFields & { hash: string })[];
    let prev = (db.prepare("SELECT hash FROM audit_events WHERE stream = 'authz' AND seq = ?").get(from - 1) as { hash: string }).hash;
    const upd = db.prepare("UPDATE audit_events SET actor = 'user:mallory', prev_hash = ?, hash = ? WHERE stream = 'authz' AND seq = ?");
    for (const r of rows) {
      const h = createHash('sha256').update(recordCanonical({ ...r, actor: 'user:mallory', prev_hash: prev })).digest('hex');
      upd.run(prev, h, r.seq);
      prev = h;
    }
    db.prepare("DELETE FROM audit_checkpoints WHERE stream = 'authz' AND seq >= ?").run(from);
    db.prepare("UPDATE audit_heads SET seq = ?, hash = ? WHERE stream = 'authz'").run(rows.at(-1)!.seq, prev);
  } finally {
    db.close();
  }
}

test('every signed checkpoint is in the witness file as it is made; an untouched store verifies against it', async () => {
  await withFixture(async (s) => {
    const lines = readFileSync(s.witness, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(lines.filter((l) => l.stream === 'authz').map((l) => [l.seq, l.prev_seq]), [[10, 0], [20, 10], [30, 20], [40, 30]]);
    assert.deepEqual(Object.keys(lines[0]).sort(), ['hash', 'kid', 'prev_seq', 'seq', 'sig', 'stream', 'time']);
    const { witnessed } = await verifyBoth(s);
    assert.equal(witnessed.ok, true, JSON.stringify(witnessed));
    assert.equal(streamOf(witnessed, 'authz').witnessedThrough, 40);
    assert.equal(streamOf(witnessed, 'authn').witnessedThrough, 20);
    assert.deepEqual(witnessed.witness, { source: s.witness, checkpoints: 6, ok: true });
  });
});

test('tail truncated with its checkpoints and head row: only the witness sees it', async () => {
  for (const keep of [39, 35, 30, 11, 1]) {
    await withFixture(async (s) => {
      const db = new DatabaseSync(s.path);
      db.prepare("DELETE FROM audit_events WHERE stream = 'authz' AND seq > ?").run(keep);
      db.prepare("DELETE FROM audit_checkpoints WHERE stream = 'authz' AND seq > ?").run(keep);
      db.prepare("UPDATE audit_heads SET seq = ?, hash = (SELECT hash FROM audit_events WHERE stream = 'authz' AND seq = ?) WHERE stream = 'authz'").run(keep, keep);
      db.close();
      const { storeOnly, witnessed } = await verifyBoth(s);
      assert.equal(storeOnly.ok, true, `keep ${keep}: the store alone is consistent`);
      const v = streamOf(witnessed, 'authz');
      assert.equal(witnessed.ok, false, `keep ${keep}`);
      assert.equal(v.firstBadSeq, keep + 1, `keep ${keep}`);
      assert.match(v.reason!, /witnessed checkpoint at seq \d+/);
      assert.equal(streamOf(witnessed, 'authn').ok, true, 'other streams unaffected');
    });
  }
});

test('chain re-written from a point on (head moved, stale checkpoints deleted): fails after the last matching witnessed checkpoint', async () => {
  for (const [from, bad] of [[33, 31], [40, 31], [41, 41], [5, 1]] as const) {
    await withFixture(async (s) => {
      rechain(s.path, from);
      const { storeOnly, witnessed } = await verifyBoth(s);
      if (from <= 40) assert.equal(storeOnly.ok, true, `from ${from}: the store alone is consistent`);
      const v = streamOf(witnessed, 'authz');
      if (from > 40) {
        // Residual window: only the unsigned tail (after the last witnessed checkpoint) was rewritten.
        assert.equal(witnessed.ok, true, 'events after the last witnessed checkpoint are only as safe as the head row');
        return;
      }
      assert.equal(v.ok, false, `from ${from}`);
      assert.equal(v.firstBadSeq, bad, `from ${from}`);
      assert.match(v.reason!, /rewritten \(witnessed checkpoint/);
    });
  }
  // Truncated AND re-chained (shorter and different).
  await withFixture(async (s) => {
    rechain(s.path, 15, 32);
    const { storeOnly, witnessed } = await verifyBoth(s);
    assert.equal(storeOnly.ok, true);
    assert.equal(streamOf(witnessed, 'authz').firstBadSeq, 11);
  });
});

test('a whole stream deleted (events, checkpoints, head), or every audit table dropped', async () => {
  await withFixture(async (s) => {
    for (const t of ['audit_events', 'audit_checkpoints', 'audit_heads']) tamper(s.path, `DELETE FROM ${t} WHERE stream = 'authz'`);
    const { storeOnly, witnessed } = await verifyBoth(s);
    assert.equal(storeOnly.ok, true, 'an empty stream is consistent on its own');
    const v = streamOf(witnessed, 'authz');
    assert.equal(v.ok, false);
    assert.equal(v.firstBadSeq, 1);
    assert.match(v.reason!, /truncated or deleted/);
  });
  await withFixture(async (s) => {
    tamper(s.path, 'DROP TABLE audit_events');
    const w = await readWitnessFile(s.witness, keys);
    const r = await verifyDataDir(s.dir, keys, w);
    assert.equal(r.ok, false);
    assert.deepEqual(r.streams.map((x) => [x.stream, x.firstBadSeq]), [['authn', 1], ['authz', 1], ['admin', undefined], ['session', undefined]]);
    assert.deepEqual(await verifyDataDirParallel(s.dir, keys, { witness: w }), r);
  });
});

test('truncated while the server was down, then written on: the old witnessed checkpoints still disagree', async () => {
  await withFixture(async (s) => {
    const db = new DatabaseSync(s.path);
    db.exec("DELETE FROM audit_events WHERE stream = 'authz' AND seq > 25; DELETE FROM audit_checkpoints WHERE stream = 'authz' AND seq > 25");
    db.exec("UPDATE audit_heads SET seq = 25, hash = (SELECT hash FROM audit_events WHERE stream = 'authz' AND seq = 25) WHERE stream = 'authz'");
    db.close();
    const reopened = openDatabase(s.path);
    const log = newLog(reopened, s.witness);
    for (let i = 0; i < 30; i++) void log.append({ stream: 'authz', type: 'authz.decision', actor: 'workload:w1', payload: { again: i } });
    await log.close();
    reopened.close();
    const { storeOnly, witnessed } = await verifyBoth(s);
    assert.equal(storeOnly.ok, true);
    assert.equal(streamOf(witnessed, 'authz').firstBadSeq, 21, 'witnessed seq 30 (first life) does not match the second life');
  });
});

test('a tampered witness fails its own checks: edited, forged, malformed, unknown key, wrong stream, missing file', async () => {
  const variants: [string, (lines: string[]) => string[]][] = [
    ['hash edited', (l) => l.map((x, i) => (i === 1 ? x.replace(/"hash":"[0-9a-f]/, (m) => m.slice(0, -1) + (m.endsWith('0') ? '1' : '0')) : x))],
    ['seq raised', (l) => l.map((x, i) => (i === 1 ? x.replace(/"seq":(\d+)/, (_, n) => `"seq":${Number(n) + 1000}`) : x))],
    ['stream swapped', (l) => l.map((x, i) => (i === 0 ? x.replace(/"stream":"(authz|authn)"/, (_, st) => `"stream":"${st === 'authz' ? 'authn' : 'authz'}"`) : x))],
    ['signed by another key', (l) => [...l, resign(l[0]!, ed25519Key('audit-k1'))]],
    ['unknown kid', (l) => [...l, resign(l[0]!, ed25519Key('attacker'))]],
    ['malformed line', (l) => [...l, '{"stream":"authz",']],
    ['not a checkpoint', (l) => [...l, JSON.stringify({ stream: 'authz', seq: 5 })]],
  ];
  await withFixture(async (s) => {
    const original = readFileSync(s.witness, 'utf8').trim().split('\n');
    for (const [name, edit] of variants) {
      const w = parseWitness(edit(original).join('\n') + '\n', 'edited', keys);
      const r = await verifyDataDir(s.dir, keys, w);
      assert.equal(r.ok, false, name);
      assert.equal(r.witness!.ok, false, name);
      assert.match(r.witness!.reason!, /witness line \d+/, name);
    }
    const missing = await readWitnessFile(join(s.witnessDir, 'nope.jsonl'), keys);
    const r = await verifyDataDir(s.dir, keys, missing);
    assert.equal(r.ok, false);
    assert.match(r.witness!.reason!, /cannot be read \(ENOENT\)/);
  });
});

function resign(line: string, k: TestKey): string {
  const c = JSON.parse(line);
  const sig = Buffer.from(k.signer.sign(Buffer.from('portcullis/audit/v1/checkpoint\n' + JSON.stringify({ hash: c.hash, prev_seq: c.prev_seq, seq: c.seq, stream: c.stream, time: c.time })))).toString('base64url');
  return JSON.stringify({ ...c, kid: k.signer.kid, sig });
}

test('online verifyAsync uses the configured witness (and races with appends are no false alarm)', async () => {
  await withFixture(async (s) => {
    const db = openDatabase(s.path);
    const log = newLog(db, s.witness);
    const racing = Promise.all(Array.from({ length: 200 }, (_, i) => log.append({ stream: 'authz', type: 'x', actor: 'a', payload: { i } })));
    const during = await log.verifyAsync(keys, { threads: 2, minParallel: 10 });
    await racing;
    await log.flush();
    assert.equal(during.ok, true, JSON.stringify(during));
    assert.ok(during.witness, 'the configured witness was read');
    const ok = await log.verifyAsync(keys);
    assert.equal(streamOf(ok, 'authz').witnessedThrough, 240);
    // Truncate behind the live log's back, with checkpoints and head.
    tamper(s.path, "DELETE FROM audit_events WHERE stream = 'authz' AND seq > 100");
    tamper(s.path, "DELETE FROM audit_checkpoints WHERE stream = 'authz' AND seq > 100");
    tamper(s.path, "UPDATE audit_heads SET seq = 100, hash = (SELECT hash FROM audit_events WHERE stream = 'authz' AND seq = 100) WHERE stream = 'authz'");
    const bad = await log.verifyAsync(keys);
    assert.equal(bad.ok, false);
    assert.equal(streamOf(bad, 'authz').firstBadSeq, 101);
    assert.equal((await log.verify(keys)).ok, true, 'the store alone cannot tell');
    // A witness line appended by someone without the key is reported, online too.
    appendFileSync(s.witness, resign(readFileSync(s.witness, 'utf8').split('\n')[0]!, ed25519Key('x')) + '\n');
    assert.equal((await log.verifyAsync(keys)).witness!.ok, false);
    await log.close();
    db.close();
  });
});

test('an unwritable witness file fails at start, not silently', () => {
  const s = tempStore();
  try {
    assert.throws(() => newLog(s.db, join(s.dir, 'no-such-dir', 'w.jsonl')), /ENOENT/);
  } finally {
    s.cleanup();
  }
});

test('the HTTP witness receives every checkpoint, retried after failures (also while closing), without holding up appends', async () => {
  const received: string[] = [];
  let refuse = 2; // the first two deliveries fail
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      if (req.headers['content-type'] !== 'application/json') return res.writeHead(415).end();
      // The refusals are slow, so close() arrives while the first checkpoint is still failing:
      // closing must not give up a checkpoint a blip refused (it did, under load, in CI).
      if (refuse-- > 0) return void setTimeout(() => res.writeHead(503).end(), 40);
      received.push(body);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const s = tempStore();
  const witnessDir = mkdtempSync(join(tmpdir(), 'portcullis-witness-'));
  try {
    const file = join(witnessDir, 'w.jsonl');
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/checkpoints`;
    const errors: string[] = [];
    const log = new AuditLog(auditStore(s.db), { signer: key.signer, checkpointEvery: 10, checkpointIntervalMs: 3_600_000, witness: { file, url, retryDelayMs: 1, onError: (w) => errors.push(w) } });
    await Promise.all(Array.from({ length: 35 }, (_, i) => log.append({ stream: 'admin', type: 'x', actor: 'a', payload: { i } })));
    await log.close();
    await log.witness!.url!.settled();
    assert.equal(errors.filter((e) => e === 'url').length, 2);
    const fromUrl = parseWitness(received.join('\n') + '\n', 'url', keys);
    assert.deepEqual(fromUrl.problems, []);
    assert.deepEqual(fromUrl.byStream.get('admin')!.map((c) => c.seq), [10, 20, 30, 35]);
    assert.deepEqual(received.map((b) => b + '\n').join(''), readFileSync(file, 'utf8'), 'the same lines as the file');
  } finally {
    server.close();
    s.cleanup();
    rmSync(witnessDir, { recursive: true, force: true });
  }
});

test('a witness sink that never answers holds up neither appends nor close()', async () => {
  const held: import('node:http').ServerResponse[] = [];
  const server = createServer((_req, res) => void held.push(res)); // accepts, never answers
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const s = tempStore();
  try {
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/`;
    const log = new AuditLog(auditStore(s.db), { signer: key.signer, checkpointEvery: 5, checkpointIntervalMs: 3_600_000, witness: { url } });
    const recs = await Promise.all(Array.from({ length: 20 }, (_, i) => log.append({ stream: 'admin', type: 'x', actor: 'a', payload: { i } })));
    await log.flush();
    assert.equal(recs.at(-1)!.seq, 20, 'every append resolved while the sink had answered nothing');
    await log.close();
    assert.ok(held.every((r) => !r.headersSent), 'and close() returned without an answer from it');
  } finally {
    server.closeAllConnections();
    server.close();
    s.cleanup();
  }
});
