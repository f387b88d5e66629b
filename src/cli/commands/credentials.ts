// `portcullis creds …`, `leases` and `revoke`: just-in-time credentials, their leases, revocation.
import type { Command } from 'commander';
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { CliError, EXIT, api, cliHome } from '../client.ts';
import type { ApiQuery } from '../client.ts';
import { fileError } from '../errors.ts';
import { out, table } from '../output.ts';
import { json } from '../args.ts';
import { shellQuote } from '../../common/shell.ts';

/** POST /v1/credentials as the CLI reads it. */
type IssuedView = { lease: Record<string, unknown>; credential: Record<string, unknown> };

export function register(program: Command): void {
  const creds = program.command('creds').description('just-in-time credentials, decided by policy and leased');
  creds
    .command('issue')
    .description('issue a credential: `creds issue postgres orders-db --perm readonly --ttl 15m --reason …`')
    .argument('<kind>', 'the target\'s kind, e.g. postgres or api')
    .argument('<target>')
    .option('--perm <set>', 'permission set (postgres)')
    .option('--scope <scope...>', 'scopes (api)')
    .option('--ttl <duration>', 'lifetime within the target cap, e.g. 15m')
    .option('--grant <id>', 'the access grant to issue under (default: your active grant for this target)')
    .requiredOption('--reason <text>', 'why (recorded with the lease)')
    .option('--env', 'postgres: print `export PGHOST=… PGPASSFILE=… PORTCULLIS_LEASE=…` lines for eval, so psql connects with no secret on its command line')
    .addOption(json())
    .action(async (kind: string, target: string, o: { perm?: string; scope?: string[]; ttl?: string; grant?: string; reason: string; env?: boolean; json?: boolean }) => {
      // How each kind is shown comes from its issuer plug-in (loaded here, not at start-up).
      const { ISSUERS, issuerKind } = await import('../../credentials/issuers/registry.ts');
      const shown = (k: string) => { const c = issuerKind(k)?.cli; return c && 'text' in c ? c : undefined; };
      const cli = shown(kind);
      if (!cli) {
        const hints = ISSUERS.flatMap((p) => (p.cli && 'hint' in p.cli ? [p.cli.hint] : []));
        throw new CliError(`kind must be ${ISSUERS.filter((p) => shown(p.kind)).map((p) => p.kind).join(' or ')}, got "${kind}"${hints.length ? ` (${hints.join('; ')})` : ''}`, EXIT.usage);
      }
      if (o.env && !cli.env) throw new CliError(`--env goes with ${ISSUERS.filter((p) => shown(p.kind)?.env).map((p) => p.kind).join(' or ')}`, EXIT.usage);
      if (o.env && o.json) throw new CliError('give --env or --json, not both', EXIT.usage);
      const body = { target, reason: o.reason, ...(o.perm && { permission: o.perm }), ...(o.ttl && { ttl: o.ttl }), ...(o.scope && { scopes: o.scope }), ...(o.grant && { grant_id: o.grant }) };
      const r: IssuedView = await api((c) => c.POST('/v1/credentials', { body }));
      // Shown as what was issued: the lease's kind, whatever was typed.
      const as = shown(String(r.lease.kind)) ?? cli;
      const files = (as.files?.(r, cliHome()) ?? []).map((f) => writePrivate(f.path, f.content, f.mode ?? 0o600));
      if (o.env && as.env) {
        const e = as.env(r, files);
        process.stdout.write(`${Object.entries(e.vars).map(([k, v]) => `export ${k}=${shellQuote(v)}`).join('\n')}\n`);
        process.stderr.write(`${e.note}\n`);
        return;
      }
      out(!!o.json, r, () => as.text(r, files));
    });
  /** `creds ssh` and `creds ssh-host`: a certificate for a public key read from `--key`, written next to it as `-cert.pub`. */
  const certificateCommand = (name: string, o: { description: string; target: string; key: string; reason: string; done: (r: IssuedView, path: string) => string }) =>
    creds
      .command(name)
      .description(o.description)
      .argument('<target>', o.target)
      .requiredOption('--key <path>', o.key)
      .option('--ttl <duration>')
      .option('--reason <text>', 'why', o.reason)
      .addOption(json())
      .action(async (target: string, a: { key: string; ttl?: string; reason: string; json?: boolean }) => {
        let publicKey: string;
        try {
          publicKey = readFileSync(a.key, 'utf8').trim();
        } catch (err) {
          throw fileError(err, '--key', a.key) ?? err;
        }
        const r: IssuedView = await api((c) => c.POST('/v1/credentials', { body: { target, reason: a.reason, public_key: publicKey, ...(a.ttl && { ttl: a.ttl }) } }));
        const certPath = a.key.replace(/\.pub$/, '') + '-cert.pub';
        writeFileSync(certPath, `${String(r.credential.certificate)}\n`, { mode: 0o644 });
        out(!!a.json, { ...r, certificate_path: certPath }, () => o.done(r, certPath));
      });
  certificateCommand('ssh', {
    description: 'get an SSH user certificate for a host target, written next to the key',
    target: 'an ssh target',
    key: 'your public key, e.g. ~/.ssh/id_ed25519.pub',
    reason: 'interactive login',
    done: (r, path) => `certificate written to ${path} (lease ${String(r.lease.id)}, principals ${JSON.stringify(r.credential.principals)})`,
  });
  certificateCommand('ssh-host', {
    description: 'get an SSH host certificate for this host (as a host identity), written next to its host key',
    target: 'an ssh-host target',
    key: 'the host public key, e.g. /etc/ssh/ssh_host_ed25519_key.pub',
    reason: 'host certificate',
    done: (r, path) => `host certificate written to ${path} (lease ${String(r.lease.id)}, hosts ${JSON.stringify(r.credential.hosts)}, until ${String(r.credential.valid_before)}); sshd: HostCertificate ${path}`,
  });

  program
    .command('leases')
    .description('leases: yours by default; --all, --identity, --target need lease.read')
    .option('--all')
    .option('--identity <id>')
    .option('--target <name>')
    .option('--status <status>')
    .addOption(json())
    .action(async (o: { all?: boolean; identity?: string; target?: string; status?: string; json?: boolean }) => {
      const query: Record<string, string> = {};
      if (!o.all && !o.identity && !o.target) query.mine = 'true';
      for (const k of ['identity', 'target', 'status'] as const) if (o[k]) query[k] = o[k]!;
      const r = await api((c) => c.GET('/v1/leases', { params: { query: query as ApiQuery<'/v1/leases', 'get'> } }));
      const rows = r.leases.map((l) => ({ ...l, expires: l.expires_at }));
      out(!!o.json, r, () => table(rows, ['id', 'identity_id', 'target', 'permission', 'status', 'expires', 'purpose']));
    });

  program
    .command('revoke')
    .description('revoke everything matching one selector; live database sessions end at once')
    .option('--lease <id>')
    .option('--identity <id>')
    .option('--owner <owner>', 'every identity this owner owns (offboarding)')
    .option('--target <name>')
    .option('--trust <name>')
    .option('--session <jti>')
    .requiredOption('--reason <text>')
    .addOption(json())
    .action(async (o: Record<string, string | boolean | undefined>) => {
      const keys = ['lease', 'identity', 'owner', 'target', 'trust', 'session'].filter((k) => typeof o[k] === 'string');
      if (keys.length !== 1) throw new CliError('give exactly one of --lease, --identity, --owner, --target, --trust, --session', EXIT.usage);
      const selector = { [keys[0]!]: o[keys[0]!] as string };
      const r = await api((c) => c.POST('/v1/revocations', { body: { selector, reason: o.reason as string } }));
      if (typeof o.lease === 'string' && r.leases.failed.length === 0) rmSync(join(cliHome(), 'pgpass', safeName(o.lease)), { force: true });
      out(!!o.json, r, () => `revoked ${r.leases.revoked} of ${r.leases.matched} lease(s)${r.sessions.length ? `; ${r.sessions.join('; ')}` : ''}${r.leases.failed.length ? `\n${r.leases.failed.length} failed and will be retried: ${JSON.stringify(r.leases.failed)}` : ''}`);
      if (r.leases.failed.length > 0) process.exitCode = EXIT.failure;
    });
}

const safeName = (id: string) => id.replace(/[^A-Za-z0-9_.-]/g, '_');

/** Writes a file only its owner can read, in a folder only its owner can enter (secrets such as a libpq passfile). */
function writePrivate(path: string, content: string, mode: number): string {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  chmodSync(dirname(path), 0o700);
  writeFileSync(path, content, { mode });
  chmodSync(path, mode);
  return path;
}
