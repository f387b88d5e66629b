// Webhook delivery to real HTTP receivers: signatures, retries with back-off, visible failures,
// and a caller that never waits on the network.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { SqliteDb } from '../../src/store/sqlite/db.ts';
import { SqliteAccessStore } from '../../src/store/sqlite/access.ts';
import { WebhookDispatcher, signWebhook, validateAccessConfig, verifyWebhookSignature } from '../../src/access/index.ts';
import { startReceiver } from './receiver.ts';
import type { Receiver } from './receiver.ts';
import { LOOPBACK, outboundFetch } from '../../src/common/outbound.ts';

const SECRET = 'whsec-test-0123456789abcdef';
const receivers: Receiver[] = [];
const dispatchers: WebhookDispatcher[] = [];

after(async () => {
  for (const d of dispatchers) await d.stop();
  for (const r of receivers) await r.close();
});

async function setup(endpoints: { name: string; url: string; events?: string[] }[], extra: Record<string, unknown> = {}) {
  const { webhooks: outbox } = new SqliteAccessStore(SqliteDb.open(':memory:'));
  const cfg = validateAccessConfig(
    { webhooks: { backoff_base: '20ms', backoff_max: '200ms', max_attempts: 4, timeout: '300ms', ...extra, endpoints: endpoints.map((e) => ({ ...e, secret_env: 'HOOK_SECRET' })) } },
    { HOOK_SECRET: SECRET },
  );
  const d = new WebhookDispatcher({ outbox, config: cfg.webhooks, fetch: outboundFetch({ allowPrivate: LOOPBACK }) });
  dispatchers.push(d);
  return d;
}

describe('webhooks', () => {
  test('signature scheme: t=<unix>,v1=<hex HMAC-SHA256(secret, t.body)>; tampering and stale timestamps fail', () => {
    const body = '{"a":1}';
    const now = 1_800_000_000;
    const h = signWebhook(SECRET, now, body);
    assert.match(h, /^t=1800000000,v1=[0-9a-f]{64}$/);
    assert.ok(verifyWebhookSignature(SECRET, h, body, { nowS: now + 10 }));
    assert.ok(!verifyWebhookSignature(SECRET, h, '{"a":2}', { nowS: now }));
    assert.ok(!verifyWebhookSignature('other-secret-000000', h, body, { nowS: now }));
    assert.ok(!verifyWebhookSignature(SECRET, h, body, { nowS: now + 301 }));
    assert.ok(!verifyWebhookSignature(SECRET, 'garbage', body, { nowS: now }));
    assert.ok(verifyWebhookSignature(SECRET, `${h},v1=${'0'.repeat(64)}`, body, { nowS: now }));
  });

  test('delivers signed JSON to a real receiver; retries a receiver that fails first; filters by event', async () => {
    const ok = await startReceiver(SECRET);
    const flaky = await startReceiver(SECRET, { failFirst: 2 });
    receivers.push(ok, flaky);
    // A per-attempt timeout that a loaded machine cannot hit by accident: the attempt count is checked.
    const d = await setup([
      { name: 'chat', url: ok.url },
      { name: 'tickets', url: flaky.url, events: ['request.created'] },
    ], { timeout: '30s' });
    d.notify('request.created', { request: { id: 'req_1', what: 'db.admin on Database::"orders"' } });
    d.notify('request.approved', { request: { id: 'req_1' } });
    const got = await ok.waitFor('request.created');
    assert.equal(got.valid, true);
    assert.equal(got.body.data.request.id, 'req_1');
    assert.match(got.body.id, /^evt_/);
    await ok.waitFor('request.approved');
    const retried = await flaky.waitFor('request.created');
    assert.equal(retried.valid, true);
    assert.equal(flaky.hits, 3);
    assert.ok(await d.idle(60_000));
    const rows = await d.deliveries({ endpoint: 'tickets' });
    assert.equal(rows.length, 1); // request.approved was not subscribed
    assert.equal(rows[0]!.status, 'delivered');
    assert.equal(rows[0]!.attempts, 3);
    assert.equal(rows[0]!.last_error, null);
  });

  test('a receiver that always fails ends as a visible failed delivery; notify never waits', async () => {
    const bad = await startReceiver(SECRET, { alwaysFail: true });
    const hang = await startReceiver(SECRET, { hang: true });
    receivers.push(bad, hang);
    const d = await setup([{ name: 'bad', url: bad.url }, { name: 'hang', url: hang.url }]);
    // Queue-only, checked without a clock: when notify returns, every delivery is queued and none
    // has been attempted yet.
    for (let i = 0; i < 8; i++) assert.equal(d.notify('breakglass.started', { n: i }), undefined);
    const queued = await d.deliveries({});
    assert.equal(queued.length, 16);
    assert.ok(queued.every((r) => r.status === 'pending' && r.attempts === 0), JSON.stringify(queued));
    assert.ok(await d.idle(60_000), 'queue drains (timeouts count as failures)');
    const badRows = await d.deliveries({ endpoint: 'bad' });
    assert.equal(badRows.length, 8);
    for (const r of badRows) {
      assert.equal(r.status, 'failed');
      assert.equal(r.attempts, 4);
      assert.equal(r.last_status, 500);
      assert.equal(r.last_error, 'HTTP 500');
    }
    const hangRows = await d.deliveries({ endpoint: 'hang' });
    assert.ok(hangRows.every((r) => r.status === 'failed' && r.last_error === 'timeout'));
    assert.equal(bad.hits, 32);
  });
});
