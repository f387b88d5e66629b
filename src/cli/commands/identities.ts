// `portcullis identities …`: the inventory of identities.
import type { Command } from 'commander';
import { api, CliError, EXIT } from '../client.ts';
import type { ApiQuery, ApiBody } from '../client.ts';
import { out, table } from '../output.ts';
import { json } from '../args.ts';

export function register(program: Command): void {
  const identities = program.command('identities').description('the inventory of identities');
  identities
    .command('list')
    .option('--kind <kind>')
    .option('--boundary <b>')
    .option('--owner <owner>')
    .option('--status <status>')
    .addOption(json())
    .action(async (o: Record<string, string | boolean | undefined>) => {
      const query: Record<string, string> = {};
      for (const k of ['kind', 'boundary', 'owner', 'status']) if (typeof o[k] === 'string') query[k] = o[k] as string;
      const r = await api((c) => c.GET('/v1/identities', { params: { query: query as ApiQuery<'/v1/identities', 'get'> } }));
      out(!!o.json, r, () => table(r.identities, ['id', 'kind', 'boundary', 'environment', 'owner', 'status', 'last_authenticated_at']));
    });
  identities.command('show').argument('<id>').addOption(json()).action(async (id: string, o: { json?: boolean }) => {
    const r = await api((c) => c.GET('/v1/identities/{id}', { params: { path: { id } } }));
    out(!!o.json, r, () => Object.entries(r).map(([k, v]) => `${k.padEnd(22)} ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`).join('\n'));
  });
  identities
    .command('declare')
    .argument('<id>')
    .requiredOption('--kind <kind>', 'workload | agent | service-account | user')
    .requiredOption('--boundary <b>')
    .requiredOption('--environment <env>')
    .option('--owner <owner>')
    .option('--purpose <text>')
    .addOption(json())
    .action(async (id: string, o: { kind: string; boundary: string; environment: string; owner?: string; purpose?: string; json?: boolean }) => {
      const { json: j, ...body } = o;
      const r = await api((c) => c.POST('/v1/identities', { body: { id, ...body } as ApiBody<'/v1/identities', 'post'> }));
      out(!!j, r, () => `declared ${id}`);
    });
  identities
    .command('update')
    .argument('<id>')
    .option('--owner <owner>')
    .option('--purpose <text>')
    .option('--label <k=v...>', 'replace labels')
    .addOption(json())
    .action(async (id: string, o: { owner?: string; purpose?: string; label?: string[]; json?: boolean }) => {
      const body: ApiBody<'/v1/identities/{id}', 'patch'> = {};
      if (o.owner !== undefined) body.owner = o.owner;
      if (o.purpose !== undefined) body.purpose = o.purpose;
      if (o.label) body.labels = Object.fromEntries(o.label.map((l) => l.split('=', 2)));
      const r = await api((c) => c.PATCH('/v1/identities/{id}', { params: { path: { id } }, body }));
      out(!!o.json, r, () => `updated ${id}`);
    });
  identities
    .command('bind')
    .description('bind an identity to the trusts allowed to prove it')
    .argument('<id>')
    .option('--trust <name...>', 'trust name(s) allowed to prove it')
    .option('--none', 'no trust: only credentials Portcullis issues for it (API keys, SVIDs)')
    .addOption(json())
    .action(async (id: string, o: { trust?: string[]; none?: boolean; json?: boolean }) => {
      if ((o.trust === undefined) === (o.none !== true)) throw new CliError('give either --trust <name...> or --none', EXIT.usage);
      const r = await api((c) => c.PUT('/v1/identities/{id}/trusts', { params: { path: { id } }, body: { trusts: o.trust ?? [] } }));
      out(!!o.json, r, () => `${id} is bound to ${r.bound_trusts && r.bound_trusts.length > 0 ? r.bound_trusts.join(', ') : 'no trust (Portcullis-issued credentials only)'}`);
    });
  for (const verb of ['suspend', 'activate', 'offboard'] as const) {
    identities
      .command(verb)
      .argument('<id>')
      .option('--reason <text>')
      .addOption(json())
      .action(async (id: string, o: { reason?: string; json?: boolean }) => {
        const r = await api((c) => c.POST(`/v1/identities/{id}/${verb}`, { params: { path: { id } }, body: { reason: o.reason ?? '' } }));
        out(!!o.json, r, () => `${id} is now ${r.status}${verb === 'activate' ? '' : '; its live sessions have ended'}`);
      });
  }
}
