// Graceful shutdown of a real server process: SIGTERM (and SIGINT) stops accepting, lets the
// requests in flight — including a slow one whose body is still arriving — finish with complete
// answers, then closes the stores and exits 0. A request that never finishes is cut after
// listen.timeouts.shutdown.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import type { Json } from '../json.ts';

const CLI = join(import.meta.dirname, '..', '..', 'bin', 'portcullis.js');

interface Server { child: ChildProcess; url: URL; secret: string; stderr: () => string; exited: Promise<number | null>; dir: string }

async function startServer(shutdown = '10s'): Promise<Server> {
  const dir = mkdtempSync(join(tmpdir(), 'pcx-shutdown-'));
  mkdirSync(join(dir, 'policies'));
  writeFileSync(join(dir, 'policies', 'main.cedar'), 'permit (principal, action == Action::"db.select", resource == Database::"analytics");\n');
  writeFileSync(
    join(dir, 'portcullis.yaml'),
    `listen: { host: 127.0.0.1, port: 0, timeouts: { shutdown: ${shutdown} } }
data_dir: ./data
resources:
  - { type: Database, id: analytics, boundary: platform, environment: prod }
policies: ./policies
`,
  );
  const child = spawn(process.execPath, [CLI, 'server', '--config', join(dir, 'portcullis.yaml')], {
    env: { ...process.env, PORTCULLIS_MASTER_KEY: Buffer.alloc(32, 9).toString('base64') },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  while (!/(pcx_bootstrap_[A-Za-z0-9_-]+)/.test(err)) {
    if (child.exitCode !== null) throw new Error(`server exited: ${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, url: new URL(/listening on (\S+)/.exec(err)![1]!), secret: /(pcx_bootstrap_[A-Za-z0-9_-]+)/.exec(err)![1]!, stderr: () => err, exited, dir };
}

/** A raw HTTP/1.1 exchange on its own socket; resolves with the whole response text when the server ends it. */
function exchange(url: URL, head: string, body = ''): { sock: Socket; done: Promise<string> } {
  const sock = connect(Number(url.port), url.hostname);
  let text = '';
  sock.on('data', (d: Buffer) => (text += d.toString()));
  // Never rejects: a reset connection resolves with what arrived (nothing), judged by the test.
  const done = new Promise<string>((resolve) => {
    sock.on('error', () => {});
    sock.on('close', () => resolve(text));
  });
  sock.write(head + body);
  return { sock, done };
}

function parse(text: string): { status: number; body: Json } {
  const [head, ...rest] = text.split('\r\n\r\n');
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head ?? '')?.[1] ?? 0);
  let body = rest.join('\r\n\r\n');
  if (/transfer-encoding: chunked/i.test(head ?? '')) body = body.replace(/^[0-9a-f]+\r\n/i, '').replace(/\r\n0\r\n\r\n$/, '');
  return { status, body: JSON.parse(body) };
}

const post = (url: URL, path: string, json: string, token?: string, length = Buffer.byteLength(json)) =>
  `POST ${path} HTTP/1.1\r\nHost: ${url.host}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n${token ? `Authorization: Bearer ${token}\r\n` : ''}\r\n`;

async function login(s: Server): Promise<string> {
  const body = JSON.stringify({ bootstrap: s.secret });
  const r = parse(await exchange(s.url, post(s.url, '/v1/auth/token', body), body).done);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.session_token;
}

const refused = (url: URL) =>
  new Promise<boolean>((resolve) => {
    const s = connect(Number(url.port), url.hostname);
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'ECONNREFUSED'));
  });

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`${signal}: in-flight requests (a slow one among them) get complete answers, new connections are refused, exit 0`, async () => {
    const s = await startServer();
    try {
      const token = await login(s);
      const decide = JSON.stringify({ action: 'db.select', resource: { type: 'Database', id: 'analytics' }, context: { purpose: { reason: 'shutdown test' } } });
      // The slow request: headers and half its body now, the rest after the signal.
      const cut = Math.floor(decide.length / 2);
      const slow = exchange(s.url, post(s.url, '/v1/authorize', decide, token), decide.slice(0, cut));
      // Concurrent requests in flight as the signal lands.
      const many = Array.from({ length: 20 }, (_, i) =>
        i % 2 === 0 ? exchange(s.url, post(s.url, '/v1/authorize', decide, token), decide).done : exchange(s.url, `GET /v1/identities HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer ${token}\r\n\r\n`).done,
      );
      await new Promise((r) => setTimeout(r, 300)); // the server has the slow request's headers
      s.child.kill(signal);
      while (!/stopping/.test(s.stderr())) await new Promise((r) => setTimeout(r, 20));
      // The listener closes within a few ticks of the signal, while the slow request still waits.
      let closed = false;
      for (let i = 0; i < 100 && !closed; i++) {
        closed = await refused(s.url);
        if (!closed) await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(closed, true, 'no new connections once stopping');
      // Past the short drain window: the server is now closing its connections, the slow request
      // still in flight. Only then does the rest of its body arrive.
      await new Promise((r) => setTimeout(r, 800));
      slow.sock.write(decide.slice(cut));
      const settled = await Promise.allSettled([slow.done, ...many]);
      // The slow request was in flight (its headers read): it must get its complete answer.
      assert.equal(settled[0]!.status, 'fulfilled');
      const slowAnswer = parse((settled[0] as PromiseFulfilledResult<string>).value);
      assert.equal(slowAnswer.status, 200, JSON.stringify(slowAnswer.body));
      assert.equal(slowAnswer.body.decision, 'allow');
      // Each other one is answered completely, or — only if the server had not read it yet —
      // refused without being carried out (503 / connection closed). Never carried out and lost.
      const answered = settled.flatMap((r) => (r.status === 'fulfilled' && r.value !== '' ? [parse(r.value)] : []));
      for (const a of answered) assert.ok(a.status === 200 || a.status === 503, JSON.stringify(a));
      const decided = answered.filter((a) => a.status === 200 && a.body.decision_id).map((a) => a.body.decision_id as string);
      assert.ok(decided.length >= 2, `most concurrent requests were in flight and answered (${decided.length})`);
      assert.equal(await s.exited, 0, s.stderr());
      assert.match(s.stderr(), /stopped/);
      // What was decided is exactly what was answered: no decision recorded whose client got a reset.
      const db = new DatabaseSync(join(s.dir, 'data', 'audit.db'), { readOnly: true });
      const rows = db.prepare("SELECT payload FROM audit_events WHERE stream = 'authz' AND payload LIKE '%shutdown test%'").all() as { payload: string }[];
      db.close();
      assert.equal(rows.length, decided.length, 'decisions on record = decisions answered');
      for (const id of decided) assert.ok(rows.some((r) => r.payload.includes(id)), `decision ${id} recorded`);
    } finally {
      s.child.kill('SIGKILL');
      rmSync(s.dir, { recursive: true, force: true });
    }
  });
}

test('a request that never completes is cut after listen.timeouts.shutdown; the process still exits 0', async () => {
  const s = await startServer('1s');
  try {
    const token = await login(s);
    const stalled = exchange(s.url, post(s.url, '/v1/authorize', '{}', token, 1000), '{"action":');
    await new Promise((r) => setTimeout(r, 200));
    s.child.kill('SIGTERM');
    assert.equal(await s.exited, 0, s.stderr());
    await stalled.done; // the server closed it
  } finally {
    s.child.kill('SIGKILL');
    rmSync(s.dir, { recursive: true, force: true });
  }
});
