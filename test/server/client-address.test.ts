// The client address over real HTTP: X-Forwarded-For only from listen.trusted_proxies (IPv4,
// IPv6, v4-mapped), used by audit, decisions and rate limits.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness } from '../integration/harness.ts';
import { addressBucket, FixedWindowLimiter } from '../../src/server/edge.ts';
import { authnEvents, json, raw } from './http.ts';

describe('client address behind a load balancer', () => {
  test('IPv4: X-Forwarded-For is believed from a trusted proxy (right-most untrusted hop) and ignored from anyone else', async () => {
    const h = await startHarness('', {}, undefined, { listen: 'trusted_proxies: ["127.0.0.1/32"]' });
    try {
      const login = async (xff: string, localAddress: string) => {
        const r = await raw(h.url, 'POST', '/v1/auth/token', { ...json({ token: await h.ciToken() }, { 'x-forwarded-for': xff }), localAddress });
        assert.equal(r.status, 200);
        return r.body.session_token as string;
      };
      await login('203.0.113.7', '127.0.0.1');
      await login('198.51.100.1, 203.0.113.8', '127.0.0.1'); // the client forged the first hop
      const forgedToken = await login('203.0.113.9', '127.0.0.2'); // not a trusted proxy
      const ips = (await authnEvents(h, 'authn.success')).map((e) => e.payload.source_ip);
      assert.deepEqual(ips.slice(-3), ['203.0.113.7', '203.0.113.8', '127.0.0.2']);
      // The decision context (context.request.sourceIp) and its record use the same address.
      const d = await raw(h.url, 'POST', '/v1/authorize', { ...json({ action: 'db.select', resource: { type: 'Database', id: 'analytics' } }, { authorization: `Bearer ${forgedToken}`, 'x-forwarded-for': '10.9.9.9' }), localAddress: '127.0.0.2' });
      assert.equal(d.status, 200, JSON.stringify(d.body));
      await h.running.broker.audit.flush();
      const authz = await h.running.broker.audit.query({ stream: 'authz', limit: 1000 });
      assert.match(JSON.stringify(authz.at(-1)), /127\.0\.0\.2/);
      assert.doesNotMatch(JSON.stringify(authz.at(-1)), /10\.9\.9\.9/);
    } finally {
      await h.close();
    }
  });

  test('IPv6 and v4-mapped peers: the same rule on a dual-stack listener', async () => {
    for (const [trusted, peer, expected] of [
      ['"::1/128"', '::1', '2001:db8::7'], // IPv6 proxy trusted
      ['"::1/128"', '127.0.0.1', '::ffff:127.0.0.1'], // a v4 peer (v4-mapped) is not ::1: header ignored
      ['"127.0.0.0/8"', '127.0.0.1', '2001:db8::7'], // an IPv4 CIDR matches the v4-mapped peer
      ['"127.0.0.0/8"', '::1', '::1'], // … but not an IPv6 peer
      ['"::ffff:127.0.0.1/128"', '127.0.0.1', '2001:db8::7'], // a v4-mapped CIDR
    ] as const) {
      const h = await startHarness('', {}, undefined, { host: '::', listen: `trusted_proxies: [${trusted}]` });
      try {
        const url = h.url.replace('[::]', peer.includes(':') ? `[${peer}]` : peer);
        const r = await raw(url, 'POST', '/v1/auth/token', json({ token: await h.ciToken() }, { 'x-forwarded-for': '2001:db8::7' }));
        assert.equal(r.status, 200);
        const ips = (await authnEvents(h, 'authn.success')).map((e) => e.payload.source_ip);
        assert.equal(ips.at(-1), expected, `trusted ${trusted}, peer ${peer}`);
      } finally {
        await h.close();
      }
    }
  });

  test('trusted_proxies entries are validated at load', async () => {
    const { parseConfig } = await import('../../src/config/load.ts');
    for (const bad of ['10.0.0.0/33', 'fd00::/129', 'not-an-ip', '10.0.0.0/8/8', 'loopback']) {
      assert.throws(() => parseConfig(`listen: { trusted_proxies: ["${bad}"] }\n`, '/tmp'), (e: Error & { extra?: { field?: string } }) => e.extra?.field === 'listen.trusted_proxies[0]', bad);
    }
  });

  test('address buckets: v4-mapped folds to IPv4, IPv6 by /64', () => {
    assert.equal(addressBucket('::ffff:10.1.2.3'), '10.1.2.3');
    assert.equal(addressBucket('10.1.2.3'), '10.1.2.3');
    assert.equal(addressBucket('2001:db8:1:2::1'), '2001:db8:1:2::/64');
    assert.equal(addressBucket('2001:0db8:0001:0002:ffff:0:0:1'), '2001:db8:1:2::/64');
    assert.equal(addressBucket('::1'), '0:0:0:0::/64');
    assert.notEqual(addressBucket('2001:db8:1:3::1'), addressBucket('2001:db8:1:2::1'));
  });

  test('the fixed window forgets when it rolls, and a flood of keys shares one overflow bucket', () => {
    let now = 0;
    const l = new FixedWindowLimiter({ requests: 2, window_ms: 1000 }, 100, () => now);
    assert.deepEqual([l.hit('a').allowed, l.hit('a').allowed, l.hit('a').allowed], [true, true, false]);
    now = 1000;
    assert.equal(l.hit('a').allowed, true);
    for (let i = 0; i < 99; i++) l.hit(`k${i}`); // with 'a': 100 keys tracked
    assert.equal(l.hit('new-1').allowed, true);
    assert.equal(l.hit('new-2').allowed, true);
    assert.equal(l.hit('new-3').allowed, false, 'keys beyond max_tracked share one bucket');
  });
});

