// Item 8.26: outbound calls refuse destinations inside the operator's network, checked on the
// resolved address inside the connection's own lookup. A real loopback server stands in for
// "something internal": reaching it (hits > 0) is what a refusal must prevent.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { execFile } from 'node:child_process';
import { createServer as createTcpServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { Socket } from 'node:net';
import { HumanOidcTrust } from '../../src/identity/trusts/oidc-human/oidc-human.ts';
import { validateHumanOidcTrust } from '../../src/identity/trusts/oidc-human/config.ts';
import { Unavailable } from '../../src/common/errors.ts';
import { forbiddenReason, LOOPBACK, OutboundRefused, outboundFetch, parseCidr } from '../../src/common/outbound.ts';
import type { Resolver } from '../../src/common/outbound.ts';
import { WebhookDispatcher } from '../../src/access/webhooks.ts';
import { SqliteAccessStore } from '../../src/store/sqlite/access.ts';
import { validateAccessConfig } from '../../src/access/config.ts';
import { SqliteDb } from '../../src/store/sqlite/db.ts';

let server: Server;
let port = 0;
let hits = 0;

before(async () => {
  server = createServer((req, res) => {
    hits++;
    if (req.url?.startsWith('/redirect?to=')) {
      res.writeHead(302, { location: decodeURIComponent(req.url.slice('/redirect?to='.length)) }).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' }).end(`inside ${req.method} ${req.url}`);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as { port: number }).port;
});
after(() => new Promise<void>((r) => server.close(() => r())));

/** A resolver from a fixed table; counts resolutions. */
function table(map: Record<string, string[]>): Resolver & { calls: number } {
  const f = (async (h: string) => {
    f.calls++;
    const list = map[h];
    if (!list) throw new Error(`ENOTFOUND ${h}`);
    return list.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  }) as Resolver & { calls: number };
  f.calls = 0;
  return f;
}

async function refused(p: Promise<unknown>, re: RegExp = /refused/): Promise<void> {
  await assert.rejects(p, (e: unknown) => e instanceof OutboundRefused && re.test((e as Error).message));
}

describe('outbound destinations', () => {
  test('IP literals in every spelling are refused before any connection', async () => {
    const f = outboundFetch();
    const urls = [
      'http://169.254.169.254/latest/meta-data/', 'http://2852039166/', 'http://0xa9fea9fe/', 'http://0251.0376.0251.0376/',
      'http://0xa9.0xfe.0xa9.0xfe/', 'http://169.254.43518/', 'http://[::ffff:169.254.169.254]/', 'http://[::ffff:a9fe:a9fe]/',
      'http://[fd00:ec2::254]/', 'http://[fe80::1]/', 'http://[::]/', 'http://0.0.0.0/', 'http://0/', 'http://10.0.0.1/', 'http://172.16.5.4/',
      'http://192.168.1.1/', 'http://100.64.0.1/', 'http://[fc00::1]/', 'http://224.0.0.1/', 'http://[ff02::1]/',
      'http://[64:ff9b::a9fe:a9fe]/', 'http://[2002:a9fe:a9fe::1]/', 'http://[::127.0.0.1]/', `http://127.0.0.1:${port}/`,
      `http://127.1:${port}/`, `http://0x7f000001:${port}/`, `http://2130706433:${port}/`, `http://[::1]:${port}/`, `http://[::ffff:127.0.0.1]:${port}/`,
    ];
    const before = hits;
    for (const u of urls) await refused(f(u), /refused/);
    assert.equal(hits, before, 'nothing reached');
  });

  test('the classification, including IPv4 inside IPv6', () => {
    assert.equal(forbiddenReason('8.8.8.8'), undefined);
    assert.equal(forbiddenReason('2606:4700::1111'), undefined);
    assert.equal(forbiddenReason('::ffff:8.8.8.8'), undefined);
    assert.match(forbiddenReason('::ffff:10.1.2.3')!, /RFC 1918/);
    assert.match(forbiddenReason('169.254.169.254')!, /metadata/);
    assert.match(forbiddenReason('fd00:ec2::254')!, /unique local/);
    assert.match(forbiddenReason('100.127.255.255')!, /carrier-grade/);
    assert.throws(() => parseCidr('10.0.0.0/33'), /prefix/);
    assert.throws(() => parseCidr('localhost'), /not an IP/);
  });

  test('a hostname is judged by what it resolves to, in the lookup used for the connection', async () => {
    const dns = table({ 'metadata.example.com': ['169.254.169.254'], 'internal.example.com': ['127.0.0.1'], 'mixed.example.com': ['8.8.8.8', '127.0.0.1'], 'v6.example.com': ['::ffff:127.0.0.1'] });
    const f = outboundFetch({ resolve: dns });
    const before = hits;
    await refused(f('http://metadata.example.com/latest/meta-data/'), /metadata\.example\.com \(169\.254\.169\.254\) is link-local/);
    await refused(f(`http://internal.example.com:${port}/`), /loopback/);
    await refused(f(`http://mixed.example.com:${port}/`), /loopback/);
    await refused(f(`http://v6.example.com:${port}/`), /loopback/);
    assert.equal(hits, before, 'nothing reached');
    // Allowed when declared; one resolution per connection, so no window between check and connect.
    const ok = table({ 'internal.example.com': ['127.0.0.1'] });
    const g = outboundFetch({ resolve: ok, allowPrivate: ['127.0.0.1/32'] });
    const res = await g(`http://internal.example.com:${port}/hello`);
    assert.equal(await res.text(), 'inside GET /hello');
    assert.equal(ok.calls, 1);
  });

  test('DNS rebinding: every connection resolves and checks again', async () => {
    let n = 0;
    const rebinding: Resolver = async () => [{ address: n++ === 0 ? '127.0.0.1' : '169.254.169.254', family: 4 }];
    const f = outboundFetch({ resolve: rebinding, allowPrivate: LOOPBACK });
    assert.equal((await f(`http://rebind.example.com:${port}/`)).status, 200);
    await refused(f(`http://rebind.example.com:${port}/`), /169\.254\.169\.254/);
  });

  test('redirects: refused on error mode, re-checked on follow, returned on manual', async () => {
    const f = outboundFetch({ allowPrivate: LOOPBACK, resolve: table({ 'metadata.example.com': ['169.254.169.254'] }) });
    const to = (u: string) => `http://127.0.0.1:${port}/redirect?to=${encodeURIComponent(u)}`;
    await refused(f(to('http://169.254.169.254/latest/meta-data/')), /link-local/);
    await refused(f(to('http://metadata.example.com/x')), /link-local/);
    await refused(f(to('http://[::ffff:a9fe:a9fe]/')), /link-local/);
    await refused(f(to(`http://127.0.0.1:${port}/fine`), { redirect: 'error' }), /redirect/);
    assert.equal((await f(to('http://169.254.169.254/'), { redirect: 'manual' })).status, 302);
    assert.equal(await (await f(to(`http://127.0.0.1:${port}/fine`))).text(), 'inside GET /fine');
    await refused(f(to('file:///etc/passwd')), /scheme/);
  });

  test("Portcullis' own listener is refused even where loopback is allowed", async () => {
    const before = hits;
    for (const host of ['127.0.0.1', '0.0.0.0', '::']) {
      const f = outboundFetch({ allowPrivate: LOOPBACK, self: [{ host, port }] });
      await refused(f(`http://127.0.0.1:${port}/`), /own listener/);
      await refused(f(`http://[::ffff:127.0.0.1]:${port}/`), /own listener/);
    }
    // A listener named by hostname, reached under another name or address of this machine.
    for (const host of ['portcullis.internal', 'localhost', 'LOCALHOST', '[::]']) {
      const f = outboundFetch({ allowPrivate: LOOPBACK, self: [{ host, port }], resolve: table({ 'idp.example.com': ['127.0.0.1'] }) });
      await refused(f(`http://127.0.0.1:${port}/`), /own listener/);
      await refused(f(`http://idp.example.com:${port}/.well-known/jwks.json`), /own listener/);
    }
    assert.equal(hits, before);
    await refused(outboundFetch({ allowPrivate: LOOPBACK })(`http://user:pw@127.0.0.1:${port}/`), /credentials/);
  });

  test('allow_private names exactly what it names', async () => {
    const f = outboundFetch({ allowPrivate: ['10.0.0.0/8'] });
    await refused(f(`http://127.0.0.1:${port}/`), /loopback/);
    const g = outboundFetch({ allowPrivate: ['127.0.0.1/32'] });
    assert.equal((await g(`http://[::ffff:127.0.0.1]:${port}/`)).status, 200, 'IPv4-mapped form of an allowed address');
    await refused(g('http://169.254.169.254/'), /link-local/);
  });

  test('webhooks use the outbound policy by default: a metadata endpoint fails, nothing sent', async () => {
    const { webhooks: outbox } = new SqliteAccessStore(SqliteDb.open(':memory:'));
    const cfg = validateAccessConfig(
      { webhooks: { backoff_base: '20ms', backoff_max: '40ms', max_attempts: 1, timeout: '2s', endpoints: [{ name: 'meta', url: 'http://169.254.169.254/hook', secret_env: 'S', allow_insecure: true }, { name: 'local', url: `http://127.0.0.1:${port}/hook`, secret_env: 'S' }] } },
      { S: 'x'.repeat(32) },
    );
    const d = new WebhookDispatcher({ outbox, config: cfg.webhooks });
    const before = hits;
    d.notify('breakglass.started', { n: 1 });
    assert.ok(await d.idle(60_000));
    for (const r of await d.deliveries({})) {
      assert.equal(r.status, 'failed');
      assert.match(String(r.last_error), /refused/);
    }
    assert.equal(hits, before);
    await d.stop();
  });

  test('review variants: translated IPv6 forms, documentation ranges, Unicode and percent-encoded spellings', async () => {
    for (const a of ['::ffff:0:a9fe:a9fe', '::ffff:0:7f00:1', '64:ff9b:1::a9fe:a9fe', '64:ff9b:1:fffe::1', '2001:0:4136:e378:8000:63bf:3fff:fdd2', '2001:db8::1', '3fff::1', '192.0.2.1', '198.51.100.7', '203.0.113.9']) {
      assert.notEqual(forbiddenReason(a), undefined, a);
    }
    assert.match(forbiddenReason('::ffff:0:a9fe:a9fe')!, /link-local.*inside IPv6/);
    assert.equal(forbiddenReason('2001:4860:4860::8888'), undefined, 'a public 2001:… address is not Teredo');
    const f = outboundFetch({ allowPrivate: ['10.0.0.0/8'] });
    const before = hits;
    for (const u of [
      'http://169.254.169.254./', 'http://[::ffff:0:a9fe:a9fe]/', `http://[::ffff:0:7f00:1]:${port}/`, `http://①②⑦.0.0.1:${port}/`,
      `http://127。0。0。1:${port}/`, `http://%31%32%37.0.0.1:${port}/`, `http://127.0.0.1%2e:${port}/`, `http://[64:ff9b:1::7f00:1]:${port}/`,
    ]) {
      await refused(f(u), /refused/);
    }
    assert.equal(hits, before, 'nothing reached');
  });

  test('a destination that never answers, trickles its body, or never resolves cannot hold a call', { timeout: 20_000 }, async () => {
    const sockets: Socket[] = [];
    // Accepts TCP and never says anything (no headers, no TLS handshake).
    const mute = createTcpServer((s) => { sockets.push(s); s.on('error', () => {}); });
    await new Promise<void>((r) => mute.listen(0, '127.0.0.1', r));
    // Sends headers, then one byte of body at a time, slowly.
    const trickle = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      const t = setInterval(() => res.write('x'), 100);
      res.on('close', () => clearInterval(t));
    });
    await new Promise<void>((r) => trickle.listen(0, '127.0.0.1', r));
    const mutePort = (mute.address() as { port: number }).port;
    const tricklePort = (trickle.address() as { port: number }).port;
    const timedOut = (e: unknown) => (e as Error).name === 'TimeoutError';
    // Hang guard (not a speed assertion): without a limit the call would never settle.
    const settles = <T>(p: Promise<T>) => Promise.race([p, new Promise<T>((_, rej) => setTimeout(() => rej(new Error('the call never settled')), 5000).unref())]);
    try {
      // No signal from the caller: the fetch's own limit applies.
      const f = outboundFetch({ allowPrivate: LOOPBACK, timeoutMs: 300, resolve: (h) => (h === 'never.example.com' ? new Promise(() => {}) : Promise.resolve([{ address: '127.0.0.1', family: 4 }])) });
      await assert.rejects(settles(f(`http://127.0.0.1:${mutePort}/`)), timedOut);
      await assert.rejects(settles(f(`https://127.0.0.1:${mutePort}/`)), timedOut);
      await assert.rejects(settles(f(`http://127.0.0.1:${tricklePort}/`)), timedOut);
      await assert.rejects(settles(f('http://never.example.com/')), timedOut);
      // The caller's signal wins over the default.
      const g = outboundFetch({ allowPrivate: LOOPBACK, timeoutMs: 60_000 });
      await assert.rejects(settles(g(`http://127.0.0.1:${tricklePort}/`, { signal: AbortSignal.timeout(300) })), timedOut);
    } finally {
      for (const s of sockets) s.destroy();
      trickle.closeAllConnections();
      await new Promise<void>((r) => mute.close(() => r()));
      await new Promise<void>((r) => trickle.close(() => r()));
    }
  });

  test("OIDC sign-in: the discovered jwks_uri goes through the same outbound policy (not jose's own fetch)", async () => {
    let jwksHits = 0;
    const idp = createServer((req, res) => {
      const base = `http://127.0.0.1:${(idp.address() as { port: number }).port}`;
      if (req.url === '/.well-known/openid-configuration') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({
          issuer: base, authorization_endpoint: `${base}/auth`, token_endpoint: `${base}/token`,
          // Portcullis' own listener under another name: reached only if the guard is bypassed.
          jwks_uri: `http://localhost:${port}/jwks`, code_challenge_methods_supported: ['S256'],
        }));
        return;
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((r) => idp.listen(0, '127.0.0.1', r));
    const count = (req: { url?: string }) => { if (req.url === '/jwks') jwksHits++; };
    server.on('request', count);
    try {
      const issuer = `http://127.0.0.1:${(idp.address() as { port: number }).port}`;
      const cfg = validateHumanOidcTrust({ name: 'sso', kind: 'oidc-human', issuer, client_id: 'c', redirect_uris: ['http://127.0.0.1/cb'] }, {});
      const trust = new HumanOidcTrust(cfg, { fetch: outboundFetch({ allowPrivate: LOOPBACK, self: [{ host: '0.0.0.0', port }] }) });
      assert.equal((await trust.discover()).jwks_uri, `http://localhost:${port}/jwks`);
      const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
      const now = Math.floor(Date.now() / 1000);
      const token = `${b64({ alg: 'RS256', kid: 'k1', typ: 'JWT' })}.${b64({ iss: issuer, aud: 'c', sub: 'x', iat: now, exp: now + 60 })}.${'A'.repeat(43)}`;
      await assert.rejects(trust.verifyIdToken(token));
      assert.equal(jwksHits, 0, 'the JWKS request reached a refused destination');
    } finally {
      server.off('request', count);
      await new Promise<void>((r) => idp.close(() => r()));
    }
  });

  test('OIDC sign-in: the code exchange and the device authorization go through openid-client over the same outbound policy', async () => {
    let selfHits = 0;
    const idp = createServer((req, res) => {
      const base = `http://127.0.0.1:${(idp.address() as { port: number }).port}`;
      if (req.url === '/.well-known/openid-configuration') {
        // The protocol endpoints are Portcullis' own listener under another name.
        const self = `http://localhost:${port}`;
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({
          issuer: base, authorization_endpoint: `${base}/auth`, token_endpoint: `${self}/token`, jwks_uri: `${base}/jwks`,
          device_authorization_endpoint: `${self}/device`, code_challenge_methods_supported: ['S256'],
        }));
        return;
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((r) => idp.listen(0, '127.0.0.1', r));
    const count = (req: { url?: string }) => { if (req.url === '/token' || req.url === '/device') selfHits++; };
    server.on('request', count);
    try {
      const issuer = `http://127.0.0.1:${(idp.address() as { port: number }).port}`;
      const cfg = validateHumanOidcTrust({ name: 'sso', kind: 'oidc-human', issuer, client_id: 'c', redirect_uris: ['http://127.0.0.1/cb'] }, {});
      const trust = new HumanOidcTrust(cfg, { fetch: outboundFetch({ allowPrivate: LOOPBACK, self: [{ host: '0.0.0.0', port }] }) });
      const started = await trust.startLogin({ redirectUri: 'http://127.0.0.1:5/cb' });
      assert.ok(started.url.startsWith(`${issuer}/auth?`));
      await assert.rejects(trust.completeLogin({ state: started.state, code: 'c0de' }), (e: Error) => e instanceof Unavailable && /unreachable/.test(e.message));
      await assert.rejects(trust.startDeviceLogin(), /device authorization failed/);
      assert.equal(selfHits, 0, 'a protocol request reached a refused destination');
    } finally {
      server.off('request', count);
      await new Promise<void>((r) => idp.close(() => r()));
    }
  });

  test('a proxy from the environment never carries an outbound call (it would resolve and connect for us)', async () => {
    let proxied = 0;
    const proxy = createServer((_req, res) => { proxied++; res.writeHead(200).end('via proxy'); });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    const proxyUrl = `http://127.0.0.1:${(proxy.address() as { port: number }).port}`;
    const mod = fileURLToPath(new URL('../../src/common/outbound.ts', import.meta.url));
    const script = `
      import { outboundFetch } from ${JSON.stringify(mod)};
      const f = outboundFetch({ allowPrivate: ['127.0.0.1/32'], resolve: async (h) => [{ address: h === 'meta.example.com' ? '169.254.169.254' : '127.0.0.1', family: 4 }] });
      const out = [];
      for (const u of ['http://meta.example.com/latest/meta-data/', 'http://direct.example.com:${port}/direct']) {
        try { out.push(await (await f(u)).text()); } catch (e) { out.push('refused: ' + e.message); }
      }
      console.log(JSON.stringify(out));`;
    try {
      const env = { ...process.env, NODE_USE_ENV_PROXY: '1', HTTP_PROXY: proxyUrl, http_proxy: proxyUrl, HTTPS_PROXY: proxyUrl, NO_PROXY: '' };
      const stdout = await new Promise<string>((resolve, reject) =>
        execFile(process.execPath, ['--input-type=module', '-e', script], { env, timeout: 30_000 }, (err, out) => (err ? reject(err) : resolve(out))));
      const [meta, direct] = JSON.parse(stdout.trim().split('\n').at(-1)!) as string[];
      assert.match(meta!, /refused: .*169\.254\.169\.254/);
      assert.equal(direct, 'inside GET /direct');
      assert.equal(proxied, 0);
    } finally {
      await new Promise<void>((r) => proxy.close(() => r()));
    }
  });
});
