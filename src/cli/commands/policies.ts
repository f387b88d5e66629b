// `portcullis policies …`: show, validate and push Cedar policies.
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { CliError, EXIT, api } from '../client.ts';
import { fileError } from '../errors.ts';
import { out, table } from '../output.ts';
import { json } from '../args.ts';
import { registerPolicyCommands, replayPush, replayText } from './governance.ts';

export function register(program: Command): void {
  const policies = program.command('policies').description('Cedar policies: show, validate, push');
  policies.command('show').addOption(json()).action(async (o: { json?: boolean }) => {
    const r = (await api((c) => c.GET('/v1/policies'))) as { version: number; digest: string; policies: string[]; files: { name: string; origin: string }[] };
    out(!!o.json, r, () => `policy version ${r.version} (${r.digest.slice(0, 12)})\nfiles: ${r.files.map((f) => `${f.name} [${f.origin}]`).join(', ')}\npolicies:\n  ${r.policies.join('\n  ')}`);
  });
  policies.command('versions').addOption(json()).action(async (o: { json?: boolean }) => {
    const r = await api((c) => c.GET('/v1/policies/versions'));
    out(!!o.json, r, () => table(r.versions, ['version', 'created_at', 'actor', 'reason']));
  });
  for (const [name, dry] of [
    ['validate', true],
    ['push', false],
  ] as const) {
    policies
      .command(name)
      .description(dry ? 'validate .cedar files against the schema without activating' : 'activate .cedar files as the API-managed policies (new version)')
      .argument('<files...>')
      .option('--reason <text>', 'why (recorded in the admin audit stream)', dry ? 'validation' : undefined)
      .option('--replay [window]', 'first replay the recorded decisions of the window (default 30d) against the new set and print the report; refuses to push when a decision flips unless --accept-flips')
      .option('--accept-flips', 'push even when the replay shows flipped decisions')
      .addOption(json())
      .action(async (files: string[], o: { reason?: string; json?: boolean; replay?: string | boolean; acceptFlips?: boolean }) => {
        if (!o.reason) throw new CliError('--reason is required', EXIT.usage);
        const read = (f: string) => {
          try {
            return readFileSync(f, 'utf8');
          } catch (err) {
            throw fileError(err, 'file', f) ?? err;
          }
        };
        const body = { files: files.map((f) => ({ name: basename(f), text: read(f) })), reason: o.reason, dry_run: dry };
        if (o.replay !== undefined) {
          const report = await replayPush(body.files, typeof o.replay === 'string' ? o.replay : '30d');
          const flips = report.flips.allow_to_deny + report.flips.deny_to_allow;
          if (flips > 0 && !o.acceptFlips) {
            out(!!o.json, { replay: report, pushed: false }, () => `${replayText(report)}\nnot pushed: ${flips} recorded decision(s) would flip (review them, then add --accept-flips)`);
            process.exitCode = EXIT.failure;
            return;
          }
          if (!o.json) process.stdout.write(`${replayText(report)}\n`);
          const r = (await api((c) => c.PUT('/v1/policies', { body }))) as Record<string, unknown>;
          out(!!o.json, { ...r, replay: report }, () => (dry ? `valid: ${(r.policies as string[]).length} policies` : r.changed ? `activated policy version ${String(r.version)}` : `unchanged (version ${String(r.version)})`));
          return;
        }
        const r = (await api((c) => c.PUT('/v1/policies', { body }))) as Record<string, unknown>;
        out(!!o.json, r, () => (dry ? `valid: ${(r.policies as string[]).length} policies` : r.changed ? `activated policy version ${String(r.version)}` : `unchanged (version ${String(r.version)})`));
      });
  }
  registerPolicyCommands(policies);
}
