// `portcullis reviews …`, `portcullis lifecycle …` and `portcullis report`: access review
// campaigns, rotation / offboarding, and the evidence report for auditors.
import type { Command } from 'commander';
import { writeFileSync } from 'node:fs';
import { api, CliError, EXIT, type ApiBody, type ApiQuery } from '../client.ts';
import { out, table } from '../output.ts';
import { json } from '../args.ts';

const lastUse = (u: Record<string, unknown>) => String(u.last_used_at ?? u.last_authenticated_at ?? u.last_allowed_at ?? '-');

export function register(program: Command): void {
  const reviews = program.command('reviews').description('access review campaigns: open, list, show, decide, close');
  reviews
    .command('open')
    .argument('<name>', 'a name for the campaign')
    .option('--boundary <b>')
    .option('--environment <e>')
    .option('--owner <owner>', 'identities owned by this owner (team:payments, user:…)')
    .option('--kind <kind>', 'workload, agent, service, … (user: review people)')
    .option('--deadline <duration>', 'how long reviewers have, e.g. 14d')
    .option('--default-action <action>', 'suspend | revoke: what an unanswered item gets at the deadline')
    .option('--reviewer <id...>', 'reviewers for every item besides the owners')
    .option('-q, --quiet', 'print only the campaign id (for scripts: RVW=$(portcullis reviews open … -q))')
    .addOption(json())
    .action(async (name: string, o: { boundary?: string; environment?: string; owner?: string; kind?: string; deadline?: string; defaultAction?: string; reviewer?: string[]; quiet?: boolean; json?: boolean }) => {
      const scope = { ...(o.boundary && { boundary: o.boundary }), ...(o.environment && { environment: o.environment }), ...(o.owner && { owner: o.owner }), ...(o.kind && { kind: o.kind }) };
      const r = await api((c) => c.POST('/v1/reviews', { body: { name, scope, ...(o.deadline && { deadline: o.deadline }), ...(o.defaultAction && { default_action: o.defaultAction as ApiBody<'/v1/reviews', 'post'>['default_action'] }), ...(o.reviewer && { reviewers: o.reviewer }) } }));
      if (o.quiet && !o.json) process.stdout.write(`${r.campaign.id}\n`);
      else out(!!o.json, r, () => `opened ${r.campaign.id} with ${r.items.length} items; deadline ${r.campaign.deadline_at}, then ${r.campaign.default_action}`);
    });
  reviews
    .command('list')
    .option('--status <status>', 'open | closed')
    .option('--mine', 'the undecided items I am a reviewer of')
    .addOption(json())
    .action(async (o: { status?: string; mine?: boolean; json?: boolean }) => {
      if (o.mine) {
        const r = await api((c) => c.GET('/v1/reviews/mine'));
        out(!!o.json, r, () => (r.items.length ? table(r.items.map((i) => ({ ...i, last_use: lastUse(i.usage) })), ['id', 'identity_id', 'kind', 'ref', 'last_use']) : 'nothing to review'));
        return;
      }
      const r = await api((c) => c.GET('/v1/reviews', { params: { query: { ...(o.status && { status: o.status as ApiQuery<'/v1/reviews', 'get'>['status'] }) } } }));
      out(!!o.json, r, () => (r.campaigns.length ? table(r.campaigns.map((c) => ({ ...c, decided: `${c.progress?.decided ?? 0}/${c.progress?.items ?? 0}` })), ['id', 'name', 'status', 'deadline_at', 'default_action', 'decided']) : 'no campaigns'));
    });
  reviews
    .command('show')
    .argument('<id>', 'campaign id')
    .addOption(json())
    .action(async (id: string, o: { json?: boolean }) => {
      const r = await api((c) => c.GET('/v1/reviews/{id}', { params: { path: { id } } }));
      out(!!o.json, r, () => `${r.campaign.name} (${r.campaign.status}, deadline ${r.campaign.deadline_at}, then ${r.campaign.default_action})\n` + table(r.items.map((i) => ({ ...i, last_use: lastUse(i.usage), decision: i.decision ?? '-', outcome: i.outcome ?? '-' })), ['id', 'identity_id', 'kind', 'ref', 'last_use', 'decision', 'outcome']));
    });
  reviews
    .command('decide')
    .argument('<item>', 'review item id')
    .argument('<decision>', 'keep | revoke | narrow')
    .option('--comment <text>')
    .addOption(json())
    .action(async (item: string, decision: string, o: { comment?: string; json?: boolean }) => {
      if (!['keep', 'revoke', 'narrow'].includes(decision)) throw new CliError(`decision must be keep, revoke or narrow, not "${decision}"`, EXIT.usage);
      const r = await api((c) => c.POST('/v1/reviews/items/{id}/decision', { params: { path: { id: item } }, body: { decision: decision as ApiBody<'/v1/reviews/items/{id}/decision', 'post'>['decision'], ...(o.comment && { comment: o.comment }) } }));
      out(!!o.json, r, () => `${r.id}: ${r.decision} (${r.outcome ?? 'recorded'})`);
    });
  reviews
    .command('close')
    .argument('<id>', 'campaign id')
    .requiredOption('--reason <text>')
    .addOption(json())
    .action(async (id: string, o: { reason: string; json?: boolean }) => {
      const r = await api((c) => c.POST('/v1/reviews/{id}/close', { params: { path: { id } }, body: { reason: o.reason } }));
      out(!!o.json, r, () => `closed ${r.campaign.id}; ${r.items.filter((i) => i.by_default).length} unanswered items got ${r.campaign.default_action}`);
    });

  const lifecycle = program.command('lifecycle').description('rotation due dates, flags, owner offboarding');
  lifecycle.command('rotation').addOption(json()).action(async (o: { json?: boolean }) => {
    const r = await api((c) => c.GET('/v1/lifecycle/rotation'));
    out(!!o.json, r, () => table(r.rotation.map((x) => ({ ...x, overdue: x.overdue ? 'OVERDUE' : '' })), ['kind', 'id', 'holder', 'due_at', 'overdue', 'how']));
  });
  lifecycle.command('flags').addOption(json()).action(async (o: { json?: boolean }) => {
    const r = await api((c) => c.GET('/v1/lifecycle/flags'));
    out(!!o.json, r, () => (r.flags.length ? table(r.flags, ['identity_id', 'code', 'raised_at']) : 'no open flags'));
  });
  lifecycle
    .command('offboard-owner')
    .argument('<owner>', 'the human leaving (user:…)')
    .option('--successor <id>', 'who takes over what they owned (user:… or team:…)')
    .requiredOption('--reason <text>')
    .addOption(json())
    .action(async (owner: string, o: { successor?: string; reason: string; json?: boolean }) => {
      const r = await api((c) => c.POST('/v1/lifecycle/offboard-owner', { body: { owner, reason: o.reason, ...(o.successor && { successor: o.successor }) } }));
      out(!!o.json, r, () => (r.identities.length ? table(r.identities, ['id', 'action', 'to']) : `${owner} offboarded; owned nothing`));
    });

  program
    .command('report')
    .description('evidence for auditors: rotation, reviews, revocations, break-glass, access requests, with the audit chain verification')
    .requiredOption('--period <period>', '2026-Q4, 2026-11, 2026 or 7d (the last 7 days)')
    .option('--format <format>', 'json | html | pdf', 'json')
    .option('--out <file>', 'write to this file (default: stdout; pdf needs it)')
    .addOption(json())
    .action(async (o: { period: string; format: string; out?: string; json?: boolean }) => {
      if (!['json', 'html', 'pdf'].includes(o.format)) throw new CliError(`--format must be json, html or pdf, not "${o.format}"`, EXIT.usage);
      if (o.format === 'pdf' && !o.out) throw new CliError('--format pdf needs --out FILE', EXIT.usage);
      const period = o.period;
      if (o.format === 'json') {
        const r = await api((c) => c.GET('/v1/reports/evidence', { params: { query: { period } } }));
        if (o.out) writeFileSync(o.out, JSON.stringify(r, null, 2));
        else out(true, r, () => '');
        return;
      }
      const html = (await api((c) => c.GET('/v1/reports/evidence', { params: { query: { period, format: 'html' } }, parseAs: 'text' }))) as string;
      if (o.format === 'html') {
        if (o.out) writeFileSync(o.out, html);
        else process.stdout.write(html);
        return;
      }
      const { htmlToPdf } = await import('../../governance/report/pdf.ts');
      writeFileSync(o.out!, await htmlToPdf(html));
      out(!!o.json, { written: o.out }, () => `wrote ${o.out}`);
    });
}
