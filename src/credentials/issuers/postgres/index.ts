// The `postgres` issuer kind: a login role per lease in a PostgreSQL database (postgres.ts), decided
// on `Database::"<target>"`; the CLI hands the password to psql through a 0600 libpq passfile.
import { join } from 'node:path';
import { shellQuote } from '../../../common/shell.ts';
import { lazyModule } from '../../../common/lazy-module.ts';
import type { CliIssued, IssuerPlugin } from '../plugin.ts';
import { postgresConfig } from './config.ts';
import type { PostgresTarget } from './config.ts';

const impl = lazyModule<typeof import('./postgres.ts')>(import.meta.url, './postgres.ts');

const connection = (c: Record<string, unknown>) => ({ host: String(c.host), port: String(c.port), database: String(c.database), user: String(c.user) });
const until = (r: CliIssued) => String(r.lease.expires_at);

/** A libpq passfile line (hostname:port:database:username:password, `:` and `\\` escaped). */
function passfileLine(pg: { host: string; port: string; database: string; user: string }, password: string): string {
  const esc = (v: string) => v.replace(/[\\:]/g, (c) => `\\${c}`);
  return `${[pg.host, pg.port, pg.database, pg.user, password].map(esc).join(':')}\n`;
}

export const postgres: IssuerPlugin<PostgresTarget> = {
  kind: 'postgres',
  resourceType: 'Database',
  config: postgresConfig,
  // The permission set is the common `permission` field.
  request: { fields: {}, params: () => ({}) },
  cli: {
    // The password goes to psql through a 0600 passfile, never through a URI on a command line.
    files: (r, home) =>
      typeof r.credential.password === 'string'
        ? [{ path: join(home, 'pgpass', String(r.lease.id).replace(/[^A-Za-z0-9_.-]/g, '_')), content: passfileLine(connection(r.credential), r.credential.password) }]
        : [],
    text: (r, [passfile]) => {
      const pg = connection(r.credential);
      return `role ${pg.user} on ${pg.host}:${pg.port}/${pg.database}, lease ${String(r.lease.id)} (${String(r.lease.permission)}) until ${until(r)}\npassword in ${passfile} (mode 0600); connect with:\n  PGPASSFILE=${shellQuote(passfile!)} psql ${shellQuote(`host=${pg.host} port=${pg.port} dbname=${pg.database} user=${pg.user}`)}`;
    },
    env: (r, [passfile]) => {
      const pg = connection(r.credential);
      return {
        vars: { PGHOST: pg.host, PGPORT: pg.port, PGDATABASE: pg.database, PGUSER: pg.user, PGPASSFILE: passfile!, PORTCULLIS_LEASE: String(r.lease.id) },
        note: `lease ${String(r.lease.id)} (${String(r.lease.permission)}) until ${until(r)}`,
      };
    },
  },
  create: (target, deps) => new (impl().PostgresIssuer)({ target, ...(deps.env && { env: deps.env }) }),
};
