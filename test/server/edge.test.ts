// The HTTP edge over real HTTP: login rate limits (per address, per key, every auth endpoint),
// JSON-only login bodies, case-insensitive Bearer, X-Forwarded-For only from trusted proxies
// (IPv4, IPv6, v4-mapped), slow clients cut by the server's timeouts, /metrics protected.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { connect, createServer } from 'node:net';
import { startHarness } from '../integration/harness.ts';
import type { Harness } from '../integration/harness.ts';
import { addressBucket, FixedWindowLimiter } from '../../src/server/edge.ts';

interface Answer { status: number; body: any; headers: Record<string, string | string[] | undefined> }

/** A raw HTTP request: pick the local address (127.0.0.2 is another loopback peer) and headers. */
function raw(url: string, method: string, path: string, opts: { body?: string; headers?: Record<string, string>; localAddress?: string; family?: number } = {}): Promise<Answer> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port), method, path, headers: { ...(opts.body !== undefined && { 'content-length': String(Buffer.byteLength(opts.body)) }), ...opts.headers }, ...(opts.localAddress && { localAddress: opts.localAddress }) },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = text;
          try {
            body = JSON.parse(text);
          } catch {
            /* not JSON */
          }
          resolve({ status: res.statusCode ?? 0, body, headers: res.headers });
        });
      },
    );
    req.on('error', reject);
    if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}

const json = (body: unknown, headers: Record<string, string> = {}) => ({ body: JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } });
const badKey = (id: string) => `pcx_${id}${'A'.repeat(32)}AAAAAA`;

async function authnEvents(h: Harness, type: string): Promise<any[]> {
  await h.running.broker.audit.flush();
  return h.running.broker.audit.query({ stream: 'authn', type, limit: 1000 });
}

describe('login rate limits', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness(`limits:\n  login:\n    per_address: { requests: 6, window: 1h }\n    per_key: { requests: 3, window: 1h }\n`, {}, undefined, { listen: 'trusted_proxies: [127.0.0.1/32]' });
  });
  after(() => h.close());

  test('per key: the 4th attempt with one API key id is 429 from any address, with Retry-After, one audit event and a metric', async () => {
    const key = badKey('KEYAAAAAAA');
    const statuses: number[] = [];
    let last: Answer | undefined;
    for (let i = 0; i < 6; i++) {
      // A different client address each time (through the trusted proxy): the key limit still holds.
      last = await raw(h.url, 'POST', '/v1/auth/token', json({ api_key: key }, { 'x-forwarded-for': `198.51.100.${i + 1}` }));
      statuses.push(last.status);
    }
    assert.deepEqual(statuses, [401, 401, 401, 429, 429, 429]);
    assert.equal(last!.body.code, 'rate_limited');
    assert.match(String(last!.headers['content-type']), /application\/problem\+json/);
    const retry = Number(last!.headers['retry-after']);
    assert.ok(Number.isInteger(retry) && retry > 0 && retry <= 3600, `Retry-After ${last!.headers['retry-after']}`);
    // Another key id is not affected.
    assert.equal((await raw(h.url, 'POST', '/v1/auth/token', json({ api_key: badKey('KEYBBBBBBB') }, { 'x-forwarded-for': '198.51.100.50' }))).status, 401);
    const events = (await authnEvents(h, 'authn.rate_limited')).filter((e) => e.payload.bucket === 'apikey:KEYAAAAAAA');
    assert.equal(events.length, 1, 'one audit event per key and window, not one per refused attempt');
    assert.equal(events[0].payload.scope, 'key');
    assert.equal(events[0].payload.source_ip, '198.51.100.4');
    const metrics = await (await fetch(`${h.url}/metrics`)).text();
    assert.match(metrics, /portcullis_rate_limited_total\{endpoint="\/v1\/auth\/token",scope="key"\} 3/);
  });

  test('per key: bootstrap secrets, workload JWTs of one subject, /oauth2/token and device polls each have a key', async () => {
    const variants: [string, (i: number) => { path: string; body: string; headers: Record<string, string> }][] = [
      ['bootstrap', () => ({ path: '/v1/auth/token', ...json({ bootstrap: 'not-the-secret' }) })],
      ['jwt', () => ({ path: '/v1/auth/token', ...json({ token: `${Buffer.from('{"alg":"ES256"}').toString('base64url')}.${Buffer.from('{"iss":"https://x","sub":"victim"}').toString('base64url')}.AAAA` }) })],
      ['oauth2', () => ({ path: '/oauth2/token', body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token_type: 'urn:ietf:params:oauth:token-type:jwt', subject_token: `${Buffer.from('{"alg":"ES256"}').toString('base64url')}.${Buffer.from('{"iss":"https://y","sub":"victim"}').toString('base64url')}.AAAA` }).toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } })],
      ['device-poll', () => ({ path: '/v1/auth/device/poll', ...json({ handle: 'some-handle' }) })],
    ];
    let n = 0;
    for (const [name, make] of variants) {
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) {
        const r = make(i);
        statuses.push((await raw(h.url, 'POST', r.path, { body: r.body, headers: { ...r.headers, 'x-forwarded-for': `192.0.2.${++n}` } })).status);
      }
      assert.notEqual(statuses[2], 429, `${name}: ${statuses}`);
      assert.equal(statuses[3], 429, `${name}: the 4th attempt with one key is refused (${statuses})`);
    }
  });

  test('per address: the 7th attempt from one client is 429 whatever the keys; another client is not affected; HEAD and GET count', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) {
      const r = i === 5
        ? await raw(h.url, 'HEAD', '/v1/auth/login?redirect_uri=http://127.0.0.1/cb', { headers: { 'x-forwarded-for': '203.0.113.77' } })
        : await raw(h.url, 'POST', '/v1/auth/token', json({ api_key: badKey(`ADDR${i}AAAAA`) }, { 'x-forwarded-for': '203.0.113.77' }));
      statuses.push(r.status);
    }
    assert.equal(statuses[6], 429, String(statuses));
    assert.ok(statuses.slice(0, 6).every((s) => s !== 429), String(statuses));
    assert.equal((await raw(h.url, 'POST', '/v1/auth/token', json({ api_key: badKey('ADDRXAAAAA') }, { 'x-forwarded-for': '203.0.113.78' }))).status, 401);
    // An IPv6 client cannot escape by changing addresses inside its /64.
    const v6: number[] = [];
    for (let i = 1; i <= 7; i++) v6.push((await raw(h.url, 'POST', '/v1/auth/token', json({ api_key: badKey(`SIXX${i}AAAAA`) }, { 'x-forwarded-for': `2001:db8:1:2::${i.toString(16)}` }))).status);
    assert.equal(v6[6], 429, String(v6));
    const events = (await authnEvents(h, 'authn.rate_limited')).filter((e) => e.payload.scope === 'address');
    assert.deepEqual(events.map((e) => e.payload.bucket).sort(), ['2001:db8:1:2::/64', '203.0.113.77']);
  });

  test('a valid proof is refused too once its key is over the limit', async () => {
    const token = await h.ciToken();
    const codes: number[] = [];
    for (let i = 0; i < 4; i++) codes.push((await raw(h.url, 'POST', '/v1/auth/token', json({ token }, { 'x-forwarded-for': `100.64.0.${i + 1}` }))).status);
    assert.deepEqual(codes, [200, 200, 200, 429]);
  });
});

describe('request shape at the login endpoints', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(() => h.close());

  test('login bodies must be application/json: a form or text body (a cross-site login) is 415', async () => {
    for (const path of ['/v1/auth/token', '/v1/auth/callback', '/v1/auth/device', '/v1/auth/device/poll']) {
      for (const [type, body] of [
        ['application/x-www-form-urlencoded', 'bootstrap=abc'],
        ['text/plain', '{"bootstrap":"abc"}'],
        ['multipart/form-data; boundary=x', '--x\r\nContent-Disposition: form-data; name="bootstrap"\r\n\r\nabc\r\n--x--\r\n'],
        ['application/json-seq', '{"bootstrap":"abc"}'],
      ] as const) {
        const r = await raw(h.url, 'POST', path, { body, headers: { 'content-type': type } });
        assert.equal(r.status, 415, `${path} ${type}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.code, 'unsupported_media_type');
      }
      const noType = await raw(h.url, 'POST', path, { body: '{"bootstrap":"abc"}' });
      assert.equal(noType.status, 415, `${path} without a content type`);
    }
    // JSON with parameters and in any case is JSON.
    const ok = await raw(h.url, 'POST', '/v1/auth/token', { body: '{"bootstrap":"abc"}', headers: { 'content-type': 'Application/JSON; charset=utf-8' } });
    assert.equal(ok.status, 401);
    // No body at all is the client-certificate login: a precise 400, not 415.
    assert.equal((await raw(h.url, 'POST', '/v1/auth/token')).status, 400);
  });

  test('the Bearer scheme is case-insensitive (RFC 6750); other schemes are not bearer', async () => {
    const token = await h.loginCi();
    for (const scheme of ['Bearer', 'bearer', 'BEARER', 'bEaReR']) {
      const r = await raw(h.url, 'GET', '/v1/leases?mine=true', { headers: { authorization: `${scheme} ${token}` } });
      assert.equal(r.status, 200, scheme);
    }
    for (const bad of [`Basic ${token}`, `Bearer`, `Bearertoken ${token}`, token]) {
      assert.equal((await raw(h.url, 'GET', '/v1/leases?mine=true', { headers: { authorization: bad } })).status, 401, bad.slice(0, 12));
    }
  });
});

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
      const authz = h.running.broker.audit.query({ stream: 'authz', limit: 1000 });
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
        // One byte every 200 ms; a minute of this would be 300 bytes. The server must hang up first.
        while (open && sent < 300) {
          sock.write(drip);
          sent++;
          await new Promise((r) => setTimeout(r, 200));
        }
        sock.destroy();
        assert.ok(sent < 300, `${name}: the server kept the connection for ${sent} slow bytes`);
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

describe('/metrics', () => {
  test('behind a bearer token (metrics.token_env)', async () => {
    const secret = 'metrics-token-0123456789';
    const h = await startHarness('metrics: { token_env: PCX_METRICS_TOKEN }\n', { PCX_METRICS_TOKEN: secret });
    try {
      assert.equal((await raw(h.url, 'GET', '/metrics')).status, 401);
      assert.equal((await raw(h.url, 'GET', '/metrics', { headers: { authorization: 'Bearer wrong-token-0123456789' } })).status, 401);
      assert.equal((await raw(h.url, 'GET', '/metrics', { headers: { authorization: `Basic ${secret}` } })).status, 401);
      const ok = await raw(h.url, 'GET', '/metrics', { headers: { authorization: `bearer ${secret}` } });
      assert.equal(ok.status, 200);
      assert.match(String(ok.body), /portcullis_http_requests_total/);
      // The public endpoints stay public.
      for (const p of ['/healthz', '/readyz', '/.well-known/jwks.json', '/openapi.json']) assert.equal((await raw(h.url, 'GET', p)).status, 200, p);
    } finally {
      await h.close();
    }
  });

  test('on a separate listener (metrics.listen): gone from the API listener', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const h = await startHarness(`metrics: { listen: { host: 127.0.0.1, port: ${port} } }\n`);
    try {
      assert.equal((await raw(h.url, 'GET', '/metrics')).status, 404);
      const m = await raw(`http://127.0.0.1:${port}`, 'GET', '/metrics');
      assert.equal(m.status, 200);
      assert.match(String(m.body), /portcullis_decisions_total/);
      assert.equal((await raw(`http://127.0.0.1:${port}`, 'GET', '/v1/identities')).status, 404, 'only /metrics on the metrics listener');
      assert.equal(h.running.metricsUrl, `http://127.0.0.1:${port}`);
    } finally {
      await h.close();
    }
    // Closed with the server.
    await assert.rejects(raw(`http://127.0.0.1:${port}`, 'GET', '/metrics'));
  });

  test('metrics config errors name the field', async () => {
    const { parseConfig } = await import('../../src/config/load.ts');
    const field = (yaml: string, env: Record<string, string> = {}) => {
      try {
        parseConfig(yaml, '/tmp', env);
      } catch (e) {
        return (e as { extra?: { field?: string } }).extra?.field;
      }
      return 'accepted';
    };
    assert.equal(field('metrics: { token_env: NOPE_NOT_SET }\n'), 'metrics.token_env');
    assert.equal(field('metrics: { token_env: SHORT }\n', { SHORT: 'abc' }), 'metrics.token_env');
    assert.equal(field('metrics: { listen: { host: 127.0.0.1 } }\n'), 'metrics.listen.port');
    assert.equal(field('metrics: { bogus: 1 }\n'), 'metrics.bogus');
    assert.equal(field('limits: { login: { per_key: { requests: 0 } } }\n'), 'limits.login.per_key.requests');
    assert.equal(field('listen: { timeouts: { headers: 20s, request: 10s } }\n'), 'listen.timeouts.request');
  });
});
