// `portcullis mcp tools|call` and `agents token` at their edges: arguments and token files checked
// before anything is sent (exit 2, one line naming the option), against the dev demo MCP servers
// (official SDK, no gateway: a tool's own error is exit 1, not a refusal), and a gateway that
// answers 401 (exit 4, says to get a new token). The full path through mcp-gw is the README
// walkthrough (test/integration/cli-walkthrough.test.ts).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDevMcp, type DevMcp } from '../../src/cli/dev-mcp.ts';
import { callArguments } from '../../src/cli/commands/mcp.ts';

const CLI = join(import.meta.dirname, '..', '..', 'bin', 'portcullis.js');
const A_JWT = 'eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln';

describe('portcullis mcp: inputs, results and refusals', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pcx-cli-mcp-'));
  const env: NodeJS.ProcessEnv = { ...process.env, PORTCULLIS_HOME: join(dir, 'home'), PORTCULLIS_ADDR: 'http://127.0.0.1:1' };
  delete env.PORTCULLIS_TOKEN;
  delete env.PORTCULLIS_DEBUG;
  const good = join(dir, 'good.token');
  writeFileSync(good, `${A_JWT}\n`);
  let mcp: DevMcp;
  let unauthorized: Server;
  let unauthorizedUrl = '';
  const cli = (args: string[]) =>
    new Promise<{ status: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [CLI, ...args], { env, encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) => resolve({ status: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
    });
  const noTrace = (r: { stderr: string }) => assert.doesNotMatch(r.stderr, /^\s+at |node:internal/m, r.stderr);

  before(async () => {
    mcp = await startDevMcp();
    unauthorized = createServer((_req, res) => res.writeHead(401, { 'www-authenticate': 'Bearer error="invalid_token", resource_metadata="http://127.0.0.1/.well-known/oauth-protected-resource/mcp"' }).end());
    await new Promise<void>((r) => unauthorized.listen(0, '127.0.0.1', r));
    unauthorizedUrl = `http://127.0.0.1:${(unauthorized.address() as { port: number }).port}/mcp`;
  });
  after(async () => {
    await mcp?.stop();
    unauthorized?.closeAllConnections();
    await new Promise<void>((r) => (unauthorized ? unauthorized.close(() => r()) : r()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('--arg values are JSON when they parse, else text; --args must be an object', () => {
    assert.deepEqual(callArguments(['order_id=1042', 'note=hello world', 'flag=true', 'eq=a=b'], '{"x": [1]}'), { x: [1], order_id: 1042, note: 'hello world', flag: true, eq: 'a=b' });
    assert.throws(() => callArguments(['novalue']), /--arg novalue: expected key=value/);
    assert.throws(() => callArguments([], '[1]'), /--args: expected a JSON object/);
    assert.throws(() => callArguments([], '{'), /--args: not JSON/);
  });

  it('bad options and token files: exit 2 before anything is sent, naming the option', async () => {
    const cases: [string[], RegExp][] = [
      [['mcp', 'call', mcp.urls.orders, 'get_status', '--arg', 'x', '--token-file', good], /--arg x: expected key=value/],
      [['mcp', 'call', mcp.urls.orders, 'get_status', '--timeout', '5h', '--token-file', good], /--timeout 5h: expected a duration between 1s and 60m/],
      [['mcp', 'call', mcp.urls.orders, 'get_status', '--token-file', join(dir, 'missing')], /cannot open --token-file .*missing: no such file/],
      [['mcp', 'tools', mcp.urls.orders, '--token-file', CLI], /--token-file .*: expected one access token \(a JWT\)/],
      [['mcp', 'tools', 'http://[bad', '--token-file', good], /is not a URL/],
      [['agents', 'token', 'asg_x', '--actor-token', '-'], /give one of --gateway NAME or --resource URI/],
      [['agents', 'token', 'asg_x', '--resource', 'http://x/mcp'], /give one of --actor-token - \(stdin\) or --actor-token-file FILE/],
      [['agents', 'assign', 'agent:x', '--intent', 'i', '--tool', 'a/b'], /--audience URI or --gateway NAME/],
    ];
    for (const [args, message] of cases) {
      const r = await cli(args);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message, args.join(' '));
      noTrace(r);
    }
  });

  it('against a real MCP server: tools listed, a result on stdout (exit 0), a tool error on stderr (exit 1)', async () => {
    const tools = await cli(['mcp', 'tools', mcp.urls.orders, '--token-file', good, '--json']);
    assert.equal(tools.status, 0, tools.stderr);
    assert.deepEqual((JSON.parse(tools.stdout) as { tools: { name: string }[] }).tools.map((t) => t.name).sort(), ['cancel', 'get_status', 'refund']);
    const ok = await cli(['mcp', 'call', mcp.urls.orders, 'get_status', '--arg', 'order_id=1041', '--token-file', good]);
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal(ok.stdout, 'order 1041: paid, total 42.00 EUR\n');
    const toolError = await cli(['mcp', 'call', mcp.urls.orders, 'get_status', '--arg', 'order_id=9999', '--token-file', good]);
    assert.equal(toolError.status, 1, toolError.stderr);
    assert.match(toolError.stderr, /^error: no order 9999$/m);
    noTrace(toolError);
  });

  it('agents token --out writes the bearer token readable by its owner only (0600), also over an existing 0644 file', async () => {
    // Stands in for Portcullis' two token endpoints on loopback: this checks the CLI's file, the
    // exchange itself runs for real in the README walkthrough.
    const seen: string[] = [];
    const portcullis = createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      const body = req.url === '/v1/auth/token'
        ? { session_token: A_JWT, expires_at: new Date(Date.now() + 600_000).toISOString(), identity: { id: 'service-account:support-bot', kind: 'service-account' } }
        : { access_token: A_JWT, issued_token_type: 'urn:ietf:params:oauth:token-type:access_token', token_type: 'Bearer', expires_in: 300 };
      req.resume().on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body)));
    });
    await new Promise<void>((r) => portcullis.listen(0, '127.0.0.1', r));
    try {
      const addr = `http://127.0.0.1:${(portcullis.address() as { port: number }).port}`;
      const out = join(dir, 'agent.token');
      writeFileSync(out, 'old\n', { mode: 0o644 });
      const r = await new Promise<{ status: number; stderr: string }>((resolve) => {
        execFile(process.execPath, [CLI, 'agents', 'token', 'asg_1', '--resource', 'http://127.0.0.1/mcp', '--actor-token-file', good, '--out', out],
          { env: { ...env, PORTCULLIS_ADDR: addr, PORTCULLIS_TOKEN: A_JWT }, encoding: 'utf8', timeout: 60_000 },
          (err, _stdout, stderr) => resolve({ status: err ? Number((err as { code?: number }).code ?? 1) : 0, stderr }));
      });
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(seen, ['POST /v1/auth/token', 'POST /oauth2/token']);
      assert.equal(readFileSync(out, 'utf8'), `${A_JWT}\n`);
      assert.equal(statSync(out).mode & 0o777, 0o600, 'the token file is mode 0600');
    } finally {
      portcullis.closeAllConnections();
      await new Promise<void>((r) => portcullis.close(() => r()));
    }
  });

  it('a gateway answering 401 (token expired, revoked, assignment ended): exit 4, get a new token', async () => {
    for (const args of [['mcp', 'tools', unauthorizedUrl, '--token-file', good], ['mcp', 'call', unauthorizedUrl, 'x', '--token-file', good]]) {
      const r = await cli(args);
      assert.equal(r.status, 4, r.stderr);
      assert.match(r.stderr, /refused the token \(401 invalid_token\).*portcullis agents token/);
      noTrace(r);
    }
  });
});
