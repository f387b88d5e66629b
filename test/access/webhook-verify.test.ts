// Item 8.26: the receiver helper verifies the signature and refuses a replay of a delivery within
// the signature tolerance, keyed by the event id inside the signed body.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WebhookReceiver } from '../../src/access/webhook-verify.ts';
import { signWebhook } from '../../src/access/webhooks.ts';

const SECRET = 's'.repeat(32);
const body = (id: string) => JSON.stringify({ id, type: 'breakglass.started', created_at: '2026-03-02T10:00:00Z', data: { n: 1 } });

test('accepts once; a replay of the same request, or a re-signed retry, is refused', () => {
  let now = 1_000_000;
  const r = new WebhookReceiver({ secret: SECRET, nowS: () => now });
  const b = body('evt_1');
  const sig = signWebhook(SECRET, now, b);
  const first = r.verify(sig, b);
  assert.equal(first.ok, true);
  assert.equal(first.ok && first.event.id, 'evt_1');
  assert.deepEqual(r.verify(sig, b), { ok: false, reason: 'replay' });
  now += 250; // still inside the 300 s tolerance
  assert.deepEqual(r.verify(sig, Buffer.from(b)), { ok: false, reason: 'replay' });
  assert.deepEqual(r.verify(signWebhook(SECRET, now, b), b), { ok: false, reason: 'replay' }, 'a retry of the same event');
  assert.equal(r.verify(signWebhook(SECRET, now, body('evt_2')), body('evt_2')).ok, true);
  now += 400; // the captured request is now too old to verify at all
  assert.deepEqual(r.verify(sig, b), { ok: false, reason: 'bad_signature' });
});

test('refuses wrong secret, tampered body, stale or future t, missing header, malformed events; rotation', () => {
  const now = 2_000_000;
  const r = new WebhookReceiver({ secret: ['old-'.padEnd(32, 'x'), SECRET], nowS: () => now });
  const b = body('evt_3');
  assert.deepEqual(r.verify(signWebhook('other'.padEnd(32, 'y'), now, b), b), { ok: false, reason: 'bad_signature' });
  assert.deepEqual(r.verify(signWebhook(SECRET, now, b), b.replace('evt_3', 'evt_4')), { ok: false, reason: 'bad_signature' });
  assert.deepEqual(r.verify(signWebhook(SECRET, now - 301, b), b), { ok: false, reason: 'bad_signature' });
  assert.deepEqual(r.verify(signWebhook(SECRET, now + 301, b), b), { ok: false, reason: 'bad_signature' });
  assert.deepEqual(r.verify(undefined, b), { ok: false, reason: 'bad_signature' });
  for (const m of ['not json', '{"type":"x"}', '{"id":"","type":"x"}', 'null']) assert.deepEqual(r.verify(signWebhook(SECRET, now, m), m), { ok: false, reason: 'malformed' });
  assert.equal(r.verify(signWebhook(SECRET, now, b), b).ok, true, 'the second secret of a rotation');
  assert.throws(() => new WebhookReceiver({ secret: '' }), /secret/);
});

test('the cache is bounded and never forgets an id early: when full it refuses new events', () => {
  let now = 3_000_000;
  const r = new WebhookReceiver({ secret: SECRET, nowS: () => now, maxEntries: 2 });
  const ok = (id: string) => r.verify(signWebhook(SECRET, now, body(id)), body(id));
  assert.equal(ok('a').ok, true);
  assert.equal(ok('b').ok, true);
  assert.deepEqual(ok('c'), { ok: false, reason: 'busy' });
  assert.deepEqual(ok('a'), { ok: false, reason: 'replay' });
  now += 601; // past 2 × tolerance: old ids expire, room again
  assert.equal(ok('c').ok, true);
});

test('a replay is refused for as long as its signature verifies, including a t ahead of the receiver clock', () => {
  for (const retainS of [undefined, 0, 600]) {
    let now = 4_000_000;
    const r = new WebhookReceiver({ secret: SECRET, nowS: () => now, ...(retainS === undefined ? {} : { retainS }) });
    const b = body(`evt_ahead_${retainS}`);
    const sig = signWebhook(SECRET, now + 300, b); // the sender's clock is 300 s ahead: still within tolerance
    assert.equal(r.verify(sig, b).ok, true);
    for (const later of [1, 299, 300, 301, 599, 600]) {
      now = 4_000_000 + later;
      assert.deepEqual(r.verify(sig, b), { ok: false, reason: 'replay' }, `replayed ${later} s later (retainS ${retainS})`);
    }
    now = 4_000_000 + 601;
    assert.deepEqual(r.verify(sig, b), { ok: false, reason: 'bad_signature' }, 'too old to verify at all');
  }
});
