// The login endpoints over real HTTP: rate limits per address and per key on every
// authentication endpoint (429, Retry-After, metric, one audit event per window), JSON-only
// bodies, case-insensitive Bearer.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness } from '../integration/harness.ts';
import type { Harness } from '../integration/harness.ts';
import { authnEvents, badKey, json, raw } from './http.ts';
import type { Answer } from './http.ts';

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

