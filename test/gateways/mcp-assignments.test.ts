// The MCP gateway with real assignment-scoped tokens (agents domain): alice gives her agent an
// assignment (intent, tools, audience), the agent exchanges for a token with `asg` and `act`; the
// gateway lists only the assignment's tools, decides on the intent, holds a write for the
// sponsor named by `@approval("sponsor")`, and ending the assignment ends the MCP session.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { freePort } from '../credentials/helpers.ts';
import { startHumanHarness, type HumanHarness } from '../integration/human-harness.ts';
import { mcpClient, startDemoMcp, type DemoMcp } from './mcp-fixture.ts';

const ALICE = 'user:alice@example.com';
const SAM = 'user:sam@example.com';
const AGENT = 'agent:helper';
const JWT = 'urn:ietf:params:oauth:token-type:jwt';
const GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';

const POLICIES = `
@id("alice-assigns") permit (principal == User::"${ALICE}", action == Action::"assignment.create", resource);
@id("alice-ends") permit (principal == User::"${ALICE}", action == Action::"assignment.end", resource);
@id("assignment-tokens") permit (principal == User::"${ALICE}", action == Action::"credential.issue", resource == Api::"tools-mcp")
when { context.delegation.depth > 0 };
@id("tidy-intent") permit (principal == User::"${ALICE}", action == Action::"mcp.call", resource)
when { context has mcp && context.mcp.intent like "*tidy*" && context.mcp.agent == "${AGENT}" && context.mcp.sourceBoundary == "ai-platform" };
@id("writes-need-the-sponsor") @approval("sponsor")
permit (principal, action == Action::"mcp.call", resource == Tool::"files/write_file") when { context has mcp && context.mcp.assignment != "" };
@id("sam-reviews") permit (principal == User::"${SAM}", action in [Action::"access.read", Action::"access.approve"], resource);
@id("alice-asks") permit (principal == User::"${ALICE}", action == Action::"access.request", resource == Api::"tools-mcp");
`;

describe('MCP gateway with assignment-scoped tokens', () => {
  let s: HumanHarness;
  let up: DemoMcp;
  let resource = '';
  const session: Record<string, string> = {};

  before(async () => {
    up = await startDemoMcp();
    const port = await freePort();
    resource = `http://127.0.0.1:${port}/mcp`;
    s = await startHumanHarness({
      accounts: [
        { sub: 'u-alice', email: 'alice@example.com', password: 'alice-pw', otp: '111111', groups: ['engineering'] },
        { sub: 'u-sam', email: 'sam@example.com', password: 'sam-pw', otp: '222222', groups: ['ai'] },
      ],
      access: '  rules: []',
      policies: POLICIES,
      extraYaml: `targets:
  - { name: tools-mcp, kind: api, audience: "${resource}", scopes: [mcp], max_ttl: 30m, default_ttl: 10m, max_delegation_depth: 2 }
gateways:
  - { name: tools-gw, kind: mcp, listen: { host: 127.0.0.1, port: ${port} }, target: tools-mcp, upstreams: [{ name: files, url: "${up.url}" }], approval_timeout: 20s, progress_interval: 200ms }`,
      harness: {
        resources: '  - { type: Api, id: tools-mcp, boundary: application, environment: prod }',
        identities: `  - { id: ${AGENT}, kind: agent, owner: team:ai, purpose: tidies files for people, boundary: ai-platform, environment: prod }`,
      },
    });
    const admin = await s.admin();
    session[ALICE] = (await s.login('alice@example.com')).token;
    session[SAM] = (await s.login('sam@example.com')).token;
    const k = await s.post('/v1/apikeys', { identity: AGENT, ttl: '1h' }, admin);
    assert.equal(k.status, 201, JSON.stringify(k.body));
    const l = await s.post('/v1/auth/token', { api_key: k.body.key ?? k.body.api_key ?? k.body.secret });
    assert.equal(l.status, 200, JSON.stringify(l.body));
    session[AGENT] = l.body.session_token as string;
    const p = await s.put(`/v1/agents/${encodeURIComponent(AGENT)}`, { sponsor: SAM, model: 'demo', tools: ['files/*'] }, admin);
    assert.equal(p.status, 200, JSON.stringify(p.body));
  });
  after(async () => {
    await s?.close();
    await up?.close();
  });

  async function assign(intent: string, tools: string[]): Promise<{ id: string; token: string }> {
    const a = await s.post(`/v1/agents/${encodeURIComponent(AGENT)}/assignments`, { intent, tools, audiences: [resource], ttl: '30m' }, session[ALICE]);
    assert.equal(a.status, 201, JSON.stringify(a.body));
    const id = a.body.assignment.id as string;
    const r = await fetch(`${s.url}/oauth2/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: GRANT, assignment: id, subject_token: session[ALICE]!, subject_token_type: JWT, actor_token: session[AGENT]!, actor_token_type: JWT, resource }),
    });
    const t = (await r.json()) as { access_token: string };
    assert.equal(r.status, 200, JSON.stringify(t));
    return { id, token: t.access_token };
  }

  it('lists only the assignment tools, decides on its intent, holds a write for the sponsor; ending it ends the session', async () => {
    const tidy = await assign('tidy the /tmp folder', ['files/read_file', 'files/write_file']);
    const { client, transport } = await mcpClient(resource, tidy.token);
    try {
      assert.deepEqual((await client.listTools()).tools.map((t) => t.name).sort(), ['read_file', 'write_file']);
      assert.equal(((await client.callTool({ name: 'read_file', arguments: { path: '/tmp/x' } })) as CallToolResult).isError, undefined);
      const outside = (await client.callTool({ name: 'add', arguments: { a: 1, b: 2 } })) as CallToolResult;
      assert.match((outside.content[0] as { text: string }).text, /^Portcullis refused this call: files\/add is not among the tools of assignment asg_/);

      // A write: held for the agent's sponsor (sam), released by his approval.
      const held = client.callTool({ name: 'write_file', arguments: { path: '/tmp/y', content: 'tidy' } }, undefined, { onprogress: () => {} });
      let reqId = '';
      while (reqId === '') {
        const list = await s.get('/v1/access-requests?reviewable=true&status=pending', session[SAM]);
        assert.equal(list.status, 200, JSON.stringify(list.body));
        reqId = (list.body.requests as { id: string }[])[0]?.id ?? '';
        if (reqId === '') await new Promise((r) => setTimeout(r, 50));
      }
      const ok = await s.post(`/v1/access-requests/${reqId}/approve`, {}, session[SAM]);
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
      assert.equal((((await held) as CallToolResult).content[0] as { text: string }).text, 'wrote 4 bytes to /tmp/y');

      // Another intent: the same tool is denied.
      const other = await assign('read everything', ['files/read_file']);
      const c2 = await mcpClient(resource, other.token);
      assert.equal(((await c2.client.callTool({ name: 'read_file', arguments: { path: '/tmp/x' } })) as CallToolResult).isError, true);
      await c2.client.close();

      // Ending the assignment ends its session (and its tokens).
      const end = await s.post(`/v1/assignments/${tidy.id}/end`, { reason: 'done' }, session[ALICE]);
      assert.equal(end.status, 200, JSON.stringify(end.body));
      const sid = transport.sessionId!;
      const admin = await s.admin();
      const live = async () => ((await s.get('/v1/sessions?live=true', admin)).body.sessions as { id: string }[]).some((x) => x.id === sid);
      while (await live()) await new Promise((r) => setTimeout(r, 20));
      await assert.rejects(client.callTool({ name: 'read_file', arguments: { path: '/tmp/x' } }));
    } finally {
      await client.close().catch(() => {});
    }
  });
});
