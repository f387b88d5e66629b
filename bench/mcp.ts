// The MCP gateway (issue #13): tool calls from SDK clients through the gateway — each decided with
// Cedar (authz record awaited), recorded in the session stream (durable before the result) — next to
// the same calls straight to the same MCP server, same run: throughput with concurrent clients
// (goal ≥ 0.5× direct) and one client's latency (p50/p99). The `assignment_*` figures: the same
// calls with an agent's assignment-scoped token, every client on one assignment, so each call is
// also counted in the store (budgets and taint, shared by replicas: one atomic reserve per call).
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { startHumanHarness, type HumanHarness } from '../test/integration/human-harness.ts';
import { freePort } from '../test/credentials/helpers.ts';
import { mcpClient, startDemoMcp, type DemoMcp } from '../test/gateways/mcp-fixture.ts';
import { percentile } from './fixture.ts';

type Emit = (line: Record<string, unknown>) => void;

const SECONDS = Number(process.env.PCX_BENCH_MCP_SECONDS ?? 10);
const CLIENTS = Number(process.env.PCX_BENCH_MCP_CLIENTS ?? 8);
const LATENCY_N = Number(process.env.PCX_BENCH_MCP_LATENCY_N ?? 1000);

/** Calls per second of `clients` SDK clients calling `echo` for SECONDS. */
async function throughput(clients: Client[]): Promise<number> {
  let n = 0;
  const end = performance.now() + SECONDS * 1000;
  await Promise.all(
    clients.map(async (c, i) => {
      while (performance.now() < end) {
        await c.callTool({ name: 'echo', arguments: { text: `hello ${i}` } });
        n++;
      }
    }),
  );
  return n / SECONDS;
}

/** One client's call latencies (ms, sorted), after a warm-up. */
async function latencies(c: Client): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < LATENCY_N + 100; i++) {
    const t = performance.now();
    await c.callTool({ name: 'echo', arguments: { text: 'x' } });
    if (i >= 100) out.push(performance.now() - t);
  }
  return out.sort((a, b) => a - b);
}

export async function run(emit: Emit): Promise<void> {
  let s: HumanHarness | undefined;
  let up: DemoMcp | undefined;
  const clients: Client[] = [];
  try {
    up = await startDemoMcp();
    const port = await freePort();
    const resource = `http://127.0.0.1:${port}/mcp`;
    s = await startHumanHarness({
      accounts: [{ sub: 'u-alice', email: 'alice@example.com', password: 'alice-pw', otp: '111111', groups: ['engineering'] }],
      access: '  rules: []',
      policies: `
permit (principal, action == Action::"credential.issue", resource == Api::"tools-mcp");
permit (principal == Workload::"workload:github/acme/api", action == Action::"mcp.call", resource)
when { context has call && context.call.hasTag("text") };
permit (principal == User::"user:alice@example.com", action == Action::"assignment.create", resource);
permit (principal == User::"user:alice@example.com", action == Action::"mcp.call", resource)
when { context has call && context.call.hasTag("text") };
`,
      extraYaml: `targets:
  - { name: tools-mcp, kind: api, audience: "${resource}", scopes: [mcp], max_ttl: 1h, default_ttl: 30m }
gateways:
  - { name: tools-gw, kind: mcp, listen: { host: 127.0.0.1, port: ${port} }, target: tools-mcp, upstreams: [{ name: files, url: "${up.url}" }] }`,
      harness: {
        resources: '  - { type: Api, id: tools-mcp, boundary: application, environment: prod }',
        identities: `  - { id: user:sponsor@example.com, kind: user, owner: team:ai, boundary: ai-platform, environment: prod }
  - { id: agent:bench, kind: agent, owner: team:ai, purpose: bench, boundary: ai-platform, environment: prod, sponsor: user:sponsor@example.com }`,
      },
    });
    const session = await s.loginCi();
    const tokens: string[] = [];
    for (let i = 0; i < CLIENTS; i++) {
      const r = await s.post('/v1/credentials', { target: 'tools-mcp', scopes: ['mcp'], reason: 'bench' }, session);
      if (r.status !== 201) throw new Error(`token: ${r.status} ${JSON.stringify(r.body)}`);
      tokens.push(r.body.credential.access_token as string);
    }
    const asgToken = await assignmentToken(s, resource);
    const direct: Client[] = [];
    const gated: Client[] = [];
    const assigned: Client[] = [];
    for (const t of tokens) {
      direct.push((await mcpClient(up.url, t)).client);
      gated.push((await mcpClient(resource, t)).client);
      assigned.push((await mcpClient(resource, asgToken)).client);
    }
    clients.push(...direct, ...gated, ...assigned);
    // Alternate (direct, gateway, assignment, direct, …) so a load swing on the machine hits all.
    const rates = { direct: [] as number[], gateway: [] as number[], assignment: [] as number[] };
    for (let round = 0; round < 2; round++) {
      rates.direct.push(await throughput(direct));
      rates.gateway.push(await throughput(gated));
      rates.assignment.push(await throughput(assigned));
    }
    const d = Math.max(...rates.direct);
    const g = Math.max(...rates.gateway);
    const ga = Math.max(...rates.assignment);
    const latD = await latencies(direct[0]!);
    const latG = await latencies(gated[0]!);
    const latA = await latencies(assigned[0]!);
    emit({
      bench: 'mcp',
      clients: CLIENTS,
      seconds: SECONDS,
      direct_calls_per_s: Math.round(d),
      gateway_calls_per_s: Math.round(g),
      ratio: Math.round((g / d) * 100) / 100,
      goal: 0.5,
      met: g / d >= 0.5,
      direct_p50_ms: round(percentile(latD, 50)),
      direct_p99_ms: round(percentile(latD, 99)),
      gateway_p50_ms: round(percentile(latG, 50)),
      gateway_p99_ms: round(percentile(latG, 99)),
      assignment_calls_per_s: Math.round(ga),
      assignment_ratio: Math.round((ga / d) * 100) / 100,
      assignment_vs_gateway: Math.round((ga / g) * 100) / 100,
      assignment_p50_ms: round(percentile(latA, 50)),
      assignment_p99_ms: round(percentile(latA, 99)),
    });
  } finally {
    for (const c of clients) await c.close().catch(() => {});
    await s?.close();
    await up?.close();
  }
}

/** An agent's token for one assignment (user:bench → agent:bench), by the RFC 8693 exchange. */
async function assignmentToken(s: HumanHarness, resource: string): Promise<string> {
  const k = await s.post('/v1/apikeys', { identity: 'agent:bench', ttl: '1h' }, await s.admin());
  if (k.status !== 201) throw new Error(`api key for the agent: ${k.status} ${JSON.stringify(k.body)}`);
  const l = await s.post('/v1/auth/token', { api_key: k.body.key ?? k.body.api_key ?? k.body.secret });
  if (l.status !== 200) throw new Error(`agent login: ${l.status} ${JSON.stringify(l.body)}`);
  const agent = l.body.session_token as string;
  const user = (await s.login('alice@example.com')).token;
  const a = await s.post('/v1/agents/agent%3Abench/assignments', { intent: 'bench', tools: ['files/*'], audiences: [resource], ttl: '1h' }, user);
  if (a.status !== 201) throw new Error(`assignment: ${a.status} ${JSON.stringify(a.body)}`);
  const jwt = 'urn:ietf:params:oauth:token-type:jwt';
  const r = await fetch(`${s.url}/oauth2/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', assignment: a.body.assignment.id as string, subject_token: user, subject_token_type: jwt, actor_token: agent, actor_token_type: jwt, resource }),
  });
  const t = (await r.json()) as { access_token?: string };
  if (r.status !== 200 || t.access_token === undefined) throw new Error(`exchange: ${r.status} ${JSON.stringify(t)}`);
  return t.access_token;
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
