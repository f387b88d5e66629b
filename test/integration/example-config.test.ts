// examples/portcullis.yaml (the README's configuration reference) started as a real server process,
// and the way back in after bootstrap: `server --reset-bootstrap` — refused while a server runs on
// the data directory (lock file of a live process, or something on the listen address), needs the
// master key, voids every earlier bootstrap secret, prints a new one-time one, and is audited.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseEnv } from 'node:util';

const REPO = join(import.meta.dirname, '..', '..');
const CLI = join(REPO, 'bin', 'portcullis.js');

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

describe('examples/portcullis.yaml runs as written; --reset-bootstrap', () => {
  let dir: string;
  let config: string;
  let port: number;
  let env: NodeJS.ProcessEnv;
  let server: ChildProcess | undefined;
  let firstSecret: string;

  const start = async (): Promise<{ proc: ChildProcess; stderr: string }> => {
    const proc = spawn(process.execPath, [CLI, 'server', '--config', config], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`server did not start: ${stderr}`)), 60_000);
      proc.stderr!.on('data', (d: Buffer) => {
        stderr += d.toString();
        if (/portcullis listening on/.test(stderr) && (!/First start/.test(stderr) || /--reset-bootstrap/.test(stderr))) {
          clearTimeout(timer);
          resolve();
        }
      });
      proc.once('exit', (code) => reject(new Error(`server exited with ${code}: ${stderr}`)));
    });
    return { proc, get stderr() { return stderr; } };
  };
  const stop = async (proc: ChildProcess) => {
    if (proc.exitCode !== null) return proc.exitCode;
    const exited = new Promise<number | null>((r) => proc.once('exit', (c) => r(c)));
    proc.kill('SIGTERM');
    return exited;
  };
  const reset = (extra: NodeJS.ProcessEnv = {}) =>
    spawnSync(process.execPath, [CLI, 'server', '--config', config, '--reset-bootstrap'], { env: { ...env, ...extra }, encoding: 'utf8', timeout: 60_000 });
  const login = async (secret: string) => {
    const r = await fetch(`http://127.0.0.1:${port}/v1/auth/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ bootstrap: secret }) });
    return { status: r.status, body: (await r.json()) as { session_token?: string } };
  };
  const secretIn = (text: string) => /^\s+(pcx_bootstrap_[A-Za-z0-9_-]+)$/m.exec(text)?.[1];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pcx-example-'));
    for (const f of ['portcullis.yaml', 'policies', 'schema-extension.cedar', 'bundle.jwks.json']) cpSync(join(REPO, 'examples', f), join(dir, f), { recursive: true });
    port = await freePort();
    config = join(dir, 'portcullis.yaml');
    const yaml = readFileSync(config, 'utf8');
    assert.match(yaml, /port: 7070/);
    writeFileSync(config, yaml.replace('port: 7070', `port: ${port}`)); // the only change: the port
    env = { ...process.env, ...parseEnv(readFileSync(join(REPO, 'examples', 'demo.env'), 'utf8')), PORTCULLIS_MASTER_KEY: randomBytes(32).toString('hex') };
  });
  after(async () => {
    if (server) await stop(server);
    rmSync(dir, { recursive: true, force: true });
  });

  it('starts from the example as written: /readyz answers, a bootstrap credential is printed (never as a command-line argument)', { timeout: 600_000 }, async () => {
    const s = await start();
    server = s.proc;
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    assert.equal(ready.status, 200);
    firstSecret = secretIn(s.stderr)!;
    assert.ok(firstSecret, s.stderr);
    assert.match(s.stderr, /portcullis login --bootstrap -$/m);
    assert.doesNotMatch(s.stderr, /login --bootstrap pcx_/);
  });

  it('refuses while the server runs (lock of a live process), and a second server on the same data directory', { timeout: 600_000 }, () => {
    const r = reset();
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /the server is running \(pid \d+/);
    assert.doesNotMatch(r.stderr, /pcx_bootstrap_/);
  });

  it('after a stop: refuses with the wrong master key; with the right one voids the earlier (unused) secret and prints a new one, once', { timeout: 600_000 }, async () => {
    assert.equal(await stop(server!), 0, 'SIGTERM stops with 0');
    server = undefined;
    const wrongKey = reset({ PORTCULLIS_MASTER_KEY: randomBytes(32).toString('hex') });
    assert.notEqual(wrongKey.status, 0, wrongKey.stderr);
    assert.doesNotMatch(wrongKey.stderr, /pcx_bootstrap_|^\s+at /m);
    const r = reset();
    assert.equal(r.status, 0, r.stderr);
    const secret = secretIn(r.stderr)!;
    assert.ok(secret && secret !== firstSecret, r.stderr);

    const s = await start();
    server = s.proc;
    assert.equal(secretIn(s.stderr), undefined, 'no new first-start secret');
    assert.equal((await login(firstSecret)).status, 401, 'the earlier secret is void');
    const ok = await login(secret);
    assert.equal(ok.status, 200);
    assert.equal((await login(secret)).status, 401, 'one-time');
    const admin = await fetch(`http://127.0.0.1:${port}/v1/audit/admin?limit=200`, { headers: { authorization: `Bearer ${ok.body.session_token}` } });
    assert.equal(admin.status, 200);
    const events = ((await admin.json()) as { events: { type: string; payload: unknown }[] }).events;
    assert.ok(events.some((e) => e.type === 'bootstrap.reset'), JSON.stringify(events.map((e) => e.type)));
    assert.ok(!JSON.stringify(events).includes(secret), 'the secret is not in the audit trail');
  });

  it('the lock is a real check: a live foreign pid refuses, a dead one is stale; something on the listen port refuses', { timeout: 600_000 }, async () => {
    assert.equal(await stop(server!), 0);
    server = undefined;
    const lock = join(dir, 'data', 'server.lock');
    const sleeper = spawn('sleep', ['60']);
    try {
      writeFileSync(lock, JSON.stringify({ pid: sleeper.pid, host: '127.0.0.1', port, started_at: new Date().toISOString() }));
      const live = reset();
      assert.equal(live.status, 1, live.stderr);
      assert.match(live.stderr, new RegExp(`pid ${sleeper.pid}`));
      const second = spawnSync(process.execPath, [CLI, 'server', '--config', config], { env, encoding: 'utf8', timeout: 60_000 });
      assert.equal(second.status, 1, 'a server does not start on a data directory another one holds');
      assert.match(second.stderr, /is running on/);
    } finally {
      sleeper.kill();
    }
    const dead = spawnSync('true');
    writeFileSync(lock, JSON.stringify({ pid: dead.pid, host: '127.0.0.1', port, started_at: new Date().toISOString() }));
    const occupier: Server = createServer();
    await new Promise<void>((r) => occupier.listen(port, '127.0.0.1', r));
    try {
      const busy = reset();
      assert.equal(busy.status, 1, busy.stderr);
      assert.match(busy.stderr, new RegExp(`something is listening on 127\\.0\\.0\\.1:${port}`));
    } finally {
      await new Promise((r) => occupier.close(r));
    }
    const stale = reset();
    assert.equal(stale.status, 0, `a stale lock (dead pid) does not block: ${stale.stderr}`);
  });

  it('--reset-bootstrap needs an existing data directory', { timeout: 600_000 }, () => {
    writeFileSync(config, readFileSync(config, 'utf8').replace('data_dir: ./data', 'data_dir: ./nowhere'));
    const r = reset();
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /no Portcullis store in .*nowhere/);
  });
});
