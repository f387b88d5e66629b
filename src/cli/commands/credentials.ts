// `portcullis creds …`, `leases` and `revoke`: just-in-time credentials, their leases, revocation.
import type { Command } from 'commander';
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CliError, EXIT, call, cliHome } from '../client.ts';
import { fileError } from '../errors.ts';
import { out, table } from '../output.ts';
import { json } from '../args.ts';

export function register(program: Command): void {
  const creds = program.command('creds').description('just-in-time credentials, decided by policy and leased');
  creds
    .command('issue')
    .description('issue a credential: `creds issue postgres orders-db --perm readonly --ttl 15m --reason …`')
    .argument('<kind>', 'postgres | api')
    .argument('<target>')
    .option('--perm <set>', 'permission set (postgres)')
    .option('--scope <scope...>', 'scopes (api)')
    .option('--ttl <duration>', 'lifetime within the target cap, e.g. 15m')
    .option('--grant <id>', 'the access grant to issue under (default: your active grant for this target)')
    .requiredOption('--reason <text>', 'why (recorded with the lease)')
    .option('--env', 'postgres: print `export PGHOST=… PGPASSFILE=… PORTCULLIS_LEASE=…` lines for eval, so psql connects with no secret on its command line')
    .addOption(json())
    .action(async (kind: string, target: string, o: { perm?: string; scope?: string[]; ttl?: string; grant?: string; reason: string; env?: boolean; json?: boolean }) => {
      if (kind !== 'postgres' && kind !== 'api') throw new CliError(`kind must be postgres or api, got "${kind}" (SSH certificates: \`portcullis creds ssh\`)`, EXIT.usage);
      if (o.env && kind !== 'postgres') throw new CliError('--env goes with postgres', EXIT.usage);
      if (o.env && o.json) throw new CliError('give --env or --json, not both', EXIT.usage);
      const r = await call<{ lease: Record<string, unknown>; credential: Record<string, unknown> }>('POST', '/v1/credentials', {
        body: { target, reason: o.reason, ...(o.perm && { permission: o.perm }), ...(o.ttl && { ttl: o.ttl }), ...(o.scope && { scopes: o.scope }), ...(o.grant && { grant_id: o.grant }) },
      });
      const c = r.credential;
      const until = String(r.lease.expires_at);
      if (typeof c.password === 'string') {
        // The password goes to psql through a 0600 passfile, never through a URI on a command line.
        const pg = { host: String(c.host), port: String(c.port), database: String(c.database), user: String(c.user) };
        const passfile = writePassfile(String(r.lease.id), pg, c.password);
        if (o.env) {
          process.stdout.write(`${Object.entries({ PGHOST: pg.host, PGPORT: pg.port, PGDATABASE: pg.database, PGUSER: pg.user, PGPASSFILE: passfile, PORTCULLIS_LEASE: String(r.lease.id) }).map(([k, v]) => `export ${k}=${shellQuote(v)}`).join('\n')}\n`);
          process.stderr.write(`lease ${String(r.lease.id)} (${String(r.lease.permission)}) until ${until}\n`);
          return;
        }
        out(!!o.json, r, () => `role ${pg.user} on ${pg.host}:${pg.port}/${pg.database}, lease ${String(r.lease.id)} (${String(r.lease.permission)}) until ${until}\npassword in ${passfile} (mode 0600); connect with:\n  PGPASSFILE=${shellQuote(passfile)} psql ${shellQuote(`host=${pg.host} port=${pg.port} dbname=${pg.database} user=${pg.user}`)}`);
        return;
      }
      out(!!o.json, r, () => {
        return `${String(c.access_token ?? JSON.stringify(c))}\n\nlease ${String(r.lease.id)} until ${until}`;
      });
    });
  creds
    .command('ssh')
    .description('get an SSH user certificate for a host target, written next to the key')
    .argument('<target>')
    .requiredOption('--key <path>', 'your public key, e.g. ~/.ssh/id_ed25519.pub')
    .option('--ttl <duration>')
    .option('--reason <text>', 'why', 'interactive login')
    .addOption(json())
    .action(async (target: string, o: { key: string; ttl?: string; reason: string; json?: boolean }) => {
      let publicKey: string;
      try {
        publicKey = readFileSync(o.key, 'utf8').trim();
      } catch (err) {
        throw fileError(err, '--key', o.key) ?? err;
      }
      const r = await call<{ lease: Record<string, unknown>; credential: Record<string, unknown> }>('POST', '/v1/credentials', {
        body: { target, reason: o.reason, public_key: publicKey, ...(o.ttl && { ttl: o.ttl }) },
      });
      const certPath = o.key.replace(/\.pub$/, '') + '-cert.pub';
      writeFileSync(certPath, `${String(r.credential.certificate)}\n`, { mode: 0o644 });
      out(!!o.json, { ...r, certificate_path: certPath }, () => `certificate written to ${certPath} (lease ${String(r.lease.id)}, principals ${JSON.stringify(r.credential.principals)})`);
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
      const q = new URLSearchParams();
      if (!o.all && !o.identity && !o.target) q.set('mine', 'true');
      for (const k of ['identity', 'target', 'status'] as const) if (o[k]) q.set(k, o[k]!);
      const r = await call<{ leases: Record<string, unknown>[] }>('GET', `/v1/leases?${q}`);
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
      const selector = { [keys[0]!]: o[keys[0]!] };
      const r = await call<{ leases: { matched: number; revoked: number; failed: unknown[] }; sessions: string[] }>('POST', '/v1/revocations', { body: { selector, reason: o.reason } });
      if (typeof o.lease === 'string' && r.leases.failed.length === 0) rmSync(join(cliHome(), 'pgpass', safeName(o.lease)), { force: true });
      out(!!o.json, r, () => `revoked ${r.leases.revoked} of ${r.leases.matched} lease(s)${r.sessions.length ? `; ${r.sessions.join('; ')}` : ''}${r.leases.failed.length ? `\n${r.leases.failed.length} failed and will be retried: ${JSON.stringify(r.leases.failed)}` : ''}`);
      if (r.leases.failed.length > 0) process.exitCode = EXIT.failure;
    });
}

const safeName = (id: string) => id.replace(/[^A-Za-z0-9_.-]/g, '_');

/** `sh` single quotes, so a printed command can be pasted as is. */
export function shellQuote(v: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(v) ? v : `'${v.replace(/'/g, `'\\''`)}'`;
}

/** A libpq passfile (hostname:port:database:username:password, `:` and `\\` escaped), mode 0600. */
export function writePassfile(leaseId: string, pg: { host: string; port: string; database: string; user: string }, password: string): string {
  const dir = join(cliHome(), 'pgpass');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const path = join(dir, safeName(leaseId));
  const esc = (v: string) => v.replace(/[\\:]/g, (c) => `\\${c}`);
  writeFileSync(path, `${[pg.host, pg.port, pg.database, pg.user, password].map(esc).join(':')}\n`, { mode: 0o600 });
  chmodSync(path, 0o600);
  return path;
}
