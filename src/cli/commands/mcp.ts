// `portcullis mcp tools|call GATEWAY …`: an agent's calls through an MCP gateway with its
// assignment token (docs/agents.md) — the tools it may call, and one call, waiting (with
// progress on stderr) while the gateway holds it for a human's approval.
import type { Command } from 'commander';
import { CliError, EXIT } from '../client.ts';
import { out, table } from '../output.ts';
import { json, log } from '../args.ts';
import { connectMcp, gatewayResource, mcpError, tokenFromFile } from '../mcp-client.ts';

const OUTCOME = 'portcullis.dev/outcome';
/** Portcullis' refusals (the gateway's outcomes) are exit 3; a tool's own error is exit 1. */
const REFUSED = new Set(['denied', 'refused', 'approval-denied', 'approval-timeout']);

const collect = (v: string, prev: string[] = []) => [...prev, v];

/** `--arg key=value` (the value as JSON when it parses: 1042, true, "x"; else the text) and `--args JSON`, merged. */
export function callArguments(args: string[] = [], argsJson?: string): Record<string, unknown> {
  let base: Record<string, unknown> = {};
  if (argsJson !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(argsJson);
    } catch {
      throw new CliError('--args: not JSON; give an object, e.g. --args \'{"order_id": 1042}\'', EXIT.usage);
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new CliError('--args: expected a JSON object, e.g. {"order_id": 1042}', EXIT.usage);
    base = parsed as Record<string, unknown>;
  }
  for (const a of args) {
    const eq = a.indexOf('=');
    if (eq <= 0) throw new CliError(`--arg ${a}: expected key=value, e.g. --arg order_id=1042`, EXIT.usage);
    const key = a.slice(0, eq);
    const raw = a.slice(eq + 1);
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      /* plain text */
    }
    base[key] = value;
  }
  return base;
}

function timeoutMs(text: string): number {
  const m = /^(\d{1,5})(ms|s|m)$/.exec(text);
  const ms = m ? Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 's' ? 1000 : 60_000) : NaN;
  if (!(ms >= 1000 && ms <= 3_600_000)) throw new CliError(`--timeout ${text}: expected a duration between 1s and 60m, e.g. 10m`, EXIT.usage);
  return ms;
}

export function register(program: Command): void {
  const mcp = program.command('mcp').description("an agent's side of an MCP gateway: its tools and calls, with an assignment token (portcullis agents token)");

  mcp
    .command('tools <gateway>')
    .description('the tools this token may call through the gateway (tools/list, filtered by the assignment and policy)')
    .requiredOption('--token-file <file>', 'the assignment token (portcullis agents token … --out FILE)')
    .addOption(json())
    .action(async (gateway: string, o: { tokenFile: string; json?: boolean }) => {
      const token = tokenFromFile(o.tokenFile);
      const url = await gatewayResource(gateway);
      const { client, close } = await connectMcp(url, token);
      try {
        const r = await client.listTools().catch((err: unknown) => Promise.reject(mcpError(err, url)));
        out(!!o.json, r, () => table(r.tools.map((t) => ({ name: t.name, description: t.description ?? '' })), ['name', 'description']));
      } finally {
        await close();
      }
    });

  mcp
    .command('call <gateway> <tool>')
    .description('call a tool through the gateway; a call held for approval waits (progress on stderr) until it is approved, denied or times out')
    .requiredOption('--token-file <file>', 'the assignment token (portcullis agents token … --out FILE)')
    .option('--arg <key=value>', 'an argument (value as JSON when it parses, else text); repeat', collect)
    .option('--args <json>', 'the arguments as one JSON object')
    .option('--timeout <duration>', 'give up after this long without progress', '10m')
    .addOption(json())
    .action(async (gateway: string, tool: string, o: { tokenFile: string; arg?: string[]; args?: string; timeout: string; json?: boolean }) => {
      const args = callArguments(o.arg, o.args);
      const timeout = timeoutMs(o.timeout);
      const token = tokenFromFile(o.tokenFile);
      const url = await gatewayResource(gateway);
      const { client, close } = await connectMcp(url, token);
      let result: { content?: unknown[]; isError?: boolean; _meta?: Record<string, unknown> };
      try {
        result = (await client
          .callTool({ name: tool, arguments: args }, undefined, {
            timeout,
            resetTimeoutOnProgress: true,
            onprogress: (p) => {
              if (p.message) log(p.message);
            },
          })
          .catch((err: unknown) => Promise.reject(mcpError(err, url)))) as typeof result;
      } finally {
        await close();
      }
      const text = (result.content ?? []).map((c) => ((c as { type?: string }).type === 'text' ? (c as { text: string }).text : JSON.stringify(c))).join('\n');
      const outcome = result._meta?.[OUTCOME];
      if (o.json) out(true, result, () => '');
      else if (!result.isError) process.stdout.write(`${text}\n`);
      if (result.isError) {
        const refused = typeof outcome === 'string' && REFUSED.has(outcome);
        throw new CliError(o.json ? `${tool}: ${refused ? outcome : 'the tool reported an error'}` : text, refused ? EXIT.denied : EXIT.failure);
      }
    });
}
