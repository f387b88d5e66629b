// `portcullis migrate` and `portcullis store copy`: the store's schema and moving an embedded
// installation to PostgreSQL. They work on the store directly, not through a running server.
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { CliError, EXIT } from '../client.ts';
import { json } from '../args.ts';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

export function register(program: Command): void {
  program
    .command('migrate')
    .description("bring the store's schema up to this version and exit (servers also migrate on start; run it alone before upgrading replicas)")
    .requiredOption('-c, --config <file>', 'portcullis.yaml')
    .addOption(json())
    .action(async (o: { config: string; json?: boolean }) => {
      const { loadConfigFile } = await import('../../config/load.ts');
      const { migrateStore } = await import('../serve.ts');
      const r = await migrateStore(loadConfigFile(o.config).config);
      if (o.json) process.stdout.write(`${JSON.stringify(r)}\n`);
      else if (r.applied.length === 0) process.stdout.write(`the ${r.store} store is up to date\n`);
      else process.stdout.write(`applied ${r.applied.length} migration(s) to the ${r.store} store: ${r.applied.map((a) => `${a.domain} v${a.version}`).join(', ')}\n`);
    });

  const store = program.command('store').description('the store itself: moving an installation');
  store
    .command('copy')
    .description("copy an embedded installation's state (audit chains included) into a new PostgreSQL store")
    .requiredOption('--from <source>', 'sqlite:DIR — the data_dir to copy (the server may keep running; each file is read in one snapshot)')
    .requiredOption('--to <target>', 'postgres — the store whose URL is in the environment variable --url-env names')
    .option('--url-env <name>', 'environment variable holding the target URL', 'PORTCULLIS_STORE_URL')
    .addOption(json())
    .action(async (o: { from: string; to: string; urlEnv: string; json?: boolean }) => {
      if (!o.from.startsWith('sqlite:') || o.from.length <= 7) throw new CliError(`--from must be sqlite:DIR (the data_dir to copy), got "${o.from.slice(0, 100)}"`, EXIT.usage);
      if (o.to !== 'postgres') throw new CliError(`--to must be postgres, got "${o.to.slice(0, 100)}"`, EXIT.usage);
      if (!ENV_NAME.test(o.urlEnv)) throw new CliError('--url-env must name an environment variable', EXIT.usage);
      const url = process.env[o.urlEnv];
      if (!url) throw new CliError(`environment variable ${o.urlEnv} is not set: put the target store's URL in it (postgres://user:…@host:5432/db)`, EXIT.usage);
      const { copySqliteToPostgres } = await import('../../store/copy.ts');
      const report = await copySqliteToPostgres(resolve(o.from.slice(7)), url, (table, rows) => {
        if (!o.json && rows > 0) process.stderr.write(`  ${table}: ${rows} rows\n`);
      });
      if (o.json) process.stdout.write(`${JSON.stringify(report)}\n`);
      else process.stdout.write(`copied ${report.rows} rows in ${(report.ms / 1000).toFixed(1)} s. Next: point store: at PostgreSQL in the config, start the server, and check the audit chains with \`portcullis audit verify\`.\n`);
    });
}
