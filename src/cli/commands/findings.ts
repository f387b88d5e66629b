// `portcullis findings`: what needs attention in the inventory; `findings trend`: how many, day by day.
import type { Command } from 'commander';
import { api, EXIT } from '../client.ts';
import { out, table } from '../output.ts';
import { json } from '../args.ts';

export function register(program: Command): void {
  const findings = program
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
  findings
    .command('trend')
    .description('findings per day (total, by severity, by OWASP NHI category) from the daily snapshots the governance job records')
    .option('--days <n>', 'how many days back, today included', '30')
    .addOption(json())
    .action(async (o: { days: string; json?: boolean }) => {
      const r = await api((c) => c.GET('/v1/findings/trend', { params: { query: { days: o.days } } }));
      out(!!o.json, r, () =>
        r.days.length === 0
          ? `no findings snapshots between ${r.from} and ${r.to} (the governance job records one a day)`
          : table(
              r.days.map((d) => ({ day: d.day, total: d.total, high: d.by_severity.high, medium: d.by_severity.medium, low: d.by_severity.low, owasp: Object.entries(d.by_owasp).sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true })).map(([k, v]) => `${k}:${v}`).join(' ') })),
              ['day', 'total', 'high', 'medium', 'low', 'owasp'],
            ),
      );
    });
}
