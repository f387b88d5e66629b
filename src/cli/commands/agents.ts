// `portcullis agents list|show|set|assign|assignments|end|token` (docs/agents.md): agents' sponsors
// and tools, assignments — an agent acting for you with a declared intent, tools and audiences —
// and the assignment-scoped token an agent gets for one of them (RFC 8693).
import type { Command } from 'commander';
import { chmodSync, writeFileSync } from 'node:fs';
import { CliError, EXIT, api, sessionToken } from '../client.ts';
import { out, table } from '../output.ts';
import { json } from '../args.ts';
import { fileError } from '../errors.ts';
import { secretInput } from './login.ts';
import { gatewayResource } from '../mcp-client.ts';

const JWT = 'urn:ietf:params:oauth:token-type:jwt';

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
    .option('--audience <uri>', 'the MCP server or API (RFC 8707 resource) tokens may be issued for; repeat or comma-separate', list)
    .option('--gateway <name>', 'an MCP gateway of this server: its resource identifier is an audience; repeat', list)
    .option('--ttl <duration>', 'how long it lasts (default 1h, at most 24h)')
    .option('--parent <assignment>', 'an agent handing part of its own assignment to a sub-agent')
    .option('-q, --quiet', 'print only the assignment id (for scripts: ASG=$(portcullis agents assign … -q))')
    .addOption(json())
    .action(async (id: string, o: { intent: string; tool: string[]; audience?: string[]; gateway?: string[]; ttl?: string; parent?: string; quiet?: boolean; json?: boolean }) => {
      const audiences = [...(o.audience ?? []), ...(await Promise.all((o.gateway ?? []).map(gatewayResource)))];
      if (audiences.length === 0) throw new CliError('name where its tokens may be used: --audience URI or --gateway NAME (an MCP gateway)', EXIT.usage);
      const body = { intent: o.intent, tools: o.tool, audiences, ...(o.ttl && { ttl: o.ttl }), ...(o.parent && { parent: o.parent }) };
      const r = await api((c) => c.POST('/v1/agents/{id}/assignments', { params: { path: { id } }, body }));
      const a = r.assignment;
      if (o.quiet && !o.json) return void process.stdout.write(`${a.id}\n`);
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
    .command('token <assignment>')
    .description("the agent's assignment-scoped token (RFC 8693): your session is the subject, the agent proves itself (--actor-token); for one gateway or resource")
    .option('--gateway <name>', 'an MCP gateway of this server: the token is for its resource identifier')
    .option('--resource <uri>', 'an audience of the assignment (RFC 8707)')
    .option('--actor-token <jwt|->', "the agent's own proof (an OIDC token or JWT-SVID it logs in with); `-` reads stdin")
    .option('--actor-token-file <file>', "read the agent's proof from a file")
    .option('--out <file>', 'write the token to this file (mode 0600) instead of stdout')
    .addOption(json())
    .action(async (id: string, o: { gateway?: string; resource?: string; actorToken?: string; actorTokenFile?: string; out?: string; json?: boolean }) => {
      if ((o.gateway === undefined) === (o.resource === undefined)) throw new CliError('give one of --gateway NAME or --resource URI: the one place the token is for', EXIT.usage);
      if ((o.actorToken === undefined) === (o.actorTokenFile === undefined)) throw new CliError("give one of --actor-token - (stdin) or --actor-token-file FILE: the agent's own proof", EXIT.usage);
      const resource = o.resource ?? (await gatewayResource(o.gateway!));
      const subject = sessionToken();
      const proof = await secretInput('--actor-token', o.actorToken, o.actorTokenFile);
      // The agent proves itself: its own session is the actor token.
      const actor = await api((c) => c.POST('/v1/auth/token', { body: { token: proof } }), { auth: false });
      const form = { grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange' as const, assignment: id, resource, subject_token: subject, subject_token_type: JWT as typeof JWT, actor_token: actor.session_token, actor_token_type: JWT as typeof JWT };
      const t = await api((c) =>
        c.POST('/oauth2/token', { body: form, bodySerializer: (b: Record<string, string>) => new URLSearchParams(b).toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } }),
      { auth: false });
      const summary = { assignment: id, agent: actor.identity.id, resource, expires_in: t.expires_in, ...(o.out !== undefined && { file: o.out }) };
      if (o.out === undefined) return out(!!o.json, t, () => t.access_token);
      try {
        writeFileSync(o.out, `${t.access_token}\n`, { mode: 0o600 });
        chmodSync(o.out, 0o600);
      } catch (err) {
        throw fileError(err, '--out', o.out) ?? err;
      }
      out(!!o.json, summary, () => `token for ${actor.identity.id} on ${resource} (assignment ${id}), valid ${t.expires_in}s: written to ${o.out} (0600)`);
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
