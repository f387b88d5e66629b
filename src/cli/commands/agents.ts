// `portcullis agents list|show|set|assign|assignments|end` (docs/agents.md): agents' sponsors and
// tools, and assignments — an agent acting for you with a declared intent, tools and audiences.
import type { Command } from 'commander';
import { api } from '../client.ts';
import { out, table } from '../output.ts';
import { json } from '../args.ts';

const list = (v: string, prev: string[] = []) => [...prev, ...v.split(',').map((s) => s.trim()).filter(Boolean)];

export function register(program: Command): void {
  const agents = program.command('agents').description('AI agents: sponsors, tools, and assignments (an agent acting for you, per task)');

  agents
    .command('list')
    .description('every agent with its sponsor, model and tools (identity.read)')
    .addOption(json())
    .action(async (o: { json?: boolean }) => {
      const r = await api((c) => c.GET('/v1/agents'));
      out(!!o.json, r, () =>
        table(
          r.agents.map((a) => ({ id: a.identity.id, status: a.identity.status, owner: a.identity.owner ?? '', sponsor: a.sponsor ?? '(none)', model: a.model ?? '', tools: a.tools.join(',') })),
          ['id', 'status', 'owner', 'sponsor', 'model', 'tools'],
        ),
      );
    });

  agents
    .command('show <agent>')
    .description('one agent and its profile')
    .addOption(json())
    .action(async (id: string, o: { json?: boolean }) => {
      const r = await api((c) => c.GET('/v1/agents/{id}', { params: { path: { id } } }));
      out(!!o.json, r, () => `${r.identity.id} (${r.identity.status}, ${r.identity.boundary})\n  owner    ${r.identity.owner ?? '-'}\n  sponsor  ${r.sponsor ?? '(none: a finding)'}\n  model    ${r.model ?? '-'} (${r.provider ?? '-'})\n  tools    ${r.tools.join(', ') || '(not limited by the profile)'}`);
    });

  agents
    .command('set <agent>')
    .description("set an agent's sponsor (the accountable human), model, provider and the tools it may ever reach (agent.manage)")
    .requiredOption('--sponsor <user>', 'the human who answers for the agent, e.g. user:alice@example.com')
    .option('--model <name>')
    .option('--provider <name>')
    .option('--tool <server/tool>', 'a tool it may reach ("server/*" for all of a server); repeat or comma-separate', list)
    .addOption(json())
    .action(async (id: string, o: { sponsor: string; model?: string; provider?: string; tool?: string[]; json?: boolean }) => {
      const body = { sponsor: o.sponsor, ...(o.model && { model: o.model }), ...(o.provider && { provider: o.provider }), ...(o.tool && { tools: o.tool }) };
      const r = await api((c) => c.PUT('/v1/agents/{id}', { params: { path: { id } }, body }));
      out(!!o.json, r, () => `${r.identity.id}: sponsor ${r.sponsor}, tools ${r.tools.join(', ') || '(any)'}`);
    });

  agents
    .command('assign <agent>')
    .description('give an agent an assignment: it acts for you with this intent, these tools and audiences until it ends (assignment.create)')
    .requiredOption('--intent <text>', 'what the agent is to do')
    .requiredOption('--tool <server/tool>', 'a tool it may call under it; repeat or comma-separate', list)
    .requiredOption('--audience <uri>', 'the MCP server or API (RFC 8707 resource) tokens may be issued for; repeat or comma-separate', list)
    .option('--ttl <duration>', 'how long it lasts (default 1h, at most 24h)')
    .option('--parent <assignment>', 'an agent handing part of its own assignment to a sub-agent')
    .addOption(json())
    .action(async (id: string, o: { intent: string; tool: string[]; audience: string[]; ttl?: string; parent?: string; json?: boolean }) => {
      const body = { intent: o.intent, tools: o.tool, audiences: o.audience, ...(o.ttl && { ttl: o.ttl }), ...(o.parent && { parent: o.parent }) };
      const r = await api((c) => c.POST('/v1/agents/{id}/assignments', { params: { path: { id } }, body }));
      const a = r.assignment;
      out(!!o.json, r, () => `${a.id}: ${a.agent} acts for ${a.delegator} until ${a.expires_at}\n  intent     ${a.intent}\n  tools      ${a.tools.join(', ')}\n  audiences  ${a.audiences.join(', ')}`);
    });

  agents
    .command('assignments [agent]')
    .description('assignments (of one agent, or all): yours — as delegator, agent or sponsor — or, with --all, anyone\'s (assignment.read)')
    .option('--all', "not only yours: anyone's (assignment.read)")
    .option('--live', 'only active ones')
    .option('--delegator <user>')
    .addOption(json())
    .action(async (id: string | undefined, o: { all?: boolean; live?: boolean; delegator?: string; json?: boolean }) => {
      const query = { ...(!o.all && { mine: 'true' as const }), ...(o.live && { live: 'true' as const }), ...(o.delegator && { delegator: o.delegator }) };
      const r = await api((c) => (id === undefined ? c.GET('/v1/assignments', { params: { query } }) : c.GET('/v1/agents/{id}/assignments', { params: { path: { id }, query } })));
      out(!!o.json, r, () => table(r.assignments.map((a) => ({ ...a, tools: a.tools.join(','), state: a.status === 'ended' ? `ended: ${a.ended_reason ?? ''}` : a.status })), ['id', 'agent', 'delegator', 'depth', 'intent', 'tools', 'expires_at', 'state']));
    });

  agents
    .command('end <assignment>')
    .description('end an assignment now (with its sub-assignments): its tokens stop working and gateway sessions on it end')
    .requiredOption('--reason <text>')
    .addOption(json())
    .action(async (id: string, o: { reason: string; json?: boolean }) => {
      const r = await api((c) => c.POST('/v1/assignments/{id}/end', { params: { path: { id } }, body: { reason: o.reason } }));
      out(!!o.json, r, () => `${r.assignment.id}: ${r.assignment.status}${r.assignment.ended_reason ? ` (${r.assignment.ended_reason})` : ''}`);
    });
}
