// The MCP gateway over HTTP with the official SDK on both sides: a real Portcullis server with a
// `kind: mcp` gateway in front of a real MCP server; tokens from /v1/credentials and RFC 8693
// exchange (an agent acting for a workload). Lists filtered, calls decided by argument, chain and
// boundary, held for approval (released, timed out), taint, budgets, audience, hostile input,
// session confusion, revocation mid-session, and the recording verifies.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { startServer, type TestServer } from '../credentials/server.ts';
import { freePort } from '../credentials/helpers.ts';
import { mcpClient, startDemoMcp, type DemoMcp } from './mcp-fixture.ts';

const API = 'workload:github/acme/api';
const OTHER_AGENT = 'workload:github/acme/agent-2';
const SPONSOR = 'workload:github/acme/sponsor';
const AT = 'urn:ietf:params:oauth:token-type:access_token';
const GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const FILES_AUD = 'https://files.internal.test';

const POLICIES = `
@id("own-tokens")
permit (principal, action == Action::"credential.issue", resource == Api::"tools-mcp")
when { context.delegation.depth == 0 };
@id("api-may-be-delegated")
permit (principal == Workload::"${API}", action == Action::"credential.issue", resource == Api::"tools-mcp")
when { context.delegation.depth > 0 };
@id("gateway-upstream-credential")
permit (principal, action == Action::"credential.issue", resource == Api::"files-upstream");

@id("agents-use-tools")
permit (principal == Workload::"${API}", action in [Action::"mcp.call", Action::"mcp.read", Action::"mcp.prompt"], resource)
when { context.delegation.depth == 1 && context has mcp && context.mcp.sourceBoundary == "application" };
@id("never-delete-all")
forbid (principal, action == Action::"mcp.call", resource == Tool::"files/delete_all");
@id("no-private-resource")
forbid (principal, action == Action::"mcp.read", resource == McpResource::"files/file:///private");
@id("reads-only-under-tmp")
forbid (principal, action == Action::"mcp.call", resource == Tool::"files/read_file")
when { context has call && context.call.hasTag("path") } unless { context.call.getTag("path") has str && context.call.getTag("path").str like "/tmp/*" };
@id("small-sums")
forbid (principal, action == Action::"mcp.call", resource == Tool::"files/add")
when { context has call && context.call.hasTag("a") && context.call.getTag("a") has long && context.call.getTag("a").long > 100 };
@id("add-budget")
forbid (principal, action == Action::"mcp.call", resource == Tool::"files/add")
when { context has mcp && context.mcp.callsLastMinute >= 4 };
@id("no-second-agent")
forbid (principal, action == Action::"mcp.call", resource)
when { context.delegation.actors.contains("${OTHER_AGENT}") && context has mcp && context.mcp.name == "write_file" };
@id("taint-writes-after-untrusted") @approval("${SPONSOR}")
forbid (principal, action == Action::"mcp.call", resource)
when { context has mcp && context.mcp.history.contains("untrusted-input") && context.mcp.labels.contains("writes") }
unless { context has mcp && context.mcp.approved };

@id("sponsor-approves-tools")
permit (principal == Workload::"${SPONSOR}", action == Action::"access.approve", resource == Api::"tools-mcp");
@id("sponsor-reads-requests")
permit (principal == Workload::"${SPONSOR}", action == Action::"access.read", resource);
@id("held-calls-are-requested")
permit (principal == Workload::"${API}", action == Action::"access.request", resource == Api::"tools-mcp");
`;

describe('MCP gateway (SDK client → gateway → SDK server, over HTTP)', () => {
  let s: TestServer;
  let up: DemoMcp;
  let gwUrl = '';
  let resource = '';
  const open: Client[] = [];

  before(async () => {
    up = await startDemoMcp();
    const port = await freePort();
    resource = `http://127.0.0.1:${port}/mcp`;
    gwUrl = resource;
    s = await startServer({
      resources: `  - { type: Api, id: tools-mcp, boundary: application, environment: prod }
  - { type: Api, id: files-upstream, boundary: application, environment: prod }
  - { type: Tool, id: files/secret_tool, boundary: platform, environment: prod }`,
      targets: `  - { name: tools-mcp, kind: api, audience: "${resource}", scopes: [mcp], max_ttl: 30m, default_ttl: 10m, max_delegation_depth: 2 }
  - { name: files-upstream, kind: api, audience: "${FILES_AUD}", scopes: [files], max_ttl: 1h, default_ttl: 30m }`,
      // The sponsor answers to a human (separation of duties lets only such identities review).
      identities: `  - { id: ${API}, kind: workload, owner: team:payments, boundary: application, environment: prod }
  - { id: ${SPONSOR}, kind: workload, owner: user:sponsor@example.com, boundary: application, environment: prod }`,
      policies: POLICIES,
      gateways: `  - name: tools-gw
    kind: mcp
    listen: { host: 127.0.0.1, port: ${port} }
    target: tools-mcp
    upstreams: [{ name: files, url: "${up.url}", target: files-upstream, scopes: [files] }]
    tools: { files/fetch_url: [untrusted-input], files/write_file: [writes] }
    approval_timeout: 3s
    progress_interval: 200ms
    max_message_bytes: 65536
    arguments: { max_depth: 3 }`,
    });
  });
  after(async () => {
    for (const c of open) await c.close().catch(() => {});
    await s?.close();
    await up?.close();
  });

  async function ownToken(repository: string): Promise<string> {
    const r = await s.call('POST', '/v1/credentials', { target: 'tools-mcp', scopes: ['mcp'], reason: 'agent work', ttl: '15m' }, await s.login(repository));
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body.credential.access_token as string;
  }
  /** A token of acme/api acted on by `agent` (RFC 8693), audience the gateway. */
  async function agentToken(agent = 'acme/agent'): Promise<string> {
    const r = await s.form('/oauth2/token', { grant_type: GRANT, subject_token: await ownToken('acme/api'), subject_token_type: AT, actor_token: await ownToken(agent), actor_token_type: AT, audience: 'tools-mcp' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.access_token as string;
  }
  async function connect(token: string): Promise<Client> {
    const { client } = await mcpClient(gwUrl, token);
    open.push(client);
    return client;
  }
  const text = (r: unknown) => ((r as CallToolResult).content[0] as { text: string }).text;
  const post = (body: string, headers: Record<string, string>) =>
    fetch(gwUrl, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers }, body });

  it('no token or a token for another resource: 401 naming the RFC 9728 metadata, which names Portcullis', async () => {
    const none = await post('{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}', {});
    assert.equal(none.status, 401);
    const www = none.headers.get('www-authenticate') ?? '';
    const m = /resource_metadata="([^"]+)"/.exec(www);
    assert.ok(m, www);
    const meta = (await (await fetch(m[1]!)).json()) as { resource: string; authorization_servers: string[] };
    assert.equal(meta.resource, resource);
    assert.deepEqual(meta.authorization_servers, [s.url]);
    const asMeta = await fetch(`${s.url}/.well-known/oauth-authorization-server`);
    assert.equal(asMeta.status, 200);

    // A Portcullis token for the upstream's audience (or any other) is refused here.
    const other = await s.call('POST', '/v1/credentials', { target: 'files-upstream', scopes: ['files'], reason: 'x' }, await s.login('acme/agent'));
    assert.equal(other.status, 201, JSON.stringify(other.body));
    const wrongAud = await post('{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}', { authorization: `Bearer ${other.body.credential.access_token}` });
    assert.equal(wrongAud.status, 401);
    assert.match(wrongAud.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
    await assert.rejects(mcpClient(gwUrl, other.body.credential.access_token as string));
    // A session token of Portcullis is no access token either.
    await assert.rejects(mcpClient(gwUrl, await s.login('acme/agent')));
  });

  it('tools/list is filtered; calls are decided by argument, chain and boundary; the upstream gets its own credential', async () => {
    const c = await connect(await agentToken());
    const names = (await c.listTools()).tools.map((t) => t.name).sort();
    assert.deepEqual(names, ['add', 'echo', 'fetch_url', 'read_file', 'write_file'], 'delete_all is forbidden, secret_tool is in another boundary');

    assert.equal(text(await c.callTool({ name: 'read_file', arguments: { path: '/tmp/notes' } })), 'contents of /tmp/notes');
    const denied = (await c.callTool({ name: 'read_file', arguments: { path: '/etc/shadow' } })) as CallToolResult;
    assert.equal(denied.isError, true);
    assert.match(text(denied), /^Portcullis denied this call: mcp\.call on Tool::"files\/read_file" \(decision [0-9a-f-]{36}\)$/);
    assert.equal(denied._meta?.['portcullis.dev/outcome'], 'denied');
    assert.equal(text(await c.callTool({ name: 'add', arguments: { a: 2, b: 1.25 } })), '3.25');
    assert.equal(((await c.callTool({ name: 'add', arguments: { a: 1000, b: 1 } })) as CallToolResult).isError, true, 'a > 100 is denied');
    // Listed nowhere, but called anyway: denied (boundary guard / forbid), and the upstream never sees it.
    assert.equal(((await c.callTool({ name: 'secret_tool', arguments: {} })) as CallToolResult).isError, true);
    assert.equal(((await c.callTool({ name: 'delete_all', arguments: {} })) as CallToolResult).isError, true);
    assert.ok(!up.calls.some((x) => x.name === 'secret_tool' || x.name === 'delete_all' || (x.name === 'read_file' && (x.args as { path: string }).path === '/etc/shadow')));
    // Unmappable arguments: a JSON-RPC error, nothing forwarded.
    await assert.rejects(c.callTool({ name: 'add', arguments: { a: 1, b: 2, opts: { x: { y: { z: 1 } } } } }), /nested deeper than 3 levels/);
    await assert.rejects(c.callTool({ name: 'add', arguments: { a: 2 ** 60, b: 1 } }), /beyond ±2\^53/);
    await assert.rejects(c.callTool({ name: 'nope', arguments: {} }), /unknown tool/);

    // Resources and prompts are decided the same way.
    assert.deepEqual((await c.listResources()).resources.map((r) => r.uri), ['file:///readme']);
    assert.equal(((await c.readResource({ uri: 'file:///readme' })).contents[0] as { text: string }).text, 'hello from the readme');
    await assert.rejects(c.readResource({ uri: 'file:///private' }), /Portcullis denied this call: mcp\.read/);
    assert.match(JSON.stringify((await c.getPrompt({ name: 'summarize', arguments: { topic: 'cedar' } })).messages), /Summarize cedar/);

    // The upstream saw only the gateway's own token, for its own audience.
    const seen = up.authorizations.filter((a) => a !== '');
    assert.ok(seen.length > 0);
    for (const a of seen) {
      const payload = JSON.parse(Buffer.from(a.split(' ')[1]!.split('.')[1]!, 'base64url').toString()) as { aud: string };
      assert.equal(payload.aud, FILES_AUD);
    }
  });

  it('a second agent in the chain is denied what the first may do; budgets count calls per tool per minute', async () => {
    const other = await connect(await agentToken('acme/agent-2'));
    assert.equal(((await other.callTool({ name: 'write_file', arguments: { path: '/tmp/a', content: 'x' } })) as CallToolResult).isError, true);
    assert.equal(text(await other.callTool({ name: 'read_file', arguments: { path: '/tmp/a' } })), 'contents of /tmp/a');
    const results: boolean[] = [];
    for (let i = 0; i < 6; i++) results.push(((await other.callTool({ name: 'add', arguments: { a: 1, b: i } })) as CallToolResult).isError === true);
    assert.deepEqual(results, [false, false, false, false, true, true], 'the fifth call in a minute is over the policy budget');
  });

  it('chain depth: the subject itself (no agent) and a chain of two agents are refused what one agent may do', async () => {
    const own = await connect(await ownToken('acme/api'));
    assert.deepEqual((await own.listTools()).tools, []);
    assert.equal(((await own.callTool({ name: 'read_file', arguments: { path: '/tmp/a' } })) as CallToolResult).isError, true);
    const r = await s.form('/oauth2/token', { grant_type: GRANT, subject_token: await agentToken(), subject_token_type: AT, actor_token: await ownToken('acme/agent-2'), actor_token_type: AT, audience: 'tools-mcp' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const two = await connect(r.body.access_token as string);
    assert.deepEqual((await two.listTools()).tools, []);
    const denied = (await two.callTool({ name: 'read_file', arguments: { path: '/tmp/a' } })) as CallToolResult;
    assert.equal(denied._meta?.['portcullis.dev/outcome'], 'denied');
  });

  it('taint: after an untrusted read a write is held for the sponsor; approval releases it, silence times it out', async () => {
    const c = await connect(await agentToken());
    assert.equal(text(await c.callTool({ name: 'write_file', arguments: { path: '/tmp/before', content: 'ok', password: 'hunter2' } })), 'wrote 2 bytes to /tmp/before');
    await c.callTool({ name: 'fetch_url', arguments: { url: 'https://evil.example' } });
    const sponsor = await s.login('acme/sponsor');

    // Held: progress notifications while the sponsor decides; approving releases it.
    const progress: string[] = [];
    const held = c.callTool({ name: 'write_file', arguments: { path: '/tmp/after', content: 'approved' } }, undefined, { onprogress: (p) => void progress.push(String(p.message)) });
    let reqId = '';
    let settled: unknown;
    held.then((r) => (settled = r), (e: unknown) => (settled = e));
    while (reqId === '') {
      assert.equal(settled, undefined, 'the call is held until a decision');
      const list = await s.call('GET', '/v1/access-requests?reviewable=true&status=pending', undefined, sponsor);
      assert.equal(list.status, 200, JSON.stringify(list.body));
      const mine = (list.body.requests as { id: string; what: string }[]).find((r) => r.what.includes('mcp.call'));
      if (mine) reqId = mine.id;
      else await new Promise((r) => setTimeout(r, 50));
    }
    const ok = await s.call('POST', `/v1/access-requests/${reqId}/approve`, { comment: 'fine' }, sponsor);
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(text(await held), 'wrote 8 bytes to /tmp/after');
    assert.ok(progress.some((m) => m.includes(`held for approval by ${SPONSOR}`)), JSON.stringify(progress));

    // Nobody answers: denied when the hold times out, with the documented result; never forwarded.
    const timedOut = (await c.callTool({ name: 'write_file', arguments: { path: '/tmp/never', content: 'x' } })) as CallToolResult;
    assert.equal(timedOut.isError, true);
    assert.match(text(timedOut), /^Portcullis: approval timed out: approval by workload:github\/acme\/sponsor did not come within 3s \(access request req_[0-9a-f-]+\); the call was not made$/);
    assert.equal(timedOut._meta?.['portcullis.dev/outcome'], 'approval-timeout');
    assert.ok(!up.calls.some((x) => (x.args as { path?: string }).path === '/tmp/never'));
  });

  it('hostile input: malformed JSON-RPC, oversized, batches, unknown methods, another caller on a session', async () => {
    const token = await agentToken();
    const c = await connect(token);
    const { transport } = await mcpClient(gwUrl, token);
    const sid = transport.sessionId!;
    const h = { authorization: `Bearer ${token}`, 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' };
    const err = async (r: Response) => ({ status: r.status, body: (await r.json()) as { error: { code: number; message: string } } });
    const bad = await err(await post('{"jsonrpc":"2.0","id":1,"method":', h));
    assert.deepEqual([bad.status, bad.body.error.code], [400, -32700]);
    const big = await err(await post(JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'echo', arguments: { text: 'x'.repeat(70_000) } } }), h));
    assert.deepEqual([big.status, big.body.error.code], [413, -32600]);
    const batch = await err(await post('[{"jsonrpc":"2.0","id":3,"method":"tools/list"}]', h));
    assert.deepEqual([batch.status, batch.body.error.code], [400, -32600]);
    const notRpc = await err(await post('{"id":4,"method":"tools/list"}', h));
    assert.equal(notRpc.body.error.code, -32600);
    const unknown = await post('{"jsonrpc":"2.0","id":5,"method":"completion/complete","params":{}}', h);
    assert.match(await unknown.text(), /-32601/);
    const noSession = await err(await post('{"jsonrpc":"2.0","id":6,"method":"tools/list"}', { ...h, 'mcp-session-id': 'gws_AAAAAAAAAAAAAAAAAAAA' }));
    assert.equal(noSession.status, 404);
    // Another agent's valid token on this session: refused before anything is forwarded.
    const before = up.calls.length;
    const stolen = await err(await post('{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"/tmp/x"}}}', { ...h, authorization: `Bearer ${await agentToken('acme/agent-2')}` }));
    assert.deepEqual([stolen.status, stolen.body.error.code], [403, -32001], JSON.stringify(stolen.body));
    assert.equal(up.calls.length, before);
    // A broken initialize opens nothing (no live session, no upstream lease left behind).
    const admin = await s.admin();
    const liveCount = async () => ((await s.call('GET', '/v1/sessions?live=true', undefined, admin)).body.sessions as unknown[]).length;
    const sessionsBefore = await liveCount();
    const noAccept = await fetch(gwUrl, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json', authorization: `Bearer ${token}` }, body: '{"jsonrpc":"2.0","id":8,"method":"initialize","params":{}}' });
    assert.equal(noAccept.status, 406);
    const badInit = await post('{"jsonrpc":"2.0","id":9,"method":"initialize","params":{"nonsense":true}}', { authorization: `Bearer ${token}` });
    assert.match(await badInit.text(), /"error"/);
    assert.equal(await liveCount(), sessionsBefore);
    // Still serving.
    assert.equal(text(await c.callTool({ name: 'echo', arguments: { text: 'alive' } })), 'alive');
    await transport.close();
  });

  it('revoking the token mid-session ends the session; the recording verifies and redacts', async () => {
    const token = await agentToken();
    const { client, transport } = await mcpClient(gwUrl, token);
    open.push(client);
    const sid = transport.sessionId!;
    assert.equal(text(await client.callTool({ name: 'write_file', arguments: { path: '/tmp/r', content: 'x', password: 'hunter2' } })), 'wrote 1 bytes to /tmp/r');
    const admin = await s.admin();
    const live = async () => ((await s.call('GET', '/v1/sessions?live=true', undefined, admin)).body.sessions as { id: string }[]).some((x) => x.id === sid);
    assert.ok(await live());
    const r = await s.call('POST', '/v1/revocations', { selector: { identity: API }, reason: 'agent misbehaved' }, admin);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    while (await live()) await new Promise((res) => setTimeout(res, 20));
    await assert.rejects(client.callTool({ name: 'echo', arguments: { text: 'after' } }));

    const v = await s.call('GET', `/v1/sessions/${sid}?verify=true`, undefined, admin);
    assert.equal(v.status, 200, JSON.stringify(v.body));
    assert.equal(v.body.verification.ok, true, JSON.stringify(v.body.verification));
    const rec = await fetch(`${s.url}/v1/sessions/${sid}/recording`, { headers: { authorization: `Bearer ${admin}` } });
    const lines = (await rec.text()).trim().split('\n').map((l) => JSON.parse(l) as { type: string; payload: Record<string, unknown> });
    assert.deepEqual(lines.map((l) => l.type), ['session.start', 'mcp.call', 'session.end']);
    const call = lines[1]!.payload;
    assert.deepEqual(call.arguments, { path: '/tmp/r', content: 'x', password: '[redacted]' });
    assert.equal(call.outcome, 'allowed');
    assert.doesNotMatch(JSON.stringify(lines), /hunter2/);
    assert.match(String(lines[2]!.payload.reason), /terminated/);

    await s.running.broker.audit.flush();
    const authz = await s.running.broker.audit.query({ stream: 'authz' });
    assert.ok(authz.some((e) => e.payload.action === 'mcp.call' && e.decision === 'deny'));
    assert.ok(authz.some((e) => e.payload.action === 'mcp.call' && e.decision === 'allow'));
  });
});
