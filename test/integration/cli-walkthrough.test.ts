// The README's walkthroughs, run for real and as written: `portcullis dev` as a child process, and
// every command of the sh blocks under "Five minutes with the dev server" (with "An agent acting for
// alice"), "Privileged access" and "Governance"
// read from README.md (not a copy) and run by bash, in order, in one shell per server (so `REQ=$(…)`
// and `eval "$(…)"` carry over). Each command's exit status must be the one its comment states
// (`(exit N)`, else 0), `#   …` lines under a command are output it must print (… = anything),
// ALLOW/DENY and 4xx codes in a comment must appear, and no output may show a stack trace,
// `undefined`, `Invalid Date` or `NaN`, or warn that a secret went on a command line.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const REPO = join(import.meta.dirname, '..', '..');
const CLI = join(REPO, 'bin', 'portcullis.js');
const README = readFileSync(join(REPO, 'README.md'), 'utf8');

export interface Step {
  command: string;
  comment: string;
  /** Output fragments from `#   …` lines after the command. */
  expect: string[];
  exit: number | 'window' | 'interrupt';
}

/** The ```sh blocks between a `## heading` and the next `## ` heading. */
export function shBlocks(markdown: string, heading: string): string[] {
  const start = markdown.indexOf(`\n## ${heading}`);
  assert.ok(start >= 0, `README has a "## ${heading}" section`);
  const next = markdown.indexOf('\n## ', start + 4);
  const section = markdown.slice(start, next < 0 ? undefined : next);
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

export function steps(block: string): Step[] {
  const out: Step[] = [];
  for (const raw of block.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    if (line.startsWith('#')) {
      const shown = /^#\s{3}(.*)$/.exec(line);
      if (shown && out.length > 0) out[out.length - 1]!.expect.push(shown[1]!.trim());
      continue;
    }
    const m = /^(.*?)\s{2,}#\s(.*)$/.exec(line);
    const command = (m ? m[1]! : line).trim();
    const comment = m ? m[2]! : '';
    const exit = /Ctrl-C/.test(comment) ? 'interrupt' : /between \d\d:00 and \d\d:00 UTC/.test(comment) ? 'window' : Number(/\(exit (\d+)\)/.exec(comment)?.[1] ?? 0);
    out.push({ command, comment, expect: [], exit });
  }
  return out;
}

interface Ran extends Step {
  rc: number;
  out: string;
  err: string;
}

/** Runs the steps in one bash, in `cwd`, with the README's `7070` pointing at `url`. */
function runSteps(all: Step[], cwd: string, url: string, env: NodeJS.ProcessEnv): Ran[] {
  const outDir = mkdtempSync(join(tmpdir(), 'pcx-steps-'));
  const port = new URL(url).port;
  const script = ['shopt -s expand_aliases', `cd ${JSON.stringify(cwd)}`];
  all.forEach((s, i) => {
    const cmd = s.command.replaceAll('127.0.0.1:7070', `127.0.0.1:${port}`);
    const files = `>"${outDir}/${i}.out" 2>"${outDir}/${i}.err"`;
    if (s.exit === 'interrupt') {
      // Ctrl-C: the command runs in its own process group (job control on), then gets SIGINT.
      script.push(`set -m; { ${cmd}\n} ${files} </dev/null & pid=$!; sleep 3; kill -INT -- -$pid; wait $pid; echo $? >"${outDir}/${i}.rc"; set +m`);
    } else {
      script.push(`{ ${cmd}\n} ${files} </dev/null; echo $? >"${outDir}/${i}.rc"`);
    }
  });
  const r = spawnSync('bash', ['-c', script.join('\n')], { env, encoding: 'utf8', timeout: 600_000 });
  assert.equal(r.error, undefined, String(r.error));
  const ran = all.map((s, i) => ({
    ...s,
    rc: Number(readFileSync(join(outDir, `${i}.rc`), 'utf8')),
    out: readFileSync(join(outDir, `${i}.out`), 'utf8'),
    err: readFileSync(join(outDir, `${i}.err`), 'utf8'),
  }));
  rmSync(outDir, { recursive: true, force: true });
  return ran;
}

function check(s: Ran): void {
  const both = `${s.out}\n${s.err}`;
  const where = `\`${s.command}\`\n--- stdout\n${s.out}--- stderr\n${s.err}`;
  if (s.exit === 'interrupt') assert.equal(s.rc, 130, `ends on Ctrl-C: ${where}`);
  else if (s.exit === 'window') {
    assert.ok(s.rc === 0 || s.rc === 3, where);
    assert.match(s.out, s.rc === 0 ? /^ALLOW/ : /^DENY/, where);
  } else assert.equal(s.rc, s.exit, `exit status: ${where}`);
  if (s.exit === 0 && /\bALLOW\b/.test(s.comment)) assert.match(s.out, /^ALLOW/, where);
  if (s.exit !== 0 && s.exit !== 'window' && /\bDENY\b/.test(s.comment)) assert.match(s.out, /^DENY/, where);
  for (const code of s.comment.match(/\b4\d\d\b/g) ?? []) assert.ok(s.err.includes(code), `${code} in stderr: ${where}`);
  for (const shown of s.expect) {
    let at = 0;
    for (const part of shown.split('…').map((p) => p.trim()).filter(Boolean)) {
      const i = both.indexOf(part, at);
      assert.ok(i >= 0, `README says it prints "${shown}" (missing "${part}"): ${where}`);
      at = i + part.length;
    }
  }
  assert.doesNotMatch(both, /\bundefined\b|Invalid Date|\bNaN\b|\[object Object\]|^\s+at .+:\d+:\d+\)?$/m, `no junk or stack trace: ${where}`);
  assert.doesNotMatch(s.err, /puts the secret on the command line/, `no secret on a command line: ${where}`);
}

interface Dev {
  url: string;
  stderr: () => string;
  stop(): Promise<number | null>;
}

async function startDev(args: string[], env: NodeJS.ProcessEnv): Promise<Dev> {
  const proc: ChildProcess = spawn(process.execPath, [CLI, 'dev', ...args, '--port', '0'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`dev server did not start: ${out}${err}`)), 180_000);
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /Portcullis dev server on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    proc.once('exit', (code) => reject(new Error(`dev server exited with ${code}: ${out}${err}`)));
  });
  return {
    url,
    stderr: () => err,
    async stop() {
      if (proc.exitCode !== null) return proc.exitCode;
      const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
      proc.kill('SIGINT');
      return exited;
    },
  };
}

/** The sh block of "An agent acting for alice" (a ### part of the dev-server section). */
function agentBlock(): string {
  const block = shBlocks(README, 'Five minutes with the dev server').find((b) => b.includes('portcullis agents assign'));
  assert.ok(block, 'README has the "An agent acting for alice" walkthrough');
  return block;
}

describe('README walkthroughs, run as written against `portcullis dev`', () => {
  let dir: string;
  let baseEnv: NodeJS.ProcessEnv;
  let cwd: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'pcx-walk-'));
    // The README runs in the repository folder (`alias portcullis=$PWD/bin/portcullis.js`); a scratch
    // folder with `bin` linked keeps the files it writes (my.cedar) out of the repository.
    cwd = join(dir, 'repo');
    mkdirSync(cwd);
    symlinkSync(join(REPO, 'bin'), join(cwd, 'bin'));
    baseEnv = { ...process.env, PORTCULLIS_HOME: join(dir, 'home') };
    for (const k of ['PORTCULLIS_TOKEN', 'PORTCULLIS_ADDR', 'PORTCULLIS_DEBUG', 'PGHOST', 'PGPORT', 'PGUSER', 'PGDATABASE', 'PGPASSWORD', 'PGPASSFILE']) delete baseEnv[k];
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('the README blocks are found and parsed (every command, with its expected exit status)', () => {
    const five = shBlocks(README, 'Five minutes with the dev server').flatMap(steps);
    // The session gateways' walkthrough: both gateways and every sessions subcommand.
    const gateways = steps(shBlocks(README, 'Five minutes with the dev server')[2] ?? '').map((s) => s.command);
    for (const c of ['portcullis db connect db-gw', 'portcullis ssh web-1', 'portcullis sessions list', 'portcullis sessions show', 'portcullis sessions play', 'portcullis sessions verify', 'portcullis sessions terminate']) {
      assert.ok(gateways.some((g) => g.startsWith(c)), `the gateways walkthrough runs ${c}`);
    }
    // "An agent acting for alice": the assignment, the exchange, filtered tools, calls allowed,
    // refused, denied and held, the approval from the CLI, the kill switch.
    const agent = steps(agentBlock()).map((s) => s.command);
    for (const c of ['portcullis agents assign', 'portcullis agents token', 'portcullis mcp tools', 'portcullis mcp call', 'portcullis requests approve', 'portcullis agents end']) {
      assert.ok(agent.some((g) => g.includes(c)), `the agent walkthrough runs ${c}`);
    }
    const privileged = shBlocks(README, 'Privileged access').flatMap(steps);
    assert.ok(five.length >= 30, `five-minute walkthrough: ${five.length} commands`);
    assert.ok(privileged.length >= 18, `privileged access: ${privileged.length} commands`);
    const governance = shBlocks(README, 'Governance').flatMap(steps);
    for (const c of ['portcullis access explain', 'portcullis access usage', 'portcullis findings --unused-days', 'portcullis findings trend', 'portcullis policies suggest', 'portcullis policies replay ./strict', 'portcullis reviews show', 'portcullis reviews decide', 'portcullis report --period 7d', 'portcullis audit verify']) {
      assert.ok(governance.some((g) => g.command.startsWith(c)), `the governance walkthrough runs ${c}`);
    }
    assert.ok(five.some((s) => s.exit === 3) && five.some((s) => s.exit === 2) && five.some((s) => s.expect.length > 0));
    // Secrets never travel on a command line in the README.
    for (const s of [...five, ...privileged, ...governance]) assert.doesNotMatch(s.command, /--(token|api-key|bootstrap)(=|\s+)(?!-(\s|$))\S/, s.command);
  });

  // Dozens of CLI processes in a row: on a loaded 2-core machine this takes minutes, not the suite's default 2.
  const SLOW = { timeout: 900_000 };

  it('"Five minutes with the dev server", first block and "An agent acting for alice": on plain `npm start`', SLOW, async () => {
    const data = join(dir, 'plain');
    const env = { ...baseEnv, PORTCULLIS_DEV_DATA: data };
    const dev = await startDev([], env);
    try {
      const [first] = shBlocks(README, 'Five minutes with the dev server');
      const ran = runSteps([...steps(first!), ...steps(agentBlock())], cwd, dev.url, env);
      for (const s of ran) check(s);
      // The agent walkthrough, beyond the comments: the held refund was released by dana's
      // approval and made; the token was refused after the assignment ended; findings stay clean.
      const held = ran.find((s) => s.command.includes('amount_cents=1999'))!;
      assert.match(held.out, /^refunded 19\.99 EUR on order 1042$/m, `the approved call went through: ${held.out}${held.err}`);
      assert.doesNotMatch(ran.find((s) => s.command.startsWith('portcullis mcp tools'))!.out, /orders\.cancel/);
      assert.match(ran.find((s) => s.command.includes('amount_cents=50000'))!.err, /denied this call/);
      assert.match(ran.filter((s) => s.command.includes('orders.get_status')).at(-1)!.err, /refused the token \(401/);
      assert.doesNotMatch(ran.find((s) => s.command === 'portcullis findings')!.out, /agent\.no_sponsor|no_owner/);
      // The agent's bearer token is on disk readable by its owner only.
      assert.equal(statSync(join(cwd, 'support-bot.token')).mode & 0o777, 0o600, 'support-bot.token is mode 0600');
      // Key outputs, beyond the comments.
      const json = ran.find((s) => s.command.includes('--json') && s.command.startsWith('portcullis authorize'))!;
      assert.equal(JSON.parse(json.out).decision, 'allow');
      assert.match(ran.find((s) => s.command.includes('db.selct'))!.err, /unknown action "db\.selct".*db\.select/);
      assert.match(ran.find((s) => s.command.startsWith('portcullis audit verify'))!.out, /ok\s+authz/);
    } finally {
      assert.equal(await dev.stop(), 0, 'Ctrl-C stops the dev server with exit 0');
    }
  });

  it('credentials (`npm start -- --postgres`, data under a mode-0700 folder) and "Privileged access", then offline verify', SLOW, async () => {
    const home0700 = join(dir, 'private');
    mkdirSync(home0700, { mode: 0o700 });
    const data = join(home0700, 'dev');
    const env = { ...baseEnv, PORTCULLIS_DEV_DATA: data };
    const dev = await startDev(['--postgres'], env);
    const cluster = /its cluster in (\S+)\/data/.exec(dev.stderr())?.[1];
    try {
      if (process.getuid?.() === 0) assert.ok(cluster, `as root, the cluster moves where user postgres can reach it: ${dev.stderr()}`);
      const [first, credentials, gateways] = shBlocks(README, 'Five minutes with the dev server');
      // The same terminal as the first block: its alias and PORTCULLIS_ADDR still hold.
      const setup = steps(first!).filter((s) => /^(alias|export) /.test(s.command));
      assert.equal(setup.length, 2);
      const all = [...setup, ...steps(credentials!), ...steps(gateways!), ...shBlocks(README, 'Privileged access').flatMap(steps)];
      const ran = runSteps(all, cwd, dev.url, env);
      for (const s of ran) check(s);
      const psql = ran.find((s) => s.command.startsWith("psql -c 'select current_user'"))!;
      assert.match(psql.out, /pcx_[a-z0-9]+/);
      const issuedRw = ran.find((s) => s.command.includes('--perm readwrite --ttl 15m'))!;
      assert.match(issuedRw.out, /PGPASSFILE=\S+ psql 'host=127\.0\.0\.1 port=\d+ dbname=orders user=pcx_/);
      assert.doesNotMatch(issuedRw.out, /postgresql:\/\//, 'no password-bearing URI');
      // The session gateways: the denied DELETE names its decision, the terminated session ended
      // with the reason given, the pty session replays.
      const deleted = ran.find((s) => s.command.includes("-c 'delete from orders'"))!;
      const decision = /42501: permission denied by Portcullis: db\.delete on Table::"public\.orders" \(decision ([0-9a-f-]{36})\)/.exec(deleted.err)?.[1];
      assert.ok(decision, deleted.err);
      const shown = ran.find((s) => s.command.startsWith('portcullis sessions show'))!;
      assert.match(shown.out, /db\.statement deny delete delete from orders/);
      const listed = ran.find((s) => s.command === 'portcullis sessions list --mine')!;
      assert.match(listed.out, /terminated by workload:github\/acme\/api: done for today/);
      assert.match(ran.find((s) => s.command.startsWith('portcullis sessions play'))!.out, /hello from /);
    } finally {
      assert.equal(await dev.stop(), 0);
      if (cluster?.startsWith('/var/tmp/portcullis-dev-pg-')) rmSync(cluster, { recursive: true, force: true });
    }
    // "Stop the server (Ctrl-C) and check the audit trail offline"
    const verify = spawnSync(process.execPath, [CLI, 'audit', 'verify', '--data', data], { env, encoding: 'utf8' });
    assert.equal(verify.status, 0, verify.stdout + verify.stderr);
    assert.match(verify.stdout, /ok\s+admin/);
  });

  it('"Governance" on the week of demo history a new data directory starts with; seeded once', SLOW, async () => {
    const data = join(dir, 'governance');
    const env = { ...baseEnv, PORTCULLIS_DEV_DATA: data };
    let dev = await startDev([], env);
    try {
      assert.match(dev.stderr(), /seeding a week of demo history/);
      assert.match(dev.stderr(), /demo history: \d+ logins, \d+ decisions from \d{4}-\d\d-\d\d to \d{4}-\d\d-\d\d/);
      const setup = steps(shBlocks(README, 'Five minutes with the dev server')[0]!).filter((s) => /^(alias|export) /.test(s.command));
      const ran = runSteps([...setup, ...shBlocks(README, 'Governance').flatMap(steps)], cwd, dev.url, env);
      for (const s of ran) check(s);
      // The history is real: a week of it, in hash chains that verify.
      const verify = ran.find((s) => s.command === 'portcullis audit verify')!;
      for (const stream of ['authn', 'authz', 'admin']) assert.match(verify.out, new RegExp(`ok\\s+${stream}\\s+([1-9]\\d+) events`), verify.out);
      const trend = ran.find((s) => s.command.startsWith('portcullis findings trend'))!;
      // A snapshot for each of the 8 days (7 in the first minutes of a UTC day, before the server's own sweep).
      assert.ok(trend.out.trim().split('\n').length - 1 >= 7, `a snapshot for each day: ${trend.out}`);
      const usage = ran.find((s) => s.command.startsWith('portcullis access usage'))!;
      assert.match(usage.out, /nothing used: user:admin@example\.com/);
    } finally {
      assert.equal(await dev.stop(), 0);
    }
    // Once per data directory: the second start adds nothing to the history.
    dev = await startDev([], env);
    try {
      assert.doesNotMatch(dev.stderr(), /seeding/);
    } finally {
      assert.equal(await dev.stop(), 0);
    }
  });
});
