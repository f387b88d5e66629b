// `portcullis access explain|usage` and `portcullis policies suggest|replay` (+ `push --replay`):
// effective permissions, observed use, the suggested narrowed policy, what-if replay (docs/governance.md).
import type { Command } from 'commander';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { CliError, EXIT, api } from '../client.ts';
import { fileError } from '../errors.ts';
import { out, table } from '../output.ts';
import { json, parseEntity } from '../args.ts';
import type { operations } from '../../../packages/client/src/index.ts';

/** The replay report as the API answers it (broker/permissions-admin.ts, through the SDK's types). */
export type ReplayReport = operations['replayPolicies']['responses'][200]['content']['application/json'];

const uid = (r: { type: string; id: string }) => `${r.type}::"${r.id}"`;

/** `portcullis access …` */
export function register(program: Command): void {
  const access = program.command('access').description('governance: effective permissions and observed use');
  access
    .command('explain')
    .description("what an identity may do now over the declared resources, with the determining policies and the conditions left for request time")
    .argument('[identity]')
    .option('--team <team>', "a team's effective permissions (its members') instead of an identity's")
    .option('--role <role>', "a role's effective permissions instead of an identity's")
    .option('--resource <entity...>', 'only these resources, e.g. Database::"orders"')
    .option('--action <action...>', 'only these actions (identity only)')
    .addOption(json())
    .action(async (id: string | undefined, o: { team?: string; role?: string; resource?: string[]; action?: string[]; json?: boolean }) => {
      const resource = o.resource?.map((r) => uid(parseEntity(r)));
      if ([id, o.team, o.role].filter((x) => x !== undefined).length !== 1) throw new CliError('name exactly one of IDENTITY, --team or --role', EXIT.usage);
      if (id === undefined) {
        const group = o.team !== undefined ? { team: o.team } : { role: o.role! };
        const g = await api((c) => c.GET('/v1/governance/permissions', { params: { query: { ...group, ...(resource && { resource }) } } }));
        out(!!o.json, g, () => `members: ${g.members.join(', ') || '(none)'}\n${table(g.permissions.map((p) => ({ action: p.action, resource: uid(p.resource), members: p.members.join(', ') })), ['action', 'resource', 'members'])}`);
        return;
      }
      const r = await api((c) => c.GET('/v1/identities/{id}/permissions', { params: { path: { id }, query: { ...(resource && { resource }), ...(o.action && { action: o.action }) } } }));
      out(!!o.json, r, () => {
        if (r.permissions.length === 0) return `${r.identity}: no permissions over the declared resources (policy version ${r.policy_version}, ${r.pairs} pairs examined)`;
        const lines = [`${r.identity}: ${r.permissions.length} of ${r.pairs} (action, resource) pairs (policy version ${r.policy_version})`];
        for (const p of r.permissions) {
          lines.push(`${p.action} on ${uid(p.resource)}  [${p.status}]`);
          for (const c of p.permits) lines.push(`  permit ${c.policy}${c.condition ? ` when { ${c.condition} }  (${c.requires.join(', ')})` : ''}`);
          for (const c of p.forbids) lines.push(`  unless forbid ${c.policy} when { ${c.condition ?? ''} }  (${c.requires.join(', ')})`);
        }
        return lines.join('\n');
      });
    });
  access
    .command('usage')
    .description('effective permissions against allowed decisions: unused permissions and over-privilege per identity and for the estate')
    .option('--since <window>', 'how far back (e.g. 90d, 12h) or an RFC 3339 time', '90d')
    .option('--identity <id>', 'one identity only')
    .addOption(json())
    .action(async (o: { since: string; identity?: string; json?: boolean }) => {
      const r = await api((c) => c.GET('/v1/governance/usage', { params: { query: { since: o.since, ...(o.identity !== undefined && { identity: o.identity }) } } }));
      out(!!o.json, r, () =>
        [
          table(r.identities, ['identity', 'effective', 'used', 'unused', 'over_privilege', 'allows']),
          '',
          `estate since ${r.since}: ${r.estate.used} of ${r.estate.effective} effective permissions used; over-privilege ${pct(r.estate.over_privilege!)}`,
          r.nothing_used.length > 0 ? `nothing used: ${r.nothing_used.join(', ')}` : 'every identity used something',
        ].join('\n'),
      );
    });
}

const rows = (xs: object[]) => xs as Record<string, unknown>[];
const pct = (x: number) => `${(x * 100).toFixed(1)} %`;

/** `policies suggest|replay` and `push --replay`, added to the `policies` command. */
export function registerPolicyCommands(policies: Command): void {
  policies
    .command('suggest')
    .description('a narrowed policy set keeping every allow observed in the window, validated against the schema, shown as a diff')
    .argument('[identity]')
    .option('--team <team>', 'for a team instead of an identity')
    .option('--role <role>', 'for a role instead of an identity')
    .option('--since <window>', 'how far back (e.g. 90d)', '90d')
    .option('--out <dir>', 'write the candidate policy files there (for `policies replay DIR`)')
    .addOption(json())
    .action(async (identity: string | undefined, o: { team?: string; role?: string; since: string; out?: string; json?: boolean }) => {
      const who = [identity ? { identity } : undefined, o.team ? { team: o.team } : undefined, o.role ? { role: o.role } : undefined].filter((x) => x !== undefined);
      if (who.length !== 1) throw new CliError('name exactly one of IDENTITY, --team or --role', EXIT.usage);
      const r = await api((c) => c.GET('/v1/policies/suggestion', { params: { query: { ...who[0], since: o.since } } }));
      if (o.out !== undefined) {
        mkdirSync(o.out, { recursive: true });
        for (const f of r.files) writeFileSync(join(o.out, f.name), f.text);
      }
      out(!!o.json, r, () => `${r.diff}\nkeeps ${r.kept} observed (action, resource) pairs, removes ${r.removed.length} unused${o.out !== undefined ? `; candidate written to ${o.out}` : ''}`);
    });
  policies
    .command('replay')
    .description('re-decide the recorded decisions of a window with the .cedar files of a directory; every flip by identity and action')
    .argument('<dir>')
    .option('--since <window>', 'how far back (e.g. 30d)', '30d')
    .addOption(json())
    .action(async (dir: string, o: { since: string; json?: boolean }) => {
      const r = await replay(readCandidate(dir), o.since);
      out(!!o.json, r, () => replayText(r));
      if (r.flips.allow_to_deny + r.flips.deny_to_allow > 0) process.exitCode = EXIT.failure;
    });
}

function readCandidate(dir: string): { name: string; text: string }[] {
  let names: string[];
  try {
    names = statSync(dir).isDirectory() ? readdirSync(dir).filter((n) => n.endsWith('.cedar')).sort() : [];
  } catch (err) {
    throw fileError(err, 'directory', dir) ?? err;
  }
  if (names.length === 0) throw new CliError(`${dir}: no .cedar files (give the directory holding the candidate policy set)`, EXIT.usage);
  return names.map((n) => ({ name: basename(n), text: readFileSync(join(dir, n), 'utf8') }));
}

/** POST /v1/policies/replay. */
export function replay(files: { name: string; text: string }[], since: string): Promise<ReplayReport> {
  return api((c) => c.POST('/v1/policies/replay', { body: { files, since } }));
}

/** What `push --replay` does first: the active config files plus the pushed ones, replayed. */
export async function replayPush(files: { name: string; text: string }[], since: string): Promise<ReplayReport> {
  const active = await api((c) => c.GET('/v1/policies'));
  const names = new Set(files.map((f) => f.name));
  const candidate = [...active.files.filter((f) => f.origin === 'config' && !names.has(f.name)).map((f) => ({ name: f.name, text: f.text })), ...files];
  return replay(candidate, since);
}

export function replayText(r: ReplayReport): string {
  const lines = [
    `replayed ${r.replayed} of ${r.decisions} decisions since ${r.since}: ${r.unchanged} unchanged, ${r.flips.allow_to_deny} allow→deny, ${r.flips.deny_to_allow} deny→allow`,
  ];
  if (r.unreconstructable.count > 0) lines.push(`not reconstructable: ${r.unreconstructable.count} (${Object.entries(r.unreconstructable.by_reason).map(([k, v]) => `${k} ${v}`).join(', ')})`);
  if (r.by_identity.length > 0) lines.push('', table(rows(r.by_identity), ['identity', 'allow_to_deny', 'deny_to_allow']), '', table(rows(r.by_action), ['action', 'allow_to_deny', 'deny_to_allow']));
  if (r.flipped.length > 0) lines.push('', table(rows(r.flipped), ['time', 'identity', 'action', 'resource', 'recorded', 'candidate']));
  return lines.join('\n');
}
