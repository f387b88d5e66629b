// `portcullis request`, `requests …`, `grants …`, `break-glass …`, `webhooks …`: privileged access.
import type { Command } from 'commander';
import { CliError, EXIT, api } from '../client.ts';
import type { ApiBody, ApiQuery } from '../client.ts';
import { out, table } from '../output.ts';
import { json, parseEntity } from '../args.ts';

export function register(program: Command): void {
  program
    .command('request')
    .description('ask for just-in-time access: a role, a resource with actions, or a credential for a target')
    .option('--role <name>', 'a role (temporary membership)')
    .option('--resource <entity>', 'e.g. Database::"orders" (with --action)')
    .option('--action <action...>', 'actions on --resource, e.g. db.admin')
    .option('--target <name>', 'a credential target, e.g. orders-db')
    .option('--permission <set>', 'with --target: the permission set')
    .requiredOption('--for <duration>', 'how long, e.g. 1h (capped by policy)')
    .requiredOption('--reason <text>', 'why')
    .option('--ticket <ref>', 'ticket reference (required by some rules)')
    .option('--start-at <time>', 'ISO-8601 start (default now)')
    .option('--session-bound', 'end the grant when you log out')
    .option('-q, --quiet', 'print only the request id (for scripts: REQ=$(portcullis request … -q))')
    .addOption(json())
    .action(async (o: { role?: string; resource?: string; action?: string[]; target?: string; permission?: string; for: string; reason: string; ticket?: string; startAt?: string; sessionBound?: boolean; quiet?: boolean; json?: boolean }) => {
      const kinds = [o.role, o.resource, o.target].filter((x) => x !== undefined);
      if (kinds.length !== 1) throw new CliError('give exactly one of --role, --resource (with --action) or --target', EXIT.usage);
      if (o.resource !== undefined && !o.action) throw new CliError('--resource needs at least one --action', EXIT.usage);
      const what =
        o.role !== undefined ? { role: o.role }
        : o.resource !== undefined ? { resource: parseEntity(o.resource), actions: o.action }
        : { credential: { target: o.target, ...(o.permission && { permission: o.permission }) } };
      const body = { ...what, duration: o.for, reason: o.reason, ...(o.ticket && { ticket: o.ticket }), ...(o.startAt && { start_at: o.startAt }), ...(o.sessionBound && { session_bound: true }) };
      const r = (await api((c) => c.POST('/v1/access-requests', { body: body as ApiBody<'/v1/access-requests', 'post'> }))) as RequestView;
      if (o.quiet && !o.json) {
        process.stdout.write(`${r.id}\n`);
        process.stderr.write(`${r.status_line}\n`);
        return;
      }
      out(!!o.json, r, () => requestLine(r));
    });

  const requests = program.command('requests').description('access requests: list, show, approve, deny, cancel, comment');
  requests
    .command('list', { isDefault: true })
    .description('yours by default; --reviewable: the ones you could approve or deny now; --all')
    .option('--reviewable', 'pending requests of others that you could act on now')
    .option('--all', 'everyone\'s you may see: all with access.read, else yours and those you may review')
    .option('--status <status>', 'pending | approved | denied | cancelled | expired')
    .option('-q, --quiet', 'print only the ids, one a line (for scripts: REQ=$(portcullis requests list --reviewable -q))')
    .addOption(json())
    .action(async (o: { reviewable?: boolean; all?: boolean; status?: string; quiet?: boolean; json?: boolean }) => {
      const query: Record<string, string> = {};
      if (o.reviewable) query.reviewable = 'true';
      else if (o.all) query.mine = 'false';
      if (o.status) query.status = o.status;
      const r = (await api((c) => c.GET('/v1/access-requests', { params: { query: query as ApiQuery<'/v1/access-requests', 'get'> } }))) as { requests: RequestView[] };
      if (o.quiet && !o.json) return void process.stdout.write(r.requests.map((x) => `${x.id}\n`).join(''));
      out(!!o.json, r, () => (r.requests.length === 0 ? '(none)' : r.requests.map((x) => `${requestLine(x)}\n  requested by ${x.requester}: ${x.reason}`).join('\n')));
    });
  requests.command('show').argument('<id>').addOption(json()).action(async (id: string, o: { json?: boolean }) => {
    const r = (await api((c) => c.GET('/v1/access-requests/{id}', { params: { path: { id } } }))) as RequestView;
    out(!!o.json, r, () =>
      [
        requestLine(r),
        `  requested by ${r.requester}: ${r.reason}${r.ticket ? ` (${r.ticket})` : ''}`,
        ...r.reviews.map((v) => `  ${v.verdict === 'approve' ? 'approved' : 'denied'} by ${v.reviewer} at ${v.at}${v.comment ? `: ${v.comment}` : ''}`),
        ...r.comments.map((c) => `  ${c.author} at ${c.at}: ${c.text}`),
      ].join('\n'),
    );
  });
  for (const [verb, field, help] of [
    ['approve', 'comment', 'approve (never your own request)'],
    ['deny', 'comment', 'deny: one denial ends the request'],
    ['cancel', 'reason', 'cancel your own pending request'],
  ] as const) {
    requests
      .command(verb)
      .description(help)
      .argument('<id>')
      .option(`--${field} <text>`)
      .addOption(json())
      .action(async (id: string, o: Record<string, string | boolean | undefined>) => {
        const value = o[field];
        const r = (await api((c) => c.POST(`/v1/access-requests/{id}/${verb}`, { params: { path: { id } }, body: typeof value === 'string' ? { [field]: value } : {} }))) as RequestView;
        out(!!o.json, r, () => requestLine(r));
      });
  }
  requests.command('comment').argument('<id>').argument('<text>').addOption(json()).action(async (id: string, text: string, o: { json?: boolean }) => {
    const r = (await api((c) => c.POST('/v1/access-requests/{id}/comment', { params: { path: { id } }, body: { text } }))) as RequestView;
    out(!!o.json, r, () => `commented on ${r.id}\n  ${r.status_line}`);
  });

  const grants = program.command('grants').description('grants from approved requests and break-glass');
  grants
    .command('list', { isDefault: true })
    .description('yours by default; another\'s or --all: all with access.read, else those you may end or approve')
    .option('--identity <id>')
    .option('--all')
    .option('--active', 'only those in force now')
    .addOption(json())
    .action(async (o: { identity?: string; all?: boolean; active?: boolean; json?: boolean }) => {
      const query: Record<string, string> = {};
      if (o.all) query.all = 'true';
      else if (o.identity) query.identity = o.identity;
      if (o.active) query.active = 'true';
      const r = await api((c) => c.GET('/v1/grants', { params: { query: query as ApiQuery<'/v1/grants', 'get'> } }));
      out(!!o.json, r, () => table(r.grants, ['id', 'kind', 'identity_id', 'what', 'end_at', 'status_line']));
    });
  grants.command('revoke').argument('<id>').requiredOption('--reason <text>').addOption(json()).action(async (id: string, o: { reason: string; json?: boolean }) => {
    const r = (await api((c) => c.POST('/v1/grants/{id}/revoke', { params: { path: { id } }, body: { reason: o.reason } }))) as { grant: { id: string; what: string } };
    out(!!o.json, r, () => `ended ${r.grant.id} (${r.grant.what}); credentials issued under it are revoked`);
  });

  const breakGlass = program
    .command('break-glass')
    .description('emergency access without approval: eligible by policy, reason required, time-capped, revokers notified, reviewed afterwards')
    .option('--target <entity>', 'e.g. Database::"orders"')
    .option('--reason <text>', 'why (mandatory)')
    .option('--for <duration>', 'at most the configured cap (default: the cap)')
    .option('-q, --quiet', 'print only the grant id (the rest goes to stderr)')
    .addOption(json())
    .action(async (o: { target?: string; reason?: string; for?: string; quiet?: boolean; json?: boolean }) => {
      if (!o.target || !o.reason) throw new CliError('break-glass needs --target and --reason', EXIT.usage);
      const body = { target: parseEntity(o.target), reason: o.reason, ...(o.for && { duration: o.for }) };
      const r = (await api((c) => c.POST('/v1/break-glass', { body }))) as { grant: { id: string; what: string; end_at: string; revokers: string[] }; review: { id: string } };
      if (o.quiet && !o.json) process.stdout.write(`${r.grant.id}\n`);
      (o.quiet && !o.json ? (m: string) => process.stderr.write(`${m}\n`) : (m: string) => out(!!o.json, r, () => m))(
        `BREAK-GLASS ${r.grant.id}: ${r.grant.what} until ${r.grant.end_at}\n  every action is tagged in the audit log; revokers notified: ${r.grant.revokers.join(', ') || '(none configured)'}\n  end it early: portcullis break-glass end ${r.grant.id} --reason …; an after-action review (${r.review.id}) is now open`,
      );
    });
  breakGlass.command('end').argument('<grant-id>').requiredOption('--reason <text>').addOption(json()).action(async (id: string, o: { reason: string; json?: boolean }) => {
    const r = (await api((c) => c.POST('/v1/break-glass/{id}/end', { params: { path: { id } }, body: { reason: o.reason } }))) as { grant: { id: string } };
    out(!!o.json, r, () => `ended break-glass ${r.grant.id}`);
  });
  breakGlass.command('review').argument('<grant-id>').requiredOption('--summary <text>', 'what happened and what was done').addOption(json()).action(async (id: string, o: { summary: string; json?: boolean }) => {
    const r = (await api((c) => c.POST('/v1/break-glass/{id}/review', { params: { path: { id } }, body: { summary: o.summary } }))) as { review: { id: string; status: string } };
    out(!!o.json, r, () => `review ${r.review.id} recorded (${r.review.status})`);
  });
  breakGlass.command('reviews').option('--open', 'only open items').addOption(json()).action(async (o: { open?: boolean; json?: boolean }) => {
    const r = await api((c) => c.GET('/v1/break-glass/reviews', { params: { query: o.open ? { status: 'open' } : {} } }));
    out(!!o.json, r, () => table(r.reviews, ['id', 'grant_id', 'user', 'status', 'opened_at', 'reviewer']));
  });

  program
    .command('webhooks')
    .description('access notifications')
    .command('deliveries')
    .option('--status <status>', 'pending | delivered | failed')
    .addOption(json())
    .action(async (o: { status?: string; json?: boolean }) => {
      const r = await api((c) => c.GET('/v1/webhooks/deliveries', { params: { query: (o.status ? { status: o.status } : {}) as ApiQuery<'/v1/webhooks/deliveries', 'get'> } }));
      out(!!o.json, r, () => table(r.deliveries, ['id', 'endpoint', 'event_type', 'status', 'attempts', 'last_status', 'last_error']));
    });
}

interface RequestView {
  id: string;
  what: string;
  requester: string;
  status: string;
  status_line: string;
  reason: string;
  ticket: string | null;
  expires_at: string;
  grant_id: string | null;
  reviews: { reviewer: string; verdict: string; at: string; comment: string | null }[];
  comments: { author: string; at: string; text: string }[];
}

const requestLine = (r: RequestView) => `${r.id}  ${r.what}\n  ${r.status_line}`;
