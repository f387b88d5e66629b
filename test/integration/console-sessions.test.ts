// The console's Sessions, Session, Audit and Replay pages (#15) in real headless Chromium against a
// real `portcullis dev --postgres` (embedded PostgreSQL, the db-gw and ssh-gw gateways, the demo
// sshd, the dev SSO provider): an administrator signs in through the dev provider, ends a live psql
// session from the Sessions page and the psql process loses its connection; the session's timeline
// shows each statement's decision and the recording verifies; an SSH recording made with real ssh
// replays in asciinema-player under the replay page's own CSP (the only one with 'wasm-unsafe-eval');
// the audit filters, follows, exports and verifies; axe-core on each page; the README screenshots.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { consolePage, launch, seriousViolations, shot, skip as noChromium, until } from './console-harness.ts';
import type { Seen } from './console-harness.ts';

const CLI = join(import.meta.dirname, '..', '..', 'bin', 'portcullis.js');
const skip = noChromium ?? (spawnSync('psql', ['--version']).status !== 0 ? 'psql missing (apt-get install postgresql-client)' : undefined);
const API = 'workload:github/acme/api';

interface Dev {
  url: string;
  out: string;
  proc: ChildProcess;
}

async function startDev(data: string, env: NodeJS.ProcessEnv): Promise<Dev> {
  const proc = spawn(process.execPath, [CLI, 'dev', '--postgres', '--port', '0', '--data', data], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`dev server did not start: ${out}${err}`)), 300_000);
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /Portcullis dev server on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m && /Ctrl-C stops the server/.test(out)) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    proc.once('exit', (code) => reject(new Error(`dev server exited with ${code}: ${out}${err}`)));
  });
  return { url, out, proc };
}

describe('the console\'s sessions, replay and audit pages against `portcullis dev --postgres`', { skip }, () => {
  let dir: string;
  let dev: Dev;
  let env: NodeJS.ProcessEnv;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const seen: Seen[] = [];
  const cli = (args: string[], input?: string) => spawnSync(process.execPath, [CLI, ...args], { env, encoding: 'utf8', timeout: 120_000, ...(input !== undefined && { input }) });
  // Sessions the tests made: the denied DELETE's (ended), the terminated psql's, the ssh one.
  let deniedSid = '';
  let deniedDecision = '';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pcx-console-sa-'));
    env = { ...process.env, PORTCULLIS_HOME: join(dir, 'home'), PORTCULLIS_DEV_DATA: join(dir, 'dev') };
    for (const k of ['PORTCULLIS_TOKEN', 'PORTCULLIS_DEBUG', 'PGHOST', 'PGPORT', 'PGUSER', 'PGDATABASE', 'PGPASSWORD', 'PGPASSFILE', 'PGSERVICE']) delete env[k];
    dev = await startDev(join(dir, 'dev'), env);
    env.PORTCULLIS_ADDR = dev.url;
    // The payments API logs in (the CLI) and uses the gateways; the administrator uses the console.
    const token = cli(['dev', 'token', '--sub', 'repo:acme/api']);
    assert.equal(token.status, 0, token.stderr);
    const login = cli(['login', '--token', '-'], token.stdout);
    assert.equal(login.status, 0, login.stderr);
    browser = await launch();
    context = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
    page = await consolePage(context, seen);
    await signInDev(page, 'admin@example.com');
  });

  /** Signs in through the dev OpenID Provider's page (a button per dev user, no password). */
  async function signInDev(p: Page, email: string): Promise<void> {
    await p.goto(`${dev.url}/console/`);
    await p.getByRole('link', { name: 'Sign in' }).click();
    await p.getByRole('button', { name: `Sign in as ${email}` }).click({ timeout: 90_000 });
    await p.getByTestId('me').filter({ hasText: `user:${email}` }).waitFor({ timeout: 90_000 });
  }

  after(async () => {
    await context?.close().catch(() => {});
    await browser?.close().catch(() => {});
    if (dev && dev.proc.exitCode === null) {
      const exited = new Promise((r) => dev.proc.once('exit', r));
      dev.proc.kill('SIGINT');
      await exited;
    }
    // As root the embedded cluster lives in /var/tmp, named after the data directory (src/cli/dev.ts).
    if (dir) rmSync(join('/var/tmp', `portcullis-dev-pg-${createHash('sha256').update(`${join(dir, 'dev')}-postgres`).digest('hex').slice(0, 16)}`), { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  });

  it('ends a live psql session from the Sessions page: confirmed with a reason, the psql client loses its connection', { timeout: 600_000 }, async () => {
    // An ended session with a denied statement first (for the timeline).
    const denied = cli(['db', 'connect', 'db-gw', '--reason', 'cleanup', '--', '-X', '-c', 'delete from orders', '-c', 'select id from orders']);
    deniedDecision = /permission denied by Portcullis: db\.delete on \S+ \(decision ([0-9a-f-]{36})\)/.exec(denied.stderr)?.[1] ?? '';
    assert.ok(deniedDecision, denied.stderr);
    deniedSid = cli(['sessions', 'list', '--mine', '--gateway', 'db-gw', '--limit', '1', '-q']).stdout.trim();
    assert.match(deniedSid, /^gws_/);

    // A live psql: a statement every second (\watch) until the connection goes.
    const psql = spawn(process.execPath, [CLI, 'db', 'connect', 'db-gw', '--reason', 'order report', '--', '-X', '-q'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let psqlErr = '';
    psql.stderr!.on('data', (d: Buffer) => (psqlErr += d.toString()));
    psql.stdout!.resume();
    const exited = new Promise<number | null>((r) => psql.once('exit', (code) => r(code)));
    let psqlCode: number | null | undefined;
    void exited.then((c) => (psqlCode = c));
    psql.stdin!.write('select id, status from orders order by id \\watch 1\n');
    try {
      const sid = await until(() => {
        const r = cli(['sessions', 'list', '--mine', '--live', '--gateway', 'db-gw', '-q']);
        return r.stdout.trim().split('\n')[0]?.startsWith('gws_') ? r.stdout.trim().split('\n')[0]! : undefined;
      }, 'the live psql session', 120_000);

      await page.goto(`${dev.url}/console/#/sessions`);
      await page.getByLabel('State').selectOption('true');
      await page.getByRole('button', { name: 'Apply' }).click();
      const row = page.locator(`tr[data-session="${sid}"]`);
      await row.waitFor({ timeout: 90_000 });
      assert.match(await row.textContent() ?? '', new RegExp(`live.*${API.replace(/[/.]/g, '\\$&')}.*db-gw`));
      // The filter is asked of the server, and every session of its answer is live.
      const asked = await until(() => seen.find((s) => s.url.startsWith('/v1/sessions?') && s.url.includes('live=true')), 'the filtered list asked of the server');
      assert.equal(asked.status, 200);
      const listed = JSON.parse(asked.body) as { sessions: { live: boolean }[] };
      assert.ok(listed.sessions.length >= 1 && listed.sessions.every((s) => s.live));
      await page.getByLabel('State').selectOption('');
      await page.getByRole('button', { name: 'Apply' }).click();
      await row.waitFor();
      await page.locator(`tr[data-session="${deniedSid}"]`).waitFor({ timeout: 90_000 });
      await shot(page, 'sessions');
      assert.deepEqual(await seriousViolations(page), [], 'the sessions page');

      // Terminate asks first: a reason, then "End session now". Cancel does nothing.
      await row.getByRole('button', { name: `Terminate ${sid}` }).click();
      await row.getByRole('button', { name: 'Cancel' }).click();
      assert.equal(psqlCode, undefined, 'still connected after Cancel');
      await row.getByRole('button', { name: `Terminate ${sid}` }).click();
      await row.getByLabel('Reason').fill('incident 42: ended from the console');
      const t0 = Date.now();
      await row.getByRole('button', { name: 'End session now' }).click();
      const code = await Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 30_000))]);
      assert.notEqual(code, 'timeout', `psql is still connected 30 s after Terminate: ${psqlErr}`);
      assert.notEqual(code, 0, 'psql exits with an error');
      assert.match(psqlErr, /server closed the connection|connection to server was lost|terminat|no connection to the server/i, psqlErr);
      const terminated = seen.find((s) => s.url === `/v1/sessions/${sid}/terminate`);
      assert.ok(terminated && terminated.status === 200, JSON.stringify(terminated));
      process.stderr.write(`# psql exited ${Date.now() - t0} ms after the click\n`);
      // The row now says ended, by whom and why.
      await until(async () => /ended.*terminated by user:admin@example\.com: incident 42: ended from the console/.test(await row.textContent() ?? ''), 'the row to show the end', 60_000);
    } finally {
      if (psql.exitCode === null) psql.kill('SIGKILL');
    }
  });

  it('a session\'s page: metadata, each statement with its decision and decision id, rows, and the recording verified', { timeout: 300_000 }, async () => {
    await page.goto(`${dev.url}/console/#/session/${deniedSid}`);
    const v = page.getByTestId('verification');
    await v.waitFor({ timeout: 90_000 });
    assert.match(await v.textContent() ?? '', /Recording verifies: \d+ records, complete/);
    const deny = page.locator('table.timeline tr[data-type="db.statement"][data-decision="deny"]');
    await deny.first().waitFor();
    const denyText = await deny.first().textContent() ?? '';
    assert.match(denyText, /delete from orders/);
    assert.match(denyText, /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/, 'the decision id');
    const allow = page.locator('table.timeline tr[data-type="db.statement"][data-decision="allow"]').first();
    assert.match(await allow.textContent() ?? '', /select id from orders.*\d+ rows/);
    const got = await until(() => seen.find((s) => s.url === `/v1/sessions/${deniedSid}?verify=true`), 'the session response');
    assert.equal(got?.status, 200);
    assert.equal(JSON.parse(got!.body).verification.ok, true, 'the verification the page drew is the API\'s');
    await shot(page, 'session');
    assert.deepEqual(await seriousViolations(page), [], 'the session page');
  });

  it('an MCP gateway session (an agent acting for alice): its tool calls with their decisions in the timeline', { timeout: 300_000 }, async () => {
    const aliceEnv = { ...env, PORTCULLIS_HOME: join(dir, 'home-alice') };
    const run = (args: string[], input?: string) => spawnSync(process.execPath, [CLI, ...args], { env: aliceEnv, cwd: dir, encoding: 'utf8', timeout: 120_000, ...(input !== undefined && { input }) });
    const ok = (r: ReturnType<typeof run>, what: string) => {
      assert.equal(r.status, 0, `${what}: ${r.stdout}${r.stderr}`);
      return r.stdout.trim();
    };
    ok(run(['login', '--token', '-'], ok(run(['dev', 'token', '--user', 'alice@example.com']), 'alice token')), 'alice login');
    const asg = ok(run(['agents', 'assign', 'agent:support-bot', '--intent', 'answer ticket T-1042', '--tool', 'orders/get_status,orders/refund', '--gateway', 'mcp-gw', '--ttl', '30m', '-q']), 'assign');
    ok(run(['agents', 'token', asg, '--gateway', 'mcp-gw', '--actor-token', '-', '--out', join(dir, 'bot.token')], ok(run(['dev', 'token', '--agent', 'support-bot']), 'agent token')), 'exchange');
    ok(run(['mcp', 'call', 'mcp-gw', 'orders.get_status', '--arg', 'order_id=1042', '--token-file', join(dir, 'bot.token')]), 'get_status');
    const refund = run(['mcp', 'call', 'mcp-gw', 'orders.refund', '--arg', 'order_id=1041', '--arg', 'amount_cents=50000', '--token-file', join(dir, 'bot.token')]);
    assert.equal(refund.status, 3, refund.stdout + refund.stderr);

    await page.goto(`${dev.url}/console/#/sessions`);
    await page.getByLabel('Gateway').selectOption('mcp-gw');
    await page.getByRole('button', { name: 'Apply' }).click();
    const asked = await until(() => seen.find((x) => x.url.startsWith('/v1/sessions?') && x.url.includes('gateway=mcp-gw')), 'the gateway filter');
    const mcp = (JSON.parse(asked.body) as { sessions: { id: string; kind: string }[] }).sessions;
    assert.ok(mcp.length >= 1 && mcp.every((x) => x.kind === 'mcp'), asked.body);
    // The calls, wherever they were recorded (one session or one per call), with their decisions.
    const rows: { decision: string; text: string }[] = [];
    for (const m of mcp) {
      await page.goto(`${dev.url}/console/#/session/${m.id}`);
      await page.locator(`dl.facts[data-session="${m.id}"]`).waitFor({ timeout: 90_000 });
      await page.getByTestId('verification').waitFor({ timeout: 90_000 });
      for (const tr of await page.locator('table.timeline tr[data-type="mcp.call"]').all()) rows.push({ decision: (await tr.getAttribute('data-decision')) ?? '', text: (await tr.textContent()) ?? '' });
    }
    assert.ok(rows.some((r) => r.decision === 'allow' && /tools\/call orders\/get_status.*1042/.test(r.text)), JSON.stringify(rows));
    const denied = rows.find((r) => r.decision === 'deny' && /tools\/call orders\/refund/.test(r.text));
    assert.ok(denied, JSON.stringify(rows));
    assert.match(denied.text, /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/, 'the decision id');
  });

  it('each ended session\'s recording verifies on demand from the list', { timeout: 300_000 }, async () => {
    await page.goto(`${dev.url}/console/#/sessions`);
    const row = page.locator(`tr[data-session="${deniedSid}"]`);
    await row.getByRole('button', { name: `Verify the recording of ${deniedSid}` }).click({ timeout: 90_000 });
    await row.getByTestId('row-verification').filter({ hasText: 'verified (4)' }).waitFor({ timeout: 90_000 });
  });

  it('a person without session.read or audit.read gets no one else\'s sessions and no audit (asserted on the responses the page received)', { timeout: 300_000 }, async () => {
    const viewer: Seen[] = [];
    const c = await browser.newContext({ viewport: { width: 390, height: 844 } });
    try {
      const p = await consolePage(c, viewer);
      await signInDev(p, 'alice@example.com');
      await p.goto(`${dev.url}/console/#/sessions`);
      await p.getByText('You may not see other people\'s gateway sessions.').waitFor({ timeout: 90_000 });
      await p.getByRole('button', { name: 'Show only my sessions' }).click();
      await p.getByTestId('count').waitFor({ timeout: 90_000 });
      await p.goto(`${dev.url}/console/#/session/${deniedSid}`);
      await p.getByText('You may not see this session.').waitFor({ timeout: 90_000 });
      await p.goto(`${dev.url}/console/#/audit`);
      await p.getByText('You may not see the authz stream.').waitFor({ timeout: 90_000 });
      await p.getByText('You may not see the audit verification.').waitFor({ timeout: 90_000 });
      const replay = await c.newPage();
      await replay.goto(`${dev.url}/console/replay.html?session=${deniedSid}`);
      await replay.getByRole('alert').filter({ hasText: 'You may not see this session.' }).waitFor({ timeout: 90_000 });
      await until(() => viewer.some((s) => s.url === '/v1/sessions?mine=true&limit=200'), 'the viewer\'s own list');
      const bySessions = viewer.filter((s) => s.url.startsWith('/v1/sessions') || s.url.startsWith('/v1/audit'));
      assert.ok(bySessions.length >= 5, JSON.stringify(bySessions.map((s) => s.url)));
      for (const s of bySessions) {
        if (s.url === '/v1/sessions?mine=true&limit=200') {
          // Her own only (the support agent's MCP sessions for her, if any), never the payments API's.
          assert.equal(s.status, 200);
          for (const x of (JSON.parse(s.body) as { sessions: { identity: string }[] }).sessions) assert.equal(x.identity, 'user:alice@example.com', s.body);
          assert.doesNotMatch(s.body, /workload:github\/acme\/api/);
          continue;
        } else {
          assert.ok(s.status === 403 || s.status === 404, `${s.url}: ${s.status}`);
        }
        // (A 404 names the id it was asked about; nothing else.)
        assert.doesNotMatch(s.body.replaceAll(deniedSid, ''), /workload:github\/acme\/api|"seq"|gws_[A-Za-z0-9_-]{20}/, `${s.url} leaks nothing`);
      }
    } finally {
      await c.close();
    }
  });

  it('replays an SSH recording made through ssh-gw with real ssh, in asciinema-player; only the replay page\'s CSP allows WebAssembly', { timeout: 300_000, skip: existsSync('/usr/sbin/sshd') ? false : 'no sshd' }, async () => {
    const login = /logins as (\S+?)\)/.exec(dev.out)?.[1];
    assert.ok(login, `the demo sshd is up: ${dev.out}`);
    const ssh = cli(['ssh', 'web-1', '-l', login, '--', '-tt', 'echo replay-marker from $(hostname)']);
    assert.equal(ssh.status, 0, ssh.stdout + ssh.stderr);
    const sid = cli(['sessions', 'list', '--mine', '--gateway', 'ssh-gw', '--limit', '1', '-q']).stdout.trim();
    assert.match(sid, /^gws_/);

    // A refused exec: the session's page shows the channel denied, with its decision id.
    const rm = cli(['ssh', 'web-1', '-l', login, '--', 'rm', '-rf', '/tmp/nothing-here']);
    assert.notEqual(rm.status, 0, rm.stdout + rm.stderr);
    const rmSid = cli(['sessions', 'list', '--mine', '--gateway', 'ssh-gw', '--limit', '1', '-q']).stdout.trim();
    assert.notEqual(rmSid, sid);
    await page.goto(`${dev.url}/console/#/session/${rmSid}`);
    await page.locator(`dl.facts[data-session="${rmSid}"]`).waitFor({ timeout: 90_000 });
    const refused = page.locator('table.timeline tr[data-type="ssh.channel"][data-decision="deny"]');
    await refused.first().waitFor({ timeout: 90_000 });
    assert.match(await refused.first().textContent() ?? '', /exec \(ssh\.exec\) rm -rf \/tmp\/nothing-here.*[0-9a-f]{8}-[0-9a-f]{4}-/);
    await page.goto(`${dev.url}/console/#/session/${sid}`);
    await page.locator(`dl.facts[data-session="${sid}"]`).waitFor({ timeout: 90_000 });
    assert.match(await page.locator('table.timeline tr[data-type="ssh.channel"][data-decision="allow"]').first().textContent() ?? '', /exec \(ssh\.exec\) echo replay-marker/);
    await page.getByRole('link', { name: 'Replay the terminal' }).waitFor();

    const violations: string[] = [];
    const replay = await context.newPage();
    replay.on('console', (m) => {
      if (/Content.Security.Policy|Refused to/i.test(m.text())) violations.push(m.text());
    });
    replay.on('pageerror', (e) => violations.push(String(e)));
    const res = await replay.goto(`${dev.url}/console/replay.html?session=${sid}`);
    const csp = res!.headers()['content-security-policy'] ?? '';
    assert.match(csp, /script-src 'self' 'wasm-unsafe-eval';/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.doesNotMatch(csp, /unsafe-inline|'unsafe-eval'|\*/);
    await replay.getByTestId('verification').filter({ hasText: 'Recording verifies' }).waitFor({ timeout: 90_000 });
    // The player's terminal shows the command's output.
    await until(async () => /replay-marker from \S+/.test(await replay.locator('#player').innerText()), 'the player to show the recorded output', 90_000);
    assert.deepEqual(violations, [], 'no CSP violation or error on the replay page');
    await shot(replay, 'replay');
    assert.deepEqual(await seriousViolations(replay), [], 'the replay page');
    await replay.close();

    // Every other console response keeps the strict policy: no WebAssembly, no eval.
    for (const path of ['/console/', '/console/app.js', '/console/pages/sessions.js', '/console/replay.js', '/console/vendor/asciinema-player.min.js', '/console/console.css']) {
      const r = await fetch(`${dev.url}${path}`);
      assert.equal(r.status, 200, path);
      const c = r.headers.get('content-security-policy') ?? '';
      assert.match(c, /script-src 'self';/, path);
      assert.doesNotMatch(c, /wasm-unsafe-eval|unsafe-eval|unsafe-inline/, `${path}: ${c}`);
    }
  });

  it('the audit: filters asked of the server newest first, verification at a glance, live follow, export of the filtered view', { timeout: 300_000 }, async () => {
    await page.goto(`${dev.url}/console/#/audit`);
    const verified = page.getByTestId('audit-verification');
    await verified.filter({ hasText: 'All streams verify' }).waitFor({ timeout: 120_000 });
    for (const stream of ['authn', 'authz', 'admin', 'session']) assert.match(await page.locator(`li.chip.ok[data-stream="${stream}"]`).textContent() ?? '', /chain ok/, stream);
    await page.getByLabel('Identity').fill(API);
    await page.getByLabel('Decision').selectOption('deny');
    await page.getByRole('button', { name: 'Apply' }).click();
    const asked = await until(() => seen.find((s) => s.url.startsWith('/v1/audit/authz?') && s.url.includes('decision=deny') && s.url.includes('identity=')), 'the filtered query');
    assert.equal(asked.status, 200);
    assert.match(asked.url, /order=desc/);
    const events = (JSON.parse(asked.body) as { events: { seq: number; decision: string; actor: string; subject?: string }[] }).events;
    assert.ok(events.length >= 1, 'the denied DELETE is there');
    assert.ok(events.every((e) => e.decision === 'deny' && (e.actor === API || e.subject === API)), 'the server filtered');
    assert.deepEqual(events.map((e) => e.seq), events.map((e) => e.seq).sort((a, b) => b - a), 'newest first');
    const rows = page.locator('table.audit tbody tr');
    await until(async () => (await rows.count()) === events.length, 'the rows drawn');
    assert.deepEqual(await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-decision'))), events.map(() => 'deny'));
    // The gateway's refusal named its decision; the audit row shows the same id.
    assert.match(await page.locator('table.audit tbody').innerText(), new RegExp(`db\\.delete Table::public\\.orders[^\\n]*\\n?decision ${deniedDecision}`));

    // Live follow: a new denial (no purpose given) appears on top without reloading.
    await page.getByLabel('Live follow').check();
    const top = events[0]!.seq;
    const authorize = cli(['authorize', 'db.select', 'Database::orders']);
    assert.equal(authorize.status, 3, authorize.stdout + authorize.stderr);
    await until(async () => Number(await rows.first().getAttribute('data-seq')) > top, 'the followed denial on top', 60_000);
    await page.getByLabel('Live follow').uncheck();
    await shot(page, 'audit');
    assert.deepEqual(await seriousViolations(page), [], 'the audit page');

    // Export: the server's JSON lines of the same filter, downloaded.
    const [download] = await Promise.all([page.waitForEvent('download', { timeout: 60_000 }), page.getByRole('button', { name: 'Export JSON lines' }).click()]);
    assert.match(download.suggestedFilename(), /^audit-authz-.*\.jsonl$/);
    const lines = readFileSync((await download.path())!, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { decision: string; actor: string; subject?: string; seq: number });
    assert.ok(lines.length >= events.length + 1, `${lines.length} exported`);
    assert.ok(lines.every((l) => l.decision === 'deny' && (l.actor === API || l.subject === API)));

    // The time range is the server's too: from a day in 2099, nothing; until one in 2000, nothing.
    await page.getByLabel('From').fill('2099-01-01T00:00:00');
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.getByTestId('count').filter({ hasText: 'No event matches.' }).waitFor({ timeout: 60_000 });
    const since = await until(() => seen.find((x) => x.url.startsWith('/v1/audit/authz?') && x.url.includes('since=2099-01-01T')), 'the since filter');
    assert.deepEqual(JSON.parse(since.body), { events: [] });
    await page.getByLabel('From').fill('');
    await page.getByLabel('Until').fill('2000-01-01T00:00:00');
    await page.getByRole('button', { name: 'Apply' }).click();
    const untilAsked = await until(() => seen.find((x) => x.url.startsWith('/v1/audit/authz?') && x.url.includes('until=2000-01-01T') && !x.url.includes('since=')), 'the until filter');
    assert.deepEqual(JSON.parse(untilAsked.body), { events: [] });
    await page.getByLabel('Until').fill('');
    await page.getByRole('button', { name: 'Apply' }).click();
    await until(async () => (await rows.count()) > 0, 'the events again');
  });
});
