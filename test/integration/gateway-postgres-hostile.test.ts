// Hostile input to the PostgreSQL gateway (issue #11): malformed and oversized messages, startup
// packets with unknown or dangerous parameters, SSL downgrades, bytes sent after SSLRequest before
// the handshake (the CVE-2021-23214 class), plaintext to a gateway that has a certificate, cancel
// keys — answered with a protocol error or a close, never a crash, never the upstream's secrets.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { missingDependency } from '../ci.ts';
import { has, run, selfSignedPem, startGatewayFixture, type GatewayFixture } from './gateway-postgres-helpers.ts';
import { freePort } from '../credentials/helpers.ts';

let f: GatewayFixture;
let tlsPort: number;
const TD = 'prod.acme.test';

before(async () => {
  tlsPort = await freePort();
  const pem = await selfSignedPem();
  const dir = (await import('node:fs')).mkdtempSync(join((await import('node:os')).tmpdir(), 'pcx-gw-tls-'));
  writeFileSync(join(dir, 'cert.pem'), pem.cert);
  writeFileSync(join(dir, 'key.pem'), pem.key);
  f = await startGatewayFixture({
    gatewayYaml: `    auth_timeout: 1s
    max_message_bytes: 65536
  - name: orders-gw-tls
    kind: postgres
    listen: { host: 127.0.0.1, port: ${tlsPort} }
    target: orders-db
    permission: readwrite
    tls: { cert: ${join(dir, 'cert.pem')}, key: ${join(dir, 'key.pem')} }
`,
    // X.509-SVIDs Portcullis issues, accepted as the proof over the TLS gateway.
    targetsYaml: `  - { name: svid, kind: spiffe-x509, trust_domain: ${TD}, max_ttl: 1h, default_ttl: 10m }\n`,
    policies: `permit (principal == Workload::"workload:github/acme/api", action == Action::"credential.issue", resource == Workload::"svid");\n`,
    harness: {
      trusts: `  - { name: own-svids, kind: spiffe, trust_domain: ${TD}, bundle: portcullis, boundary: application, environment: prod }\n`,
      resources: `  - { type: Workload, id: svid, boundary: application, environment: prod }\n`,
    },
  });
});

after(async () => {
  await f?.close();
});

// ── A raw wire client ───────────────────────────────────────────────────────────────────────

function startup(params: Record<string, string>, version = 196608): Buffer {
  const body = Buffer.concat([...Object.entries(params).flatMap(([k, v]) => [Buffer.from(`${k}\0`), Buffer.from(`${v}\0`)]), Buffer.from([0])]);
  const head = Buffer.alloc(8);
  head.writeUInt32BE(body.length + 8, 0);
  head.writeUInt32BE(version, 4);
  return Buffer.concat([head, body]);
}

function typed(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeUInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);

/** Everything the server sends until it closes (or `ms` pass). */
function collect(s: Socket, ms = 5000): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const done = () => resolve(Buffer.concat(chunks));
    s.on('data', (d) => chunks.push(d));
    s.on('close', done);
    s.on('error', () => {});
    setTimeout(() => {
      s.destroy();
      done();
    }, ms).unref();
  });
}

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}

/** The ErrorResponse fields in what the server sent (the first one). */
function errorOf(b: Buffer): Record<string, string> | undefined {
  for (let o = 0; o + 5 <= b.length; ) {
    const t = String.fromCharCode(b[o]!);
    const len = b.readUInt32BE(o + 1);
    if (t === 'E') {
      const out: Record<string, string> = {};
      let p = o + 5;
      while (b[p] !== 0 && p < o + 1 + len) {
        const code = String.fromCharCode(b[p]!);
        const end = b.indexOf(0, p + 1);
        out[code] = b.toString('utf8', p + 1, end);
        p = end + 1;
      }
      return out;
    }
    if (len < 4) return undefined;
    o += 1 + len;
  }
  return undefined;
}

/** Sends `bytes` on a fresh connection and returns what came back before the close. */
async function exchange(port: number, bytes: Buffer, ms = 5000): Promise<Buffer> {
  const s = await open(port);
  const got = collect(s, ms);
  s.write(bytes);
  return got;
}

/** A raw session past authentication: the socket, ready for typed messages. */
async function authenticated(port = f.port): Promise<{ s: Socket; got: Promise<Buffer> }> {
  const token = await f.token();
  const s = await open(port);
  const seen: Buffer[] = [];
  let ready!: () => void;
  const isReady = new Promise<void>((r) => (ready = r));
  s.on('data', (d) => {
    seen.push(d);
    const all = Buffer.concat(seen);
    if (all.length >= 9 && all[0] === 0x52 && all.readUInt32BE(5) === 3 && !s.writableEnded && seen.length === 1) s.write(typed('p', Buffer.from(`${token}\0`)));
    if (all.includes(Buffer.from([0x5a, 0, 0, 0, 5, 0x49]))) ready();
  });
  const got = collect(s, 10_000);
  s.write(startup({ user: 'api', database: 'orders-db' }));
  await isReady;
  return { s, got };
}

/** The gateway still serves a normal client. */
async function stillServes(): Promise<void> {
  const c = await f.client(await f.token());
  assert.equal((await c.query('SELECT name FROM items WHERE id = 1')).rows[0].name, 'one');
  await c.end();
}

// ── Startup ─────────────────────────────────────────────────────────────────────────────────

test('malformed startup packets: a FATAL protocol error and a close, never a crash', async () => {
  for (const bytes of [
    Buffer.from([0, 0, 0, 0, 0, 0, 0, 0]), // length 0
    Buffer.from([0, 0, 0, 4]), // length 4
    Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 3, 0, 0]), // 4 GiB
    Buffer.from([0, 0, 0x4e, 0x21, 0, 3, 0, 0]), // 20001 > the 10000 limit
  ]) {
    const got = await exchange(f.port, bytes);
    assert.equal(errorOf(got)?.C, '08P01', `for ${bytes.toString('hex')}: ${got.toString('latin1')}`);
    assert.equal(errorOf(got)?.S, 'FATAL');
  }
  // Unterminated parameter, trailing bytes, an unsupported protocol version, no user.
  const unterminated = Buffer.concat([Buffer.from([0, 0, 0, 12, 0, 3, 0, 0]), Buffer.from('user')]);
  assert.equal(errorOf(await exchange(f.port, unterminated))?.C, '08P01');
  assert.equal(errorOf(await exchange(f.port, startup({ user: 'api' }, 0x00020000)))?.C, '0A000');
  assert.equal(errorOf(await exchange(f.port, startup({ database: 'x' })))?.C, '28000');
  await stillServes();
});

test('random garbage, 200 times, then a normal client is still served', async () => {
  for (let i = 0; i < 200; i++) {
    const s = await open(f.port);
    const got = collect(s, 2000);
    s.end(randomBytes(1 + (i % 64)));
    await got;
  }
  await stillServes();
});

test('startup parameters: unknown ones are ignored; server options, replication and a search_path are refused', async () => {
  const ok = await exchange(f.port, startup({ user: 'api', database: 'orders-db', frobnicate: 'yes', _pq_: 'x' }), 1000);
  assert.equal(ok[0], 0x52, 'an authentication request: unknown parameters are not forwarded anywhere');
  for (const options of ['-c search_path=evil', '-c role=postgres_su', '--session_authorization=postgres_su', '-c portcullis.reason=ok -c work_mem=1']) {
    const got = await exchange(f.port, startup({ user: 'api', options }));
    assert.equal(errorOf(got)?.C, '42501', options);
  }
  assert.equal(errorOf(await exchange(f.port, startup({ user: 'api', replication: 'database' })))?.C, '42501');
  // A reason through options is read (and becomes the lease's purpose).
  const reason = await exchange(f.port, startup({ user: 'api', options: '-c portcullis.reason=ticket\\ OPS-1' }), 1000);
  assert.equal(reason[0], 0x52);
});

test('a client that never authenticates is closed after auth_timeout', async () => {
  const s = await open(f.port);
  const got = collect(s, 10_000);
  s.write(startup({ user: 'api' }));
  const b = await got;
  assert.equal(errorOf(b)?.C, '08006');
});

// ── After authentication ────────────────────────────────────────────────────────────────────

test('oversized, undersized and unknown messages after authentication end the session with a protocol error', async () => {
  for (const [bytes, code] of [
    [Buffer.from([0x51, 0x7f, 0xff, 0xff, 0xff]), '54000'], // a 2 GiB query
    [typed('Q', Buffer.alloc(70_000, 0x20)), '54000'], // over max_message_bytes (64 KiB here)
    [Buffer.from([0x51, 0, 0, 0, 2]), '08P01'], // length below its own size
    [typed('!', Buffer.from('x')), '08P01'], // no such message
    [typed('Q', Buffer.from('SELECT 1')), '08P01'], // an unterminated query string
    [typed('p', Buffer.from('again\0')), '08P01'], // a password message out of place
  ] as const) {
    const { s, got } = await authenticated();
    s.write(bytes);
    const all = await got;
    assert.equal(errorOf(all.subarray(all.lastIndexOf(Buffer.from([0x5a, 0, 0, 0, 5, 0x49])) + 6))?.C, code, bytes.subarray(0, 8).toString('hex'));
  }
  await stillServes();
});

test('the client sees the gateway\'s BackendKeyData, never the upstream\'s; a cancel through it reaches the upstream', async () => {
  const c = await f.client(await f.token());
  const upstreamPid = (await c.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
  const { processID, secretKey } = c as unknown as { processID: number; secretKey: number };
  assert.notEqual(processID, upstreamPid);
  const q = c.query('SELECT pg_sleep(30)').then(() => undefined, (e: Error & { code?: string }) => e);
  // Running upstream once its decision is durable (it calls a function): wait until the server runs it.
  const su = f.pgsrv.admin();
  await su.connect();
  try {
    while ((await su.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE state = 'active' AND query = 'SELECT pg_sleep(30)'")).rows[0].n === 0) await new Promise((r) => setTimeout(r, 50));
  } finally {
    await su.end();
  }
  // A wrong key cancels nothing; the right one cancels the running statement.
  const cancel = (pid: number, key: number) => {
    const b = Buffer.alloc(16);
    b.writeUInt32BE(16, 0);
    b.writeUInt32BE(80877102, 4);
    b.writeInt32BE(pid, 8);
    b.writeInt32BE(key, 12);
    return exchange(f.port, b, 2000);
  };
  assert.equal((await cancel(upstreamPid, secretKey)).length, 0, 'nothing is answered to a cancel request');
  await cancel(processID, secretKey ^ 1);
  await cancel(processID, secretKey);
  const err = await q;
  assert.equal(err?.code, '57014', String(err));
  assert.equal((await c.query('SELECT 1 AS one')).rows[0].one, 1, 'the session goes on after a cancel');
  await c.end();
});

test('the client never receives the upstream credential; records carry none', async () => {
  const { s, got } = await authenticated();
  s.write(typed('Q', Buffer.from('SELECT current_user AS u\0')));
  await new Promise((r) => setTimeout(r, 500));
  s.write(typed('X', Buffer.alloc(0)));
  const all = (await got).toString('latin1');
  assert.doesNotMatch(all, /postgres(ql)?:\/\//);
  assert.doesNotMatch(all, /password/i);
  await f.h.running.broker.audit.flush();
  const recs = await f.h.running.broker.audit.query({ stream: 'session', limit: 1000 });
  for (const r of recs) assert.doesNotMatch(JSON.stringify(r.payload), /"(password|uri|credential)"/);
});

// ── TLS ─────────────────────────────────────────────────────────────────────────────────────

test('a gateway with a certificate refuses plaintext and downgrades; bytes after SSLRequest are refused (CVE-2021-23214)', async () => {
  // Plaintext startup without SSLRequest.
  assert.equal(errorOf(await exchange(tlsPort, startup({ user: 'api' })))?.C, '28000');
  // Bytes sent behind the SSLRequest, before any handshake: never read as if encrypted.
  const injected = await exchange(tlsPort, Buffer.concat([SSL_REQUEST, startup({ user: 'injected' })]));
  assert.notEqual(injected[0], 0x53, 'no S: the upgrade is refused');
  assert.equal(errorOf(injected)?.C, '08P01');
  // GSSAPI encryption is declined ('N'), then plaintext is still refused.
  const gss = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30]);
  const s = await open(tlsPort);
  const got = collect(s, 3000);
  s.write(gss);
  await new Promise((r) => setTimeout(r, 100));
  s.write(startup({ user: 'api' }));
  const b = await got;
  assert.equal(b[0], 0x4e);
  assert.equal(errorOf(b.subarray(1))?.C, '28000');
  // The plaintext gateway answers an SSLRequest with 'N' and goes on in plaintext, as PostgreSQL does.
  const plain = await open(f.port);
  const pg = collect(plain, 1000);
  plain.write(SSL_REQUEST);
  await new Promise((r) => setTimeout(r, 100));
  plain.write(startup({ user: 'api' }));
  const pb = await pg;
  assert.equal(pb[0], 0x4e);
  assert.equal(pb[1], 0x52, 'then the authentication request');
});

test('over TLS: node-postgres and psql (sslmode=require) work; sslmode=disable is refused', async (t) => {
  const c = await f.client(await f.token(), { port: tlsPort, ssl: { rejectUnauthorized: false } });
  assert.equal((await c.query('SELECT name FROM items WHERE id = 2')).rows[0].name, 'two');
  await c.end();
  // A TLS handshake whose client then sends garbage inside: a protocol error, no crash.
  const raw = await open(tlsPort);
  raw.write(SSL_REQUEST);
  await new Promise<void>((r) => raw.once('data', () => r()));
  const sec = tlsConnect({ socket: raw, rejectUnauthorized: false });
  await new Promise<void>((r) => sec.once('secureConnect', () => r()));
  const got = collect(sec as unknown as Socket, 3000);
  sec.write(Buffer.from([0, 0, 0, 0]));
  assert.equal(errorOf(await got)?.C, '08P01');
  if (!has('psql')) return t.skip(missingDependency('psql', 'apt-get install postgresql-client'));
  const env = { ...process.env, PGPASSWORD: await f.token(), PGCONNECT_TIMEOUT: '10' };
  const args = (mode: string) => ['-X', '-A', '-t', `host=127.0.0.1 port=${tlsPort} user=api dbname=orders-db sslmode=${mode}`, '-c', 'SELECT name FROM items WHERE id = 1'];
  const ok = await run('psql', args('require'), { env });
  assert.match(ok.stdout, /^one$/m);
  const refused = await run('psql', args('disable'), { env }).catch((e: { stderr: string }) => e);
  assert.match(refused.stderr, /accepts TLS connections only/);
  await stillServes();
});

test('over TLS, an X.509-SVID Portcullis issued is the proof (no password); revoking its lease ends the session', async () => {
  const token = await f.token();
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const r = await f.h.post('/v1/credentials', { target: 'svid', reason: 'gateway mTLS', ttl: '5m', public_key: publicKey.export({ format: 'pem', type: 'spki' }) }, token);
  assert.equal(r.status, 201, JSON.stringify(r.body));
  const { credential, lease } = r.body as { credential: { chain: string }; lease: { id: string } };
  const key = privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
  const c = await f.client('never asked', { port: tlsPort, ssl: { rejectUnauthorized: false, cert: credential.chain, key } });
  assert.equal((await c.query('SELECT name FROM items WHERE id = 1')).rows[0].name, 'one');
  await f.h.running.broker.audit.flush();
  const start = (await f.h.running.broker.audit.query({ stream: 'session', type: 'session.start', order: 'desc', limit: 1 }))[0]!;
  assert.deepEqual(start.payload.authn, { method: 'spiffe-x509', trust: 'own-svids' });
  const ended = new Promise<Error & { code?: string }>((res) => c.once('error', res));
  c.on('error', () => {});
  const t0 = performance.now();
  assert.equal((await f.h.post('/v1/revocations', { selector: { lease: lease.id }, reason: 'test: SVID revoked' }, await f.h.admin())).status, 200);
  const err = await ended;
  assert.ok(performance.now() - t0 <= 1000);
  assert.equal(err.code, '57P01', err.message);
  // A certificate that is no Portcullis SVID falls back to the password.
  const pem = await selfSignedPem();
  const other = await f.client(await f.token(), { port: tlsPort, ssl: { rejectUnauthorized: false, cert: pem.cert, key: pem.key } });
  assert.equal((await other.query('SELECT name FROM items WHERE id = 2')).rows[0].name, 'two');
  await other.end();
});
