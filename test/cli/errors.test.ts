// The CLI's error handling as a class: every failure is one line saying what is wrong and what to
// do, with a stable exit code; no stack trace unless PORTCULLIS_DEBUG; environment variables and
// files are validated where they are read; secrets are read from stdin or files.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const REPO = join(import.meta.dirname, '..', '..');
const CLI = join(REPO, 'bin', 'portcullis.js');

describe('CLI errors say what is wrong and what to do (no stack traces, exit codes)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pcx-cli-err-'));
  const env: NodeJS.ProcessEnv = { ...process.env, PORTCULLIS_HOME: join(dir, 'home'), PORTCULLIS_ADDR: 'http://127.0.0.1:1' };
  delete env.PORTCULLIS_TOKEN;
  delete env.PORTCULLIS_DEBUG;
  const cli = (args: string[], extra: NodeJS.ProcessEnv = {}, input?: string) =>
    spawnSync(process.execPath, [CLI, ...args], { env: { ...env, ...extra }, encoding: 'utf8', timeout: 30_000, ...(input !== undefined && { input }) });
  const noTrace = (r: { stderr: string }) => assert.doesNotMatch(r.stderr, /^\s+at |node:internal|TypeError|ERR_/m, r.stderr);
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('PORTCULLIS_ADDR without a scheme, with another scheme, with junk: exit 2, names the variable and the fix', () => {
    for (const addr of ['127.0.0.1:7070', 'localhost:7070', 'ftp://127.0.0.1:7070', 'http//x', 'http://u:p@127.0.0.1:7070', ' ']) {
      for (const args of [['identities', 'list'], ['dev', 'token'], ['login', '--token', '-']]) {
        const r = cli(args, { PORTCULLIS_ADDR: addr }, 'a.b.c');
        assert.equal(r.status, 2, `${addr} ${args.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr, /^error: PORTCULLIS_ADDR=.*e\.g\. PORTCULLIS_ADDR=http:\/\/127\.0\.0\.1:7070/, r.stderr);
        noTrace(r);
      }
    }
  });

  it('bad PORTCULLIS_TOKEN / PORTCULLIS_HOME are named', () => {
    const t = cli(['identities', 'list'], { PORTCULLIS_TOKEN: 'not a jwt' });
    assert.equal(t.status, 2);
    assert.match(t.stderr, /PORTCULLIS_TOKEN is not a session token/);
    const h = cli(['identities', 'list'], { PORTCULLIS_HOME: ' ' });
    assert.equal(h.status, 2);
    assert.match(h.stderr, /PORTCULLIS_HOME is set but empty/);
  });

  it('files that cannot be read: named, with what to do, exit 2 — every command that reads one', () => {
    writeFileSync(join(dir, 'empty'), '');
    mkdirSync(join(dir, 'adir'), { recursive: true });
    const cases: [string[], RegExp][] = [
      [['policies', 'validate', join(dir, 'missing.cedar'), '--reason', 'x'], /cannot open file .*missing\.cedar: no such file or directory — check the path/],
      [['policies', 'push', join(dir, 'adir'), '--reason', 'x'], /cannot open file .*adir: it is a directory/],
      [['login', '--token-file', join(dir, 'nope.jwt')], /cannot open --token-file .*nope\.jwt: no such file/],
      [['login', '--token-file', join(dir, 'empty')], /--token: .*empty is empty/],
      [['login', '--api-key-file', join(dir, 'nope')], /cannot open --api-key-file/],
      [['login', '--bootstrap-file', join(dir, 'nope')], /cannot open --bootstrap-file/],
      [['creds', 'ssh', 'web-1', '--key', join(dir, 'nope.pub')], /cannot open --key .*nope\.pub/],
      [['server', '--config', join(dir, 'nope.yaml')], /nope\.yaml/],
    ];
    for (const [args, re] of cases) {
      const r = cli(args, { PORTCULLIS_TOKEN: 'a.b.c' });
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re);
      noTrace(r);
    }
  });

  it('login reads secrets from stdin or a file; a value on the command line is warned about; one proof only', () => {
    const stdinEmpty = cli(['login', '--token', '-'], {}, '');
    assert.equal(stdinEmpty.status, 2);
    assert.match(stdinEmpty.stderr, /nothing on stdin/);
    const twoWords = cli(['login', '--token', '-'], {}, 'a.b.c d.e.f');
    assert.equal(twoWords.status, 2);
    assert.match(twoWords.stderr, /several words/);
    const viaStdin = cli(['login', '--token', '-'], {}, 'a.b.c\n');
    assert.equal(viaStdin.status, 5, 'read, then the (absent) server is reported');
    assert.doesNotMatch(viaStdin.stderr, /warning/);
    const onArgv = cli(['login', '--token', 'a.b.c']);
    assert.match(onArgv.stderr, /warning: --token VALUE puts the secret on the command line.*--token-file FILE or --token -/);
    const both = cli(['login', '--token', '-', '--token-file', join(dir, 'empty')]);
    assert.equal(both.status, 2);
    assert.match(both.stderr, /exactly one of/);
  });

  it('usage errors and unknown commands: exit 2, no stack trace; --version and --help: exit 0', () => {
    for (const args of [['bogus'], ['authorize'], ['authorize', 'db.select', 'orders'], ['dev', '--port', 'x'], ['dev', '--port', '70000'], ['dev', 'token', '--ttl', '0'], ['creds', 'issue', 'ftp', 'x', '--reason', 'r'], ['login', '--frob']]) {
      const r = cli(args, { PORTCULLIS_TOKEN: 'a.b.c' });
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^error: /m);
      noTrace(r);
    }
    for (const args of [['--version'], ['-V'], ['--help'], ['authorize', '--help']]) {
      const r = cli(args);
      assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
    }
    assert.equal(cli(['--version']).stdout.trim(), JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')).version);
  });

  it('PORTCULLIS_DEBUG=1 adds the stack trace, and only then', () => {
    const args = ['policies', 'validate', join(dir, 'missing.cedar'), '--reason', 'x'];
    assert.doesNotMatch(cli(args, { PORTCULLIS_TOKEN: 'a.b.c' }).stderr, /^\s+at /m);
    assert.match(cli(args, { PORTCULLIS_TOKEN: 'a.b.c', PORTCULLIS_DEBUG: '1' }).stderr, /^\s+at /m);
  });

  it('the server is unreachable: exit 5 naming the address and `npm start`', () => {
    const down = cli(['identities', 'list'], { PORTCULLIS_TOKEN: 'x.y.z' });
    assert.equal(down.status, 5);
    assert.match(down.stderr, /cannot reach Portcullis at http:\/\/127\.0\.0\.1:1.*npm start/);
  });
});
