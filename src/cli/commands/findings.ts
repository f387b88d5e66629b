// `portcullis findings`: what needs attention in the inventory.
import type { Command } from 'commander';
import { api, EXIT } from '../client.ts';
import { out, table } from '../output.ts';
import { json } from '../args.ts';

export function register(program: Command): void {
  program
    .command('findings')
    .description('posture findings (no owner, agents without a sponsor, unused, over-privileged, shared, overdue keys…) mapped to OWASP NHI Top 10 (2025) and NIST CSF 2.0, with remediation (exit 1 when any is high)')
    .option('--stale-days <n>', 'an identity unused this long is stale', '30')
    .option('--unused-days <n>', 'no allowed decision (or API key use) for this long is unused', '90')
    .addOption(json())
    .action(async (o: { staleDays: string; unusedDays: string; json?: boolean }) => {
      const r = await api((c) => c.GET('/v1/findings', { params: { query: { stale_days: o.staleDays, unused_days: o.unusedDays } } }));
      out(!!o.json, r, () => (r.findings.length === 0 ? 'no findings' : table(r.findings.map((f) => ({ ...f, owasp: f.owasp.split(' ')[0] })), ['severity', 'code', 'owasp', 'subject', 'message'])));
      if (r.findings.some((f) => f.severity === 'high')) process.exitCode = EXIT.failure;
    });
}
