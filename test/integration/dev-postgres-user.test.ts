// `portcullis dev --postgres` as a normal user (here: `nobody` through setpriv when the suite runs
// as root). The root path with a data directory under a mode-0700 folder is run by
// test/integration/cli-walkthrough.test.ts; failures by test/integration/dev-server.test.ts.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';

const CLI = join(import.meta.dirname, '..', '..', 'bin', 'portcullis.js');
const NOBODY = 65534;

describe('portcullis dev --postgres as a normal user', () => {
  const root = process.getuid?.() === 0;
  const hasSetpriv = spawnSync('setpriv', ['--version']).status === 0;
  const dir = mkdtempSync(join(tmpdir(), 'pcx-devuser-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('starts the embedded PostgreSQL as that user (db-gw moved off a taken 6432), answers /readyz, and stops with exit 0 on SIGINT', { skip: root && !hasSetpriv ? 'running as root without setpriv' : false, timeout: 600_000 }, async () => {
    // 6432 is taken (here, or by whoever holds it already): the gateway binds another port instead of failing.
    const squatter = createServer();
    const squatting = await new Promise<boolean>((r) => squatter.once('error', () => r(false)).listen(6432, '127.0.0.1', () => r(true)));
    after(() => squatter.close());
    chmodSync(dir, 0o755);
    if (root) chownSync(dir, NOBODY, NOBODY);
    const argv = [CLI, 'dev', '--postgres', '--data', join(dir, 'dev'), '--port', '0'];
    const proc = root
      ? spawn('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--', process.execPath, ...argv], { env: { ...process.env, HOME: dir }, stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) => proc.once('exit', (c) => r(c)));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no start: ${out}${err}`)), 240_000);
        proc.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          const m = /Portcullis dev server on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
          if (m) {
            clearTimeout(timer);
            resolve(m[1]!);
          }
        });
        void exited.then((c) => reject(new Error(`exited ${c}: ${out}${err}`)));
      });
      const gw = /gateway db-gw on 127\.0\.0\.1:(\d+)/.exec(out);
      assert.ok(gw, out);
      // Held by another test's dev server instead, 6432 may be free again by the time this one binds.
      if (squatting) assert.notEqual(Number(gw[1]), 6432);
      assert.doesNotMatch(err, /running as root/);
      const ready = await fetch(`${url}/readyz`);
      assert.equal(ready.status, 200);
    } finally {
      proc.kill('SIGINT');
    }
    assert.equal(await exited, 0, err);
  });
});
