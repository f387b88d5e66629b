// MCP budgets and taint across replicas (docs/agents.md "Budgets and taint"): two Portcullis
// processes over one PostgreSQL store (the test's, and a `portcullis server` child), each with its
// own MCP gateway in front of one MCP server; an agent's official
// SDK clients spread one assignment's calls over both. One budget holds (also for calls made at
// once on both), and an untrusted read on one replica taints a write on the other.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { CLIENT_SECRET } from '../access/idp.ts';
import { freePort } from '../credentials/helpers.ts';
import { startHumanHarness, WEBHOOK_SECRET, type HumanHarness } from '../integration/human-harness.ts';
import { freshStoreUrl } from '../store/pg.ts';
import { mcpClient, startDemoMcp, type DemoMcp } from '../gateways/mcp-fixture.ts';

const ALICE = 'user:alice@example.com';
const SAM = 'user:sam@example.com';
const AGENT = 'agent:helper';
const JWT = 'urn:ietf:params:oauth:token-type:jwt';
const MAIN = join(import.meta.dirname, '..', '..', 'src', 'cli', 'main.ts');
const CAP = 4;

const POLICIES = `
@id("alice-assigns") permit (principal == User::"${ALICE}", action == Action::"assignment.create", resource);
@id("assignment-tokens") permit (principal == User::"${ALICE}", action == Action::"credential.issue", resource == Api::"tools-mcp")
when { context.delegation.depth > 0 };
@id("agent-calls") permit (principal == User::"${ALICE}", action == Action::"mcp.call", resource)
when { context has mcp && context.mcp.agent == "${AGENT}" };
@id("taint") forbid (principal, action == Action::"mcp.call", resource)
when { context has mcp && context.mcp.history.contains("untrusted-input") && context.mcp.labels.contains("writes") };
@id("read-budget") forbid (principal, action == Action::"mcp.call", resource == Tool::"files/read_file")
when { context has mcp && context.mcp.callsLastMinute >= 2 };
`;

const text = (r: unknown) => ((r as CallToolResult).content[0] as { text: string }).text;

describe('MCP budgets and taint over two replicas', { timeout: 300_000 }, () => {
  let s: HumanHarness;
  let b: ChildProcess | undefined;
  let stderrB = '';
  let up: DemoMcp;
  let resource = '';
  let urlB = '';
  let token = '';

  before(async () => {
    up = await startDemoMcp();
    const [portA, portB] = [await freePort(), await freePort()];
    resource = `http://127.0.0.1:${portA}/mcp`;
    urlB = `http://127.0.0.1:${portB}/mcp`;
    const env = { PCX_STORE_URL: await freshStoreUrl() };
    const gatewayA = `{ host: 127.0.0.1, port: ${portA} }`;
    s = await startHumanHarness({
      accounts: [{ sub: 'u-alice', email: 'alice@example.com', password: 'alice-pw', otp: '111111', groups: ['engineering'] }],
      access: '  rules: []',
      policies: POLICIES,
      extraEnv: env,
      // Replicas share one issuer: the URL clients reach them at.
      extraYaml: `public_url: http://portcullis.replicas.test
targets:
  - { name: tools-mcp, kind: api, audience: "${resource}", scopes: [mcp], max_ttl: 30m, default_ttl: 10m, max_delegation_depth: 2 }
gateways:
  - { name: tools-gw, kind: mcp, listen: ${gatewayA}, target: tools-mcp, upstreams: [{ name: files, url: "${up.url}" }],
      calls_per_tool_per_minute: ${CAP}, tools: { files/fetch_url: [untrusted-input], files/write_file: [writes] } }`,
      harness: {
        store: 'postgres',
        resources: '  - { type: Api, id: tools-mcp, boundary: application, environment: prod }',
        identities: `  - { id: ${SAM}, kind: user, owner: team:ai, boundary: ai-platform, environment: prod }
  - { id: ${AGENT}, kind: agent, owner: team:ai, purpose: tidies files for people, boundary: ai-platform, environment: prod }`,
      },
    });
    const admin = await s.admin(); // before B starts (the bootstrap credential is A's to print)
    // Replica B: another process with the same configuration on the same store, its gateway on
    // another port (the same resource).
    const cfgB = join(s.dir, 'portcullis-b.yaml');
    writeFileSync(cfgB, readFileSync(join(s.dir, 'portcullis.yaml'), 'utf8').replace(gatewayA, `{ host: 127.0.0.1, port: ${portB} }`).replace('data_dir: ./data', 'data_dir: ./data-b'));
    const mainB = await freePort();
    b = spawn(process.execPath, [MAIN, 'server', '--config', cfgB, '--port', String(mainB)], {
      env: { ...process.env, SSO_CLIENT_SECRET: CLIENT_SECRET, WEBHOOK_SECRET, ...env, PORTCULLIS_MASTER_KEY: Buffer.alloc(32, 7).toString('base64') },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    b.stderr!.on('data', (d: Buffer) => (stderrB += d.toString()));
    for (let ready = false; !ready; ) {
      if (b.exitCode !== null) assert.fail(`replica B exited: ${stderrB}`);
      ready = await fetch(`http://127.0.0.1:${mainB}/readyz`).then((r) => r.status === 200, () => false);
      if (!ready) await new Promise((r) => setTimeout(r, 100));
    }

    const alice = (await s.login('alice@example.com')).token;
    const k = await s.post('/v1/apikeys', { identity: AGENT, ttl: '1h' }, admin);
    assert.equal(k.status, 201, JSON.stringify(k.body));
    const l = await s.post('/v1/auth/token', { api_key: k.body.key ?? k.body.api_key ?? k.body.secret });
    assert.equal(l.status, 200, JSON.stringify(l.body));
    const p = await s.put(`/v1/agents/${encodeURIComponent(AGENT)}`, { sponsor: SAM, model: 'demo', tools: ['files/*'] }, admin);
    assert.equal(p.status, 200, JSON.stringify(p.body));
    const a = await s.post(`/v1/agents/${encodeURIComponent(AGENT)}/assignments`, { intent: 'tidy /tmp', tools: ['files/*'], audiences: [resource], ttl: '30m' }, alice);
    assert.equal(a.status, 201, JSON.stringify(a.body));
    const r = await fetch(`${s.url}/oauth2/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', assignment: a.body.assignment.id as string, subject_token: alice, subject_token_type: JWT, actor_token: l.body.session_token as string, actor_token_type: JWT, resource }),
    });
    const t = (await r.json()) as { access_token: string };
    assert.equal(r.status, 200, JSON.stringify(t));
    token = t.access_token;
    s.sync(); // the test's replica runs on a manual clock: now, like B's
  }, { timeout: 240_000 });
  after(async () => {
    if (b && b.exitCode === null && b.signalCode === null) {
      const exited = new Promise((r) => b!.once('exit', r));
      b.kill('SIGTERM');
      await exited;
    }
    await s?.close();
    await up?.close();
  });

  it('one budget and one taint history for an assignment whose calls are spread over both replicas', async () => {
    const A = await mcpClient(resource, token);
    const B = await mcpClient(urlB, token);
    try {
      const add = (c: typeof A, i: number) => c.client.callTool({ name: 'add', arguments: { a: i, b: 1 } }) as Promise<CallToolResult>;
      // Two calls one after the other, one on each replica …
      assert.equal(text(await add(A, 1)), '2');
      assert.equal(text(await add(B, 2)), '3');
      // … then six at once, three on each: exactly CAP - 2 more get through, the others are refused.
      const burst = await Promise.all([A, B, A, B, A, B].map((c, i) => add(c, 10 + i)));
      const refused = burst.filter((r) => r.isError === true);
      assert.equal(burst.length - refused.length, CAP - 2, burst.map(text).join(' | '));
      for (const r of refused) assert.match(text(r), new RegExp(`^Portcullis refused this call: budget exhausted: at most ${CAP} calls of files/add per minute`));
      assert.equal(up.calls.filter((c) => c.name === 'add').length, CAP, 'the MCP server saw exactly the budget');
      // Policy sees the count across replicas too (context.mcp.callsLastMinute).
      assert.equal((await A.client.callTool({ name: 'read_file', arguments: { path: '/tmp/a' } })).isError, undefined);
      assert.equal((await B.client.callTool({ name: 'read_file', arguments: { path: '/tmp/b' } })).isError, undefined);
      const third = (await A.client.callTool({ name: 'read_file', arguments: { path: '/tmp/c' } })) as CallToolResult;
      assert.match(text(third), /^Portcullis denied this call: mcp\.call on Tool::"files\/read_file"/);

      // Taint: a write is fine before, then an untrusted read on B taints the assignment on A as well.
      assert.equal(text(await A.client.callTool({ name: 'write_file', arguments: { path: '/tmp/x', content: 'ok' } })), 'wrote 2 bytes to /tmp/x');
      assert.equal((await B.client.callTool({ name: 'fetch_url', arguments: { url: 'https://example.com' } })).isError, undefined);
      for (const c of [A, B]) {
        const w = (await c.client.callTool({ name: 'write_file', arguments: { path: '/tmp/y', content: 'no' } })) as CallToolResult;
        assert.equal(w.isError, true);
        assert.match(text(w), /^Portcullis denied this call: mcp\.call on Tool::"files\/write_file"/);
      }
      assert.deepEqual(up.calls.filter((c) => c.name === 'write_file').map((c) => (c.args as { path: string }).path), ['/tmp/x']);
    } finally {
      await A.client.close().catch(() => {});
      await B.client.close().catch(() => {});
    }
  });
});
