// The MCP gateway (issue #13): tool calls from SDK clients through the gateway — each decided with
// Cedar (authz record awaited), recorded in the session stream (durable before the result) — next to
// the same calls straight to the same MCP server, same run: throughput with concurrent clients
// (goal ≥ 0.5× direct) and one client's latency (p50/p99).
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { startServer, type TestServer } from '../test/credentials/server.ts';
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
  let s: TestServer | undefined;
  let up: DemoMcp | undefined;
  const clients: Client[] = [];
  try {
    up = await startDemoMcp();
    const port = await freePort();
    const resource = `http://127.0.0.1:${port}/mcp`;
    s = await startServer({
      resources: '  - { type: Api, id: tools-mcp, boundary: application, environment: prod }',
      targets: `  - { name: tools-mcp, kind: api, audience: "${resource}", scopes: [mcp], max_ttl: 1h, default_ttl: 30m }`,
      policies: `
permit (principal, action == Action::"credential.issue", resource == Api::"tools-mcp");
permit (principal == Workload::"workload:github/acme/api", action == Action::"mcp.call", resource)
when { context has call && context.call.hasTag("text") };
`,
      gateways: `  - { name: tools-gw, kind: mcp, listen: { host: 127.0.0.1, port: ${port} }, target: tools-mcp, upstreams: [{ name: files, url: "${up.url}" }] }`,
    });
    const session = await s.login('acme/api');
    const tokens: string[] = [];
    for (let i = 0; i < CLIENTS; i++) {
      const r = await s.call('POST', '/v1/credentials', { target: 'tools-mcp', scopes: ['mcp'], reason: 'bench' }, session);
      if (r.status !== 201) throw new Error(`token: ${r.status} ${JSON.stringify(r.body)}`);
      tokens.push(r.body.credential.access_token as string);
    }
    const direct: Client[] = [];
    const gated: Client[] = [];
    for (const t of tokens) {
      direct.push((await mcpClient(up.url, t)).client);
      gated.push((await mcpClient(resource, t)).client);
    }
    clients.push(...direct, ...gated);
    // Alternate (direct, gateway, direct, gateway) so a load swing on the machine hits both.
    const rates = { direct: [] as number[], gateway: [] as number[] };
    for (let round = 0; round < 2; round++) {
      rates.direct.push(await throughput(direct));
      rates.gateway.push(await throughput(gated));
    }
    const d = Math.max(...rates.direct);
    const g = Math.max(...rates.gateway);
    const latD = await latencies(direct[0]!);
    const latG = await latencies(gated[0]!);
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
    });
  } finally {
    for (const c of clients) await c.close().catch(() => {});
    await s?.close();
    await up?.close();
  }
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
