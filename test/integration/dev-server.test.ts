// Every failure path of `portcullis dev` / `portcullis server` exits non-zero with one line saying
// what failed (no stack trace). The normal-user start is test/integration/dev-postgres-user.test.ts.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CLI = join(import.meta.dirname, '..', '..', 'bin', 'portcullis.js');
const NOBODY = 65534;
const noTrace = (s: string) => assert.doesNotMatch(s, /^\s+at |node:internal/m, s);

describe('portcullis dev / server: every failure exits non-zero', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pcx-devfail-'));
  chmodSync(dir, 0o755);
  after(() => rmSync(dir, { recursive: true, force: true }));
  const run = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, PORTCULLIS_DEBUG: '' } });

  it('a data directory that is a file, a bad port, a busy port', async () => {
    writeFileSync(join(dir, 'afile'), 'x');
    const file = run(['dev', '--data', join(dir, 'afile'), '--port', '0']);
    assert.notEqual(file.status, 0, file.stderr);
    assert.ok(file.status !== null && file.status > 0);
    assert.match(file.stderr, /^error: .*afile/m);
    noTrace(file.stderr);

    const bad = run(['dev', '--data', join(dir, 'd1'), '--port', '-1']);
    assert.equal(bad.status, 2, bad.stderr);

    const busy: Server = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    try {
      const port = String((busy.address() as { port: number }).port);
      const r = run(['dev', '--data', join(dir, 'd2'), '--port', port]);
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`127\\.0\\.0\\.1:${port} is already in use`));
      noTrace(r.stderr);
    } finally {
      await new Promise((r) => busy.close(r));
    }
  });

  it('--postgres whose PostgreSQL cannot start: exit 1, naming the step, and the server does not come up', () => {
    // A cluster directory that claims to be initialised but is not a cluster.
    const data = join(dir, 'broken');
    const cluster = join(`${data}-postgres`, 'data');
    mkdirSync(cluster, { recursive: true });
    chmodSync(`${data}-postgres`, 0o755);
    writeFileSync(join(cluster, 'PG_VERSION'), '18\n');
    writeFileSync(join(`${data}-postgres`, 'dev-postgres.json'), JSON.stringify({ user: 'portcullis_admin', password: 'x' }));
    if (process.getuid?.() === 0) chownSync(cluster, NOBODY, NOBODY);
    const r = run(['dev', '--postgres', '--data', data, '--port', '0']);
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /^error: the embedded PostgreSQL failed to start/m);
    assert.doesNotMatch(r.stdout, /Portcullis dev server on/);
    noTrace(r.stderr);
  });

  it('server: a missing or invalid config exits 2, a busy port exits 1', async () => {
    const missing = run(['server', '--config', join(dir, 'none.yaml')]);
    assert.equal(missing.status, 2, missing.stderr);
    writeFileSync(join(dir, 'bad.yaml'), 'listen: { port: 70000 }\n');
    const invalid = run(['server', '--config', join(dir, 'bad.yaml')]);
    assert.equal(invalid.status, 2, invalid.stderr);
    assert.match(invalid.stderr, /listen\.port/);
    const busy: Server = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    try {
      const port = (busy.address() as { port: number }).port;
      mkdirSync(join(dir, 'p'), { recursive: true });
      writeFileSync(join(dir, 'p', 'a.cedar'), 'permit (principal, action, resource);');
      writeFileSync(join(dir, 'busy.yaml'), `listen: { host: 127.0.0.1, port: ${port} }\ndata_dir: ./busy-data\nboundaries: [application]\npolicies: ./p\n`);
      const r = spawnSync(process.execPath, [CLI, 'server', '--config', join(dir, 'busy.yaml')], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, PORTCULLIS_MASTER_KEY: 'a'.repeat(64) } });
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, /already in use/);
      noTrace(r.stderr);
      assert.ok(!existsSync(join(dir, 'busy-data', 'server.lock')), 'the lock is released when the start fails');
    } finally {
      await new Promise((r) => busy.close(r));
    }
  });
});
