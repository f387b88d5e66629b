// Slow clients (slow-loris) are cut by the server's header and request timeouts.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { startHarness } from '../integration/harness.ts';

describe('slow clients', () => {
  test('a client sending its headers one byte at a time is cut after listen.timeouts.headers', async () => {
    const h = await startHarness('', {}, undefined, { listen: 'timeouts: { headers: 2s, request: 3s }' });
    try {
      const u = new URL(h.url);
      for (const [name, head, drip] of [
        ['slow headers', 'POST /v1/auth/token HTTP/1.1\r\nHost: x\r\nX-Slow: ', 'a'],
        ['slow body', 'POST /v1/auth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"bootstrap":"', 'a'],
      ] as const) {
        const sock = connect(Number(u.port), u.hostname);
        await new Promise((r) => sock.once('connect', r));
        sock.write(head);
        let sent = 0;
        let answer = '';
        sock.on('data', (d: Buffer) => (answer += d.toString()));
        const closed = new Promise<void>((r) => sock.once('close', () => r()));
        sock.on('error', () => {});
        let open = true;
        void closed.then(() => (open = false));
        // One byte every 200 ms: 100 bytes is 20 s, ten times the limit. The server must hang up first.
        while (open && sent < 100) {
          sock.write(drip);
          sent++;
          await new Promise((r) => setTimeout(r, 200));
        }
        sock.destroy();
        assert.ok(sent < 100, `${name}: the server kept the connection for ${sent} slow bytes`);
        assert.ok(answer === '' || /^HTTP\/1\.1 408/.test(answer), `${name}: ${answer.slice(0, 40)}`);
      }
    } finally {
      await h.close();
    }
  });

  test('the defaults bound headers to 10 s and a request to 30 s, checked at least every second', async () => {
    const h = await startHarness();
    try {
      const s = h.running.app.server;
      assert.equal(s.headersTimeout, 10_000);
      assert.equal(s.requestTimeout, 30_000);
      assert.ok(s.keepAliveTimeout > 0 && s.keepAliveTimeout <= 10_000);
    } finally {
      await h.close();
    }
  });
});

