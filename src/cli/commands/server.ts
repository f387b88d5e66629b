// `portcullis server`, `portcullis dev` and `portcullis dev token`: run the broker.
import type { Command } from 'commander';
import { rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadConfigFile } from '../../config/load.ts';
import { CliError, EXIT, address } from '../client.ts';
import { serve } from '../serve.ts';
import { DEV_DATA, devConfig, devEnv, devToken, startDevPostgres } from '../dev.ts';

export function register(program: Command): void {
  program
    .command('server')
    .description('run the control plane from a configuration file')
    .requiredOption('-c, --config <file>', 'portcullis.yaml')
    .action(async (o: { config: string }) => {
      const loaded = loadConfigFile(o.config);
      const running = await serve(loaded);
      const secret = await running.broker.bootstrap();
      process.stderr.write(`portcullis listening on ${running.url} (policy version ${running.broker.decisions.version?.version}, engine ${loaded.config.engine})\n`);
      if (secret) {
        process.stderr.write(
          `\nFirst start: a one-time bootstrap credential for the first administrator (user:admin).\n` +
            `It works once; use it to mint your own credentials, then it is spent:\n\n  portcullis login --bootstrap ${secret}\n\n`,
        );
      }
      stopOnSignal(running.stop);
    });

  const dev = program
    .command('dev')
    .description('run a local development server with a demo setup (npm start)')
    .enablePositionalOptions()
    .option('--data <dir>', 'data directory', DEV_DATA)
    .option('--port <port>', 'port', '7070')
    .option('--fresh', 'start from an empty data directory')
    .option('--postgres', 'also run an embedded PostgreSQL with an orders-db target (first run takes a few seconds)')
    .action(async (o: { data: string; port: string; fresh?: boolean; postgres?: boolean }) => {
      const dataDir = resolve(o.data);
      if (o.fresh) rmSync(dataDir, { recursive: true, force: true });
      if (o.fresh) rmSync(`${dataDir}-postgres`, { recursive: true, force: true });
      const pg = o.postgres ? await startDevPostgres(dataDir, (m) => process.stderr.write(`${m}\n`)) : undefined;
      let running: Awaited<ReturnType<typeof serve>>;
      try {
        running = await serve(devConfig(dataDir, Number(o.port), pg), { env: devEnv(pg) });
      } catch (err) {
        await pg?.stop();
        throw err;
      }
      const cli = `${resolve(import.meta.dirname, '..', '..', '..', 'bin', 'portcullis.js')}`;
      process.stdout.write(`
Portcullis dev server on ${running.url}
  data:     ${dataDir}  (audit, keys, identities; --fresh to reset)
  policies: examples/dev/policies/demo.cedar  (policy version ${running.broker.decisions.version?.version})
  API:      ${running.url}/openapi.json

Try this next, in another terminal:

  alias portcullis=${cli}
  export PORTCULLIS_ADDR=${running.url}

  # 1. a CI workload proves itself with an OIDC token from the dev issuer
  portcullis login --token "$(portcullis dev token --sub repo:acme/api)"

  # 2. ask for decisions — purpose, time window, boundary
  portcullis authorize db.select Database::orders --reason "monthly report"    # allow
  portcullis authorize db.select Database::orders                              # deny: no purpose
  portcullis authorize db.insert Table::orders.payments --ticket OPS-12       # allow 06–22 UTC
  portcullis authorize db.select Database::analytics --reason "curious"        # deny: boundary guard

  # 3. an administrator looks at the audit trail and the inventory
  portcullis login --token "$(portcullis dev token --user admin@example.com)"
  portcullis audit authz
  portcullis identities list
  portcullis audit verify

  # 4. short-lived credentials, each decided by policy and leased (as the workload again)
  portcullis login --token "$(portcullis dev token --sub repo:acme/api)"
  portcullis creds issue api orders-api --scope orders:read --ttl 10m --reason "sync job"
  rm -f /tmp/pcx-demo-key*; ssh-keygen -t ed25519 -N '' -q -f /tmp/pcx-demo-key; portcullis creds ssh web-1 --key /tmp/pcx-demo-key.pub
${pg ? `  portcullis creds issue postgres orders-db --perm readonly --ttl 15m --reason "report"   # psql it
  portcullis leases
  portcullis revoke --lease <lease id> --reason "done"   # your own lease: the role's sessions end now
` : `  portcullis leases                     # (restart with --postgres for PostgreSQL roles too)
`}
Ctrl-C stops the server.
`);
      stopOnSignal(async () => {
        await running.stop();
        await pg?.stop();
      });
    });

  dev
    .command('token')
    .description('print a signed token from the built-in development OIDC issuer')
    .option('--sub <sub>', 'workload subject (GitHub Actions style)', 'repo:acme/api')
    .option('--user <email>', 'a human user instead (dev SSO issuer)')
    .option('--agent <name>', 'an AI agent instead')
    .option('--claim <k=v...>', 'extra claims')
    .option('--ttl <seconds>', 'lifetime', '300')
    .option('--data <dir>', 'data directory of the dev server', DEV_DATA)
    .option('--port <port>', 'port of the dev server', new URL(address()).port || '7070')
    .action(async (o: { sub: string; user?: string; agent?: string; claim?: string[]; ttl: string; data: string; port: string }) => {
      const claims = Object.fromEntries((o.claim ?? []).map((c) => {
        const i = c.indexOf('=');
        if (i < 1) throw new CliError(`--claim must be key=value, got "${c}"`, EXIT.usage);
        return [c.slice(0, i), c.slice(i + 1)];
      }));
      process.stdout.write(`${await devToken(resolve(o.data), Number(o.port), { sub: o.sub, ...(o.user && { user: o.user }), ...(o.agent && { agent: o.agent }), claims, ttlSeconds: Number(o.ttl) })}\n`);
    });
}

/**
 * SIGTERM/SIGINT: stop accepting, let in-flight requests finish (bounded by
 * listen.timeouts.shutdown), close stores and workers, exit 0. A second signal exits at once.
 */
function stopOnSignal(stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) {
      process.stderr.write(`${signal} again: exiting without waiting\n`);
      process.exit(1);
    }
    stopping = true;
    process.stderr.write(`\n${signal}: stopping (finishing requests in flight)…\n`);
    stop().then(
      () => {
        process.stderr.write('stopped\n');
        process.exit(0);
      },
      (err: unknown) => {
        process.stderr.write(`stopping failed: ${(err as Error).message}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}
