// `portcullis authorize`: ask for one decision.
import type { Command } from 'commander';
import { CliError, EXIT, api } from '../client.ts';
import { out } from '../output.ts';
import { json, parseEntity } from '../args.ts';

export function register(program: Command): void {
  program
    .command('authorize')
    .description('ask for a decision: exit 0 on allow, 3 on deny')
    .argument('<action>', 'e.g. db.select')
    .argument('<resource>', 'e.g. Database::orders')
    .option('--reason <text>', 'purpose: why')
    .option('--ticket <ref>', 'purpose: ticket reference')
    .option('--context <json>', 'extra context declared by the schema for this action')
    .addOption(json())
    .action(async (action: string, resource: string, o: { reason?: string; ticket?: string; context?: string; json?: boolean }) => {
      let extra: Record<string, unknown> = {};
      if (o.context) {
        try {
          extra = JSON.parse(o.context) as Record<string, unknown>;
        } catch {
          throw new CliError('--context must be a JSON object', EXIT.usage);
        }
      }
      const purpose = { ...(o.reason !== undefined && { reason: o.reason }), ...(o.ticket !== undefined && { ticket: o.ticket }) };
      const d = await api((c) => c.POST('/v1/authorize', { body: { action, resource: parseEntity(resource), context: { ...extra, purpose } } }));
      out(!!o.json, d, () => {
        const why = d.reasons.length > 0 ? `by ${d.reasons.join(', ')}` : d.decision === 'deny' ? 'no policy permits it' : '';
        const errs = d.errors.length > 0 ? `\n  policy errors: ${d.errors.map((e) => `${e.policy_id}: ${e.message}`).join('; ')}` : '';
        return `${d.decision.toUpperCase()}  ${action} on ${resource}  ${why}\n  decision ${d.decision_id} · policy version ${d.policy_version}${errs}`;
      });
      if (d.decision !== 'allow') process.exitCode = EXIT.denied;
    });
}
