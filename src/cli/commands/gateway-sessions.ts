// `portcullis sessions list|show|terminate|verify` (gateway sessions, docs/gateways.md) and
// `portcullis db connect GATEWAY`: psql through a PostgreSQL gateway with the session token as its
// password (in the environment, never on a command line), so nobody copies a token by hand.
import { spawn } from 'node:child_process';
import type { Command } from 'commander';
import { CliError, EXIT, address, api, sessionToken } from '../client.ts';
import type { ApiQuery } from '../client.ts';
import { out, table } from '../output.ts';
import { json } from '../args.ts';

export function registerGatewaySessions(sessions: Command): void {
  sessions
    .command('list')
    .description('gateway sessions, newest first (--mine: your own; otherwise session.read)')
    .option('--mine', 'only your own sessions')
    .option('--identity <id>')
    .option('--target <name>')
    .option('--gateway <name>')
    .option('--live', 'only live sessions')
    .option('--limit <n>', 'at most', '50')
    .option('-q, --quiet', 'print only the session ids, newest first (for scripts: SID=$(portcullis sessions list --limit 1 -q))')
    .addOption(json())
    .action(async (o: { mine?: boolean; identity?: string; target?: string; gateway?: string; live?: boolean; limit: string; quiet?: boolean; json?: boolean }) => {
      const query: Record<string, string> = { limit: o.limit };
      if (o.mine) query.mine = 'true';
      for (const k of ['identity', 'target', 'gateway'] as const) if (o[k]) query[k] = o[k]!;
      if (o.live) query.live = 'true';
      const r = await api((c) => c.GET('/v1/sessions', { params: { query: query as ApiQuery<'/v1/sessions', 'get'> } }));
      if (o.quiet && !o.json) return void process.stdout.write(r.sessions.map((s) => `${s.id}\n`).join(''));
      out(!!o.json, r, () => table(r.sessions.map((s) => ({ ...s, state: s.live ? 'live' : `ended ${s.end_reason ?? ''}` })), ['id', 'identity', 'gateway', 'target', 'started_at', 'state', 'records']));
    });
  sessions
    .command('show <id>')
    .description('a gateway session: what started it, each statement or command, how it ended, and whether its records verify')
    .addOption(json())
    .action(async (id: string, o: { json?: boolean }) => {
      const r = await api((c) => c.GET('/v1/sessions/{id}', { params: { path: { id }, query: { verify: 'true' } } }));
      out(!!o.json, r, () => {
        const s = r.session;
        const head = `${s.id} ${s.identity} → ${s.gateway} (${s.target}) from ${s.started_at}${s.ended_at ? ` to ${s.ended_at} (${s.end_reason})` : ' (live)'}`;
        const lines = r.records.map((x) => `${String(x.payload.n).padStart(4)} ${x.time} ${x.type}${x.decision ? ` ${x.decision}` : ''} ${describe(x.payload)}`);
        const v = r.verification ? `verification: ${r.verification.ok ? 'ok' : `FAILED: ${r.verification.reason ?? ''}`}` : '';
        return [head, ...lines, v].join('\n');
      });
    });
  sessions
    .command('terminate <id>')
    .description('end a live gateway session wherever it lives (another identity’s: session.terminate)')
    .option('--reason <text>')
    .addOption(json())
    .action(async (id: string, o: { reason?: string; json?: boolean }) => {
      const r = (await api((c) => c.POST('/v1/sessions/{id}/terminate', { params: { path: { id } }, body: { ...(o.reason && { reason: o.reason }) } }))) as { session: string; here: boolean; lease?: string };
      out(!!o.json, r, () => `terminated ${r.session}${r.lease ? ` (lease ${r.lease} revoked)` : ''}`);
    });
  sessions
    .command('verify <id>')
    .description('the session stream verifies and the session has every record 1..N; exit 1 if not')
    .addOption(json())
    .action(async (id: string, o: { json?: boolean }) => {
      const r = await api((c) => c.GET('/v1/sessions/{id}', { params: { path: { id }, query: { verify: 'true' } } })) as { verification: { ok: boolean; records: number; missing: number[]; complete: boolean; reason?: string } };
      const v = r.verification;
      out(!!o.json, v, () => (v.ok ? `ok: ${v.records} records${v.complete ? '' : ' (session still live)'}` : `FAILED: ${v.reason ?? 'unknown'}`));
      if (!v.ok) throw new CliError(`session ${id} does not verify`, EXIT.failure);
    });
}

function describe(p: Record<string, unknown>): string {
  if (typeof p.statement === 'string' || p.kind === 'unparsable') return `${String(p.kind)} ${String(p.statement ?? '(unparsable)')}${p.rows !== undefined ? ` → ${String(p.rows)} rows` : ''}${p.sqlstate ? ` [${String(p.sqlstate)}]` : ''}`;
  // An MCP gateway's call record: the tool, its (redacted) arguments, what became of it.
  if (typeof p.method === 'string' && typeof p.server === 'string') {
    const approval = p.approval as { approver?: unknown; outcome?: unknown } | undefined;
    return `${p.server}/${String(p.name)} ${JSON.stringify(p.arguments ?? {})} → ${String(p.outcome ?? '')}${approval ? ` (approval by ${String(approval.approver)}: ${String(approval.outcome)})` : ''}`;
  }
  if (typeof p.reason === 'string') return p.reason;
  if (typeof p.command === 'string') return p.command;
  return '';
}

export function registerDb(program: Command): void {
  program
    .command('db')
    .description('databases through Portcullis gateways')
    .command('connect')
    .description('psql through a PostgreSQL gateway, logged in as you (the session token is psql\'s password, passed in its environment); psql arguments after --')
    .argument('<gateway>')
    .argument('[psql...]', 'arguments for psql, e.g. -- -c "SELECT 1"')
    .option('--reason <text>', 'why: the purpose of the session (decided and recorded)')
    .option('--ticket <id>')
    .option('--psql <path>', 'the psql to run', 'psql')
    .action(async (name: string, psqlArgs: string[], o: { reason?: string; ticket?: string; psql: string }) => {
      const token = sessionToken();
      const { gateways } = (await api((c) => c.GET('/v1/gateways'))) as { gateways: { name: string; kind: string; target: string; host: string; port: number; tls: boolean }[] };
      const g = gateways.find((x) => x.name === name);
      if (!g) throw new CliError(`no gateway named ${name} (known: ${gateways.map((x) => x.name).join(', ') || 'none'})`, EXIT.usage);
      if (g.kind !== 'postgres') throw new CliError(`gateway ${name} is a ${g.kind} gateway, not postgres`, EXIT.usage);
      // A gateway listening on every address is reached at the server's host.
      const host = g.host === '0.0.0.0' || g.host === '::' ? new URL(address()).hostname : g.host;
      const esc = (s: string) => s.replace(/\\/g, '\\\\').replace(/ /g, '\\ ');
      const options = [o.reason && `-c portcullis.reason=${esc(o.reason)}`, o.ticket && `-c portcullis.ticket=${esc(o.ticket)}`].filter(Boolean).join(' ');
      const env = {
        ...process.env,
        PGHOST: host,
        PGPORT: String(g.port),
        PGDATABASE: g.target,
        PGUSER: process.env.PGUSER ?? 'portcullis',
        PGPASSWORD: token,
        PGSSLMODE: g.tls ? (process.env.PGSSLMODE ?? 'require') : 'disable',
        ...(options && { PGOPTIONS: options }),
      };
      const child = spawn(o.psql, psqlArgs, { stdio: 'inherit', env });
      const code = await new Promise<number>((resolve, reject) => {
        child.once('error', (err) => reject(new CliError(`cannot run ${o.psql}: ${err.message}`, EXIT.unavailable)));
        child.once('exit', (c) => resolve(c ?? 1));
      });
      process.exitCode = code;
    });
}
