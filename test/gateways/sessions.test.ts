// The live-session registry and the session recorder (src/gateways/sessions.ts): revocation by
// an explicit check and by the backstop, coalesced passes, numbering in call order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SessionRecorder, SessionRegistry, isSessionId, newSessionId, type SessionHangs } from '../../src/gateways/sessions.ts';
import type { AuditEventInput, AuditRecord } from '../../src/audit/types.ts';

const hangs = (identityId: string, leaseIds: string[] = []): SessionHangs => ({ identityId, leaseIds, grantIds: [] });

test('session ids look like gws_ and 20 url-safe characters; anything else is refused', () => {
  const id = newSessionId();
  assert.ok(isSessionId(id), id);
  assert.notEqual(newSessionId(), id);
  for (const bad of ['', 'gws_', `${id}x`, id.replace('gws_', 'gwx_'), 'gws_../../../etc/passwd!!', 42, null]) assert.equal(isSessionId(bad), false, String(bad));
});

test('a revoked hang ends exactly the sessions hanging on it, once, with the reason', async () => {
  const revoked = new Set<string>();
  const reg = new SessionRegistry({ revalidate: async (h) => (h.leaseIds.some((l) => revoked.has(l)) ? `lease ended` : undefined) });
  const ended: [string, string][] = [];
  const a = newSessionId();
  const b = newSessionId();
  reg.register({ id: a, gateway: 'g', kind: 'postgres', target: 't', sourceIp: '127.0.0.1', hangs: hangs('user:a', ['L1']), terminate: (r) => void ended.push([a, r]) });
  reg.register({ id: b, gateway: 'g', kind: 'postgres', target: 't', sourceIp: '127.0.0.1', hangs: hangs('user:b', ['L2']), terminate: (r) => void ended.push([b, r]) });
  await reg.check();
  assert.deepEqual(ended, []);
  revoked.add('L1');
  await Promise.all([reg.check(), reg.check(), reg.check()]);
  assert.deepEqual(ended, [[a, 'lease ended']]);
  assert.deepEqual(reg.list().map((s) => s.id), [b]);
  reg.hangOn(b, { leaseId: 'L3' });
  revoked.add('L3');
  await reg.check();
  assert.deepEqual(ended, [[a, 'lease ended'], [b, 'lease ended']]);
  assert.equal(reg.size, 0);
});

test('the backstop finds a revocation nobody announced; a failing check leaves the session and retries', async () => {
  let state: 'ok' | 'down' | 'revoked' = 'down';
  const reg = new SessionRegistry({ intervalMs: 20, revalidate: async () => { if (state === 'down') throw new Error('store unreachable'); return state === 'revoked' ? 'identity suspended' : undefined; } });
  let reason: string | undefined;
  const done = new Promise<void>((resolve) => reg.register({ id: newSessionId(), gateway: 'g', kind: 'ssh', target: 't', sourceIp: '::1', hangs: hangs('user:c'), terminate: (r) => { reason = r; resolve(); } }));
  reg.start();
  try {
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(reg.size, 1, 'an unreachable store ends nothing');
    state = 'revoked';
    await done;
    assert.equal(reason, 'identity suspended');
  } finally {
    await reg.stop();
  }
});

test('a terminate that throws is logged and the session still leaves the registry', async () => {
  const logs: string[] = [];
  const reg = new SessionRegistry({ revalidate: async () => 'ended', log: (m) => logs.push(m) });
  reg.register({ id: newSessionId(), gateway: 'g', kind: 'postgres', target: 't', sourceIp: '::1', hangs: hangs('user:d'), terminate: () => { throw new Error('socket gone'); } });
  await reg.check();
  assert.equal(reg.size, 0);
  assert.match(logs.join('\n'), /terminate failed: socket gone/);
});

test('the recorder numbers records in call order, 1..N, and session.end carries N', async () => {
  const got: Omit<AuditEventInput, 'stream'>[] = [];
  const delays = [30, 0, 10];
  let i = 0;
  const rec = new SessionRecorder(async (e) => {
    const d = delays[i++ % delays.length]!;
    await new Promise((r) => setTimeout(r, d));
    got.push(e);
    return { ...e, stream: 'session', seq: got.length, time: '', prev_hash: '', hash: '' } as AuditRecord;
  }, { session: 'gws_x', actor: 'user:e' });
  const ps = [rec.record('session.start', {}), rec.record('db.statement', { q: 1 }, 'allow'), rec.record('db.statement', { q: 2 }, 'deny')];
  await Promise.all(ps);
  await rec.end({ reason: 'client closed' });
  await rec.settled();
  const ns = got.map((e) => e.payload.n).sort();
  assert.deepEqual(ns, [1, 2, 3, 4]);
  const end = got.find((e) => e.type === 'session.end')!;
  assert.equal(end.payload.records, 4);
  assert.equal(end.payload.n, 4);
  assert.equal(got.find((e) => e.payload.q === 2)!.decision, 'deny');
  assert.ok(got.every((e) => e.payload.session === 'gws_x' && e.actor === 'user:e'));
});
