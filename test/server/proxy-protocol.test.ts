// The PROXY protocol on the API listener (#10 deployment): the parser against hostile bytes, then a
// real server over HTTP and TLS — a trusted proxy's header names the client in audit records, a
// trusted peer without one is closed, anyone else is served as themselves and cannot claim an
// address — and a real HAProxy sending v1 and v2 headers (with its LOCAL health checks).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command, IPv4Address, IPv4ProxyAddress, IPv6Address, IPv6ProxyAddress, TransportProtocol, V2ProxyProtocol } from 'proxy-protocol-js';
import { ProxyHeaderError, parseProxyHeader } from '../../src/server/proxy-protocol.ts';
import { parseConfig } from '../../src/config/load.ts';
import { startHarness } from '../integration/harness.ts';
import type { Harness } from '../integration/harness.ts';
import { freePort } from '../../src/common/net.ts';
import { missingDependency } from '../ci.ts';
import { authnEvents } from './http.ts';

/** A v2 header from proxy-protocol-js, with TLVs appended (its builder leaves them out of the length). */
const v2 = (src: string, port: number, command = Command.PROXY, transport = TransportProtocol.STREAM, tlv = new Uint8Array()) => {
  const head = Buffer.from(
    new V2ProxyProtocol(
      command,
      transport,
      src.includes(':')
        ? new IPv6ProxyAddress(IPv6Address.createFrom(expand6(src)), port, IPv6Address.createFrom(expand6('::1')), 443)
        : new IPv4ProxyAddress(IPv4Address.createFrom(src.split('.').map(Number)), port, IPv4Address.createFrom([10, 0, 0, 1]), 443),
    ).build(),
  );
  head.writeUInt16BE(head.readUInt16BE(14) + tlv.length, 14);
  return Buffer.concat([head, tlv]);
};

function expand6(a: string): number[] {
  const [head, tail] = a.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t].map((g) => parseInt(g, 16));
  return groups.flatMap((g) => [g >> 8, g & 0xff]);
}

describe('PROXY protocol header parser', () => {
  test('v1: TCP4, TCP6, UNKNOWN; incomplete input asks for more', () => {
    assert.deepEqual(parseProxyHeader(Buffer.from('PROXY TCP4 203.0.113.7 10.0.0.1 51000 443\r\nGET /')), { length: 43, peer: { address: '203.0.113.7', port: 51000, family: 'IPv4' } });
    assert.deepEqual(parseProxyHeader(Buffer.from('PROXY TCP6 2001:db8::7 ::1 51000 443\r\n'))?.peer, { address: '2001:db8::7', port: 51000, family: 'IPv6' });
    assert.deepEqual(parseProxyHeader(Buffer.from('PROXY UNKNOWN\r\n')), { length: 15, peer: null });
    assert.deepEqual(parseProxyHeader(Buffer.from('PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n'))?.peer, null);
    for (const partial of ['P', 'PROX', 'PROXY TCP4 203.0.113.7', '\r\n\r\n\0']) assert.equal(parseProxyHeader(Buffer.from(partial)), undefined, partial);
  });

  test('v2: PROXY over IPv4 and IPv6 with TLVs; LOCAL keeps the connection address; a split header asks for more', () => {
    const h4 = v2('203.0.113.7', 51000);
    assert.deepEqual(parseProxyHeader(Buffer.concat([h4, Buffer.from('GET / HTTP/1.1\r\n')])), { length: h4.length, peer: { address: '203.0.113.7', port: 51000, family: 'IPv4' } });
    assert.equal(parseProxyHeader(h4.subarray(0, 15)), undefined);
    assert.equal(parseProxyHeader(h4.subarray(0, h4.length - 1)), undefined);
    const h6 = v2('2001:db8::7', 51000, Command.PROXY, TransportProtocol.STREAM, new Uint8Array([0x04, 0x00, 0x02, 0xab, 0xcd]));
    assert.deepEqual(parseProxyHeader(h6), { length: h6.length, peer: { address: '2001:db8::7', port: 51000, family: 'IPv6' } });
    assert.deepEqual(parseProxyHeader(v2('203.0.113.7', 1, Command.LOCAL))?.peer, null);
  });

  test('hostile headers are refused with a reason, never parsed into an address', () => {
    const bad: [string, Buffer][] = [
      ['plain HTTP', Buffer.from('GET / HTTP/1.1\r\n')],
      ['a TLS ClientHello', Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])],
      ['v1 too long', Buffer.from(`PROXY TCP4 ${'1'.repeat(120)}`)],
      ['v1 garbage', Buffer.from('PROXY TCP4 hello world 1 2\r\n')],
      ['v1 family mismatch', Buffer.from('PROXY TCP4 2001:db8::7 10.0.0.1 1 2\r\n')],
      ['v1 port out of range', Buffer.from('PROXY TCP4 1.2.3.4 10.0.0.1 70000 2\r\n')],
      ['v1 unknown protocol', Buffer.from('PROXY UDP4 1.2.3.4 10.0.0.1 1 2\r\n')],
      ['v1 missing fields', Buffer.from('PROXY TCP4 1.2.3.4\r\n')],
      ['v2 wrong version', Buffer.from([...v2('1.2.3.4', 1).subarray(0, 12), 0x31, 0x11, 0x00, 0x0c, ...Buffer.alloc(12)])],
      ['v2 length beyond the cap', Buffer.from([...v2('1.2.3.4', 1).subarray(0, 12), 0x21, 0x11, 0xff, 0xff])],
      ['v2 length shorter than its addresses', Buffer.from([...v2('1.2.3.4', 1).subarray(0, 12), 0x21, 0x11, 0x00, 0x04, 1, 2, 3, 4])],
      ['v2 datagram', v2('1.2.3.4', 1, Command.PROXY, TransportProtocol.DGRAM)],
    ];
    for (const [what, bytes] of bad) assert.throws(() => parseProxyHeader(bytes), ProxyHeaderError, what);
  });

  test('config: proxy_protocol needs trusted_proxies', () => {
    assert.throws(() => parseConfig('listen: { proxy_protocol: true }\n', '/tmp'), (e: Error & { extra?: { field?: string } }) => e.extra?.field === 'listen.proxy_protocol' && /trusted_proxies/.test(e.message));
    assert.equal(parseConfig('listen: { proxy_protocol: true, trusted_proxies: [10.0.0.0/8] }\n', '/tmp').config.listen.proxy_protocol, true);
    assert.equal(parseConfig('listen: {}\n', '/tmp').config.listen.proxy_protocol, false);
  });
});

/** An HTTP(S) request whose connection starts with `preface` (a PROXY header), written in `chunks` pieces. */
function viaProxy(url: string, path: string, o: { preface?: Buffer; localAddress?: string; body?: unknown; headers?: Record<string, string>; tls?: boolean; chunks?: number }): Promise<{ status: number; body: string }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const open = (): Socket => {
      const sock = connect({ host: u.hostname, port: Number(u.port), ...(o.localAddress && { localAddress: o.localAddress }) });
      if (o.preface) {
        const n = o.chunks ?? 1;
        const step = Math.ceil(o.preface.length / n);
        for (let i = 0; i < o.preface.length; i += step) sock.write(o.preface.subarray(i, i + step));
      }
      return o.tls ? tlsConnect({ socket: sock, rejectUnauthorized: false, servername: 'localhost' }) : sock;
    };
    const body = o.body === undefined ? undefined : JSON.stringify(o.body);
    const req = (o.tls ? httpsRequest : httpRequest)(
      { method: body ? 'POST' : 'GET', path, createConnection: open, headers: { ...(body && { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }), ...o.headers } },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function lastLoginFrom(h: Harness): Promise<unknown> {
  return (await authnEvents(h, 'authn.success')).map((e) => e.payload.source_ip).at(-1);
}

describe('PROXY protocol on a real server', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness('', {}, undefined, { listen: 'trusted_proxies: ["127.0.0.1/32"], proxy_protocol: true, timeouts: { headers: 2s }' });
  });
  after(async () => h?.close());

  test('a trusted proxy\'s v1 and v2 headers name the client in the audit record; X-Forwarded-For on such a connection is not believed', async () => {
    const login = async (preface: Buffer, chunks = 1, headers: Record<string, string> = {}) => {
      const r = await viaProxy(h.url, '/v1/auth/token', { preface, localAddress: '127.0.0.1', body: { token: await h.ciToken() }, chunks, headers });
      assert.equal(r.status, 200, r.body);
      return lastLoginFrom(h);
    };
    assert.equal(await login(Buffer.from('PROXY TCP4 203.0.113.7 10.0.0.1 51000 443\r\n')), '203.0.113.7');
    assert.equal(await login(v2('198.51.100.9', 51001)), '198.51.100.9');
    assert.equal(await login(v2('2001:db8::7', 51002), 40), '2001:db8::7', 'a header split into many writes');
    assert.equal(await login(Buffer.from('PROXY TCP4 203.0.113.8 10.0.0.1 1 443\r\n'), 1, { 'x-forwarded-for': '10.9.9.9' }), '203.0.113.8');
    // LOCAL (a health check of the balancer's own): the proxy's address stays.
    assert.equal(await login(v2('203.0.113.99', 1, Command.LOCAL)), '127.0.0.1');
  });

  test('a trusted peer that sends no header, or a bad one, is closed without an answer; anyone else is served as themselves and cannot claim an address', async () => {
    await assert.rejects(viaProxy(h.url, '/healthz', { localAddress: '127.0.0.1' }), /socket hang up|ECONNRESET/);
    await assert.rejects(viaProxy(h.url, '/healthz', { localAddress: '127.0.0.1', preface: Buffer.from('PROXY TCP4 nope 10.0.0.1 1 2\r\n') }), /socket hang up|ECONNRESET/);
    // Positive control on the same listener: another peer, plain HTTP.
    const r = await viaProxy(h.url, '/v1/auth/token', { localAddress: '127.0.0.2', body: { token: await h.ciToken() } });
    assert.equal(r.status, 200, r.body);
    assert.equal(await lastLoginFrom(h), '127.0.0.2');
    // An untrusted peer's header is not read: it is bad HTTP, and no record names 203.0.113.66.
    const forged = await viaProxy(h.url, '/v1/auth/token', { localAddress: '127.0.0.2', preface: Buffer.from('PROXY TCP4 203.0.113.66 10.0.0.1 1 2\r\n'), body: { token: await h.ciToken() } }).catch((e: Error) => ({ status: 0, body: e.message }));
    assert.notEqual(forged.status, 200);
    assert.equal(await lastLoginFrom(h), '127.0.0.2');
  });

  test('a trusted peer that never finishes its header is closed after listen.timeouts.headers', async () => {
    const sock = connect({ host: '127.0.0.1', port: Number(new URL(h.url).port), localAddress: '127.0.0.1' });
    sock.write('PROXY TCP4 203.0.113.7');
    await new Promise<void>((resolve) => sock.on('close', () => resolve()));
  });
});

describe('PROXY protocol over TLS', () => {
  let h: Harness;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pcx-pp-tls-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-subj', '/CN=localhost', '-days', '1'], { stdio: 'ignore' });
    h = await startHarness('', {}, undefined, { listen: `trusted_proxies: ["127.0.0.1/32"], proxy_protocol: true, tls: { cert: "${join(dir, 'cert.pem')}", key: "${join(dir, 'key.pem')}" }` });
  });
  after(async () => {
    await h?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the header comes before the TLS handshake and names the client on the TLS connection', async () => {
    const url = h.url.replace(/^http:/, 'https:');
    const r = await viaProxy(url, '/v1/auth/token', { tls: true, preface: v2('203.0.113.21', 4000), localAddress: '127.0.0.1', body: { token: await h.ciToken() } });
    assert.equal(r.status, 200, r.body);
    assert.equal(await lastLoginFrom(h), '203.0.113.21');
    // Without the header, the trusted peer's handshake goes nowhere; another peer's works.
    await assert.rejects(viaProxy(url, '/healthz', { tls: true, localAddress: '127.0.0.1' }));
    assert.equal((await viaProxy(url, '/healthz', { tls: true, localAddress: '127.0.0.2' })).status, 200);
  });
});

const HAPROXY = '/usr/sbin/haproxy';
describe('behind a real HAProxy', { skip: existsSync(HAPROXY) ? undefined : missingDependency('haproxy', 'apt-get install haproxy') }, () => {
  let h: Harness;
  let dir: string;
  const running: ChildProcess[] = [];
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pcx-haproxy-'));
    h = await startHarness('', {}, undefined, { listen: 'trusted_proxies: ["127.0.0.1/32"], proxy_protocol: true' });
  });
  after(async () => {
    for (const p of running) p.kill('SIGKILL');
    await h?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** HAProxy in the foreground on a free port (retried if another process takes it first). */
  async function haproxy(send: string): Promise<string> {
    const backend = new URL(h.url);
    for (let attempt = 0; ; attempt++) {
      const port = await freePort();
      const cfg = join(dir, `haproxy-${attempt}.cfg`);
      writeFileSync(
        cfg,
        [
          'global', '    maxconn 100',
          'defaults', '    mode http', '    timeout connect 5s', '    timeout client 30s', '    timeout server 30s',
          'frontend fe', `    bind 127.0.0.1:${port}`, '    default_backend be',
          'backend be', '    option httpchk', '    http-check send meth GET uri /healthz',
          `    server s1 ${backend.hostname}:${backend.port} source 127.0.0.1 check inter 200ms fall 1 rise 1 ${send}`, '',
        ].join('\n'),
      );
      const p = spawn(HAPROXY, ['-db', '-f', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
      let err = '';
      p.stderr.on('data', (d: Buffer) => (err += d));
      const ok = await new Promise<boolean>((resolve) => {
        p.once('exit', () => resolve(false));
        const poll = async () => {
          try {
            await new Promise<void>((res, rej) => connect(port, '127.0.0.1').once('connect', function (this: Socket) { this.destroy(); res(); }).once('error', rej));
            resolve(true);
          } catch {
            setTimeout(() => void poll(), 100);
          }
        };
        void poll();
      });
      if (ok) {
        running.push(p);
        return `http://127.0.0.1:${port}`;
      }
      if (attempt >= 3 || !/Address already in use|cannot bind/i.test(err)) throw new Error(`haproxy did not start: ${err}`);
    }
  }

  for (const send of ['send-proxy', 'send-proxy-v2']) {
    test(`${send}: the client's address reaches the audit record through HAProxy, and its health checks pass`, async () => {
      const lb = await haproxy(send);
      // Several health checks (sent with the same PROXY header kind) have run by now: one failure
      // (fall 1) would have marked the only server down and HAProxy would answer 503.
      await new Promise((r) => setTimeout(r, 1500));
      const r = await viaProxy(lb, '/v1/auth/token', { localAddress: '127.0.0.9', body: { token: await h.ciToken() } });
      assert.equal(r.status, 200, r.body);
      assert.equal(await lastLoginFrom(h), '127.0.0.9');
    });
  }
});
