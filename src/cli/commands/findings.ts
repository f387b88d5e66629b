// `portcullis findings`: what needs attention in the inventory.
import type { Command } from 'commander';
import { api, EXIT } from '../client.ts';
import { out, table } from '../output.ts';
import { json } from '../args.ts';

export function register(program: Command): void {
  program
    .command('findings')
    .description('posture findings: no owner, stale identities, legacy or overdue API keys, failed revocations (exit 1 when any is high)')
    .option('--stale-days <n>', 'an identity unused this long is stale', '30')
    .addOption(json())
    .action(async (o: { staleDays: string; json?: boolean }) => {
      const r = await api((c) => c.GET('/v1/findings', { params: { query: { stale_days: o.staleDays } } }));
      out(!!o.json, r, () => (r.findings.length === 0 ? 'no findings' : table(r.findings, ['severity', 'code', 'subject', 'message'])));
      if (r.findings.some((f) => f.severity === 'high')) process.exitCode = EXIT.failure;
    });
}
