// Starts the HTTP server for a loaded configuration (used by `server` and `dev`).
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Server as NetServer, connect } from 'node:net';
import { freePort } from '../common/net.ts';
import { join } from 'node:path';
import { CliError, EXIT } from './client.ts';
import type { FastifyInstance } from 'fastify';
import { Broker } from '../broker/index.ts';
import type { BrokerOptions } from '../broker/index.ts';
import type { LoadedConfig } from '../config/load.ts';
import type { PortcullisConfig } from '../config/types.ts';
import { PORTCULLIS_BUNDLE } from '../config/load.ts';
import { buildServer } from '../server/app.ts';
import { createLogger, silentLogger } from '../common/log.ts';
import type { Logger } from '../common/log.ts';
import { buildMetricsServer } from '../server/routes/health.ts';
import { DEFAULT_TIMEOUTS } from '../config/server.ts';

export interface Running {
  broker: Broker;
  app: FastifyInstance;
  url: string;
  /** The separate metrics listener's URL (`metrics.listen`), if any. */
  metricsUrl?: string;
  /**
   * Graceful: stop accepting, let in-flight requests finish (at most `listen.timeouts.shutdown`,
   * then the remaining connections are cut), then close the stores and workers.
   */
  stop(): Promise<void>;
}

export interface ServeOptions extends BrokerOptions {
  /** No operational log (tests that do not look at it). */
  quiet?: boolean;
  /** The operational log (default: `config.log`, JSON lines on stdout). */
  logger?: Logger;
  /** Runs on the open broker before the server listens (the dev server's demo history). */
  beforeListen?: (broker: Broker) => Promise<void>;
}

export async function serve(loaded: LoadedConfig, options: ServeOptions = {}): Promise<Running> {
  const { config } = loaded;
  const logger = options.logger ?? (options.quiet ? silentLogger() : createLogger(config.log));
  // The broker's messages are operational: warnings at warn, the rest at info.
  const log = options.log ?? ((m: string) => (m.startsWith('warning: ') ? logger.warn(m.slice(9)) : logger.info(m)));
  for (const w of loaded.warnings) log(`warning: ${w}`);
  const tls = config.listen.tls;
  const scheme = tls ? 'https' : 'http';
  // Tokens name the broker's URL (`iss`) before it listens, so "any free port" is chosen up front.
  const port = config.listen.port === 0 ? await freePort(0, config.listen.host) : config.listen.port;
  // Replicas behind a load balancer share one issuer: the URL clients reach them at (public_url).
  const issuer = options.issuer ?? config.public_url ?? `${scheme}://${hostForUrl(config.listen.host)}:${port}`;
  // The embedded store's files belong to one server; replicas of a PostgreSQL store share data_dir.
  const lock = config.store.kind === 'sqlite' ? takeLock(config.data_dir, { host: config.listen.host, port }) : { release: () => {} };
  let broker: Broker;
  try {
    broker = await Broker.open(config, { ...options, issuer, log });
  } catch (err) {
    lock.release();
    throw err;
  }
  let app: FastifyInstance | undefined;
  let metricsApp: FastifyInstance | undefined;
  try {
    await options.beforeListen?.(broker);
    // Client certificates are verified by the spiffe trusts, not by OpenSSL: when OpenSSL's own
    // check succeeds Node hands over only the chain it built from `ca`, dropping the intermediates
    // the client presented (issue 8.25). So `ca` holds only Portcullis' own roots and
    // intermediates (a chain it completes is still re-verified), never `client_ca` or the system roots.
    const ownCa = config.trusts.some((t) => t.kind === 'spiffe' && t.bundle === PORTCULLIS_BUNDLE);
    const anySpiffe = config.trusts.some((t) => t.kind === 'spiffe');
    const ca = ownCa ? [broker.spiffeTrustPem()] : [];
    app = await buildServer(broker, {
      logger,
      https: tls
        ? {
            cert: readFileSync(tls.cert),
            key: readFileSync(tls.key),
            ...((anySpiffe || tls.client_ca !== undefined) && { ca: ca.map((c) => Buffer.from(c)) }),
            requestCert: anySpiffe || tls.client_ca !== undefined,
            rejectUnauthorized: false, // the spiffe trust decides; a bad certificate is audited, not dropped silently
          }
        : null,
    });
    await app.listen({ host: config.listen.host, port });
    const m = config.metrics?.listen;
    if (m) {
      metricsApp = buildMetricsServer(broker);
      await metricsApp.listen({ host: m.host, port: m.port });
    }
    // Session gateways (docs/gateways.md) listen once the API does.
    await broker.startGateways();
    for (const [name, a] of broker.gatewayAddresses()) log(`gateway ${name} listening on ${hostForUrl(a.host)}:${a.port}`);
  } catch (err) {
    await metricsApp?.close();
    await app?.close();
    await broker.close();
    lock.release();
    throw err;
  }
  const url = `${scheme}://${hostForUrl(config.listen.host)}:${port}`;
  logger.info({ url, store: config.store.kind, policy_version: broker.readiness().policy_version, engine: config.engine }, 'listening');
  const server = app;
  const graceMs = (config.listen.timeouts ?? DEFAULT_TIMEOUTS).shutdown_ms;
  let stopping: Promise<void> | undefined;
  return {
    broker,
    app: server,
    url,
    ...(config.metrics?.listen && { metricsUrl: `http://${hostForUrl(config.metrics.listen.host)}:${config.metrics.listen.port}` }),
    stop() {
      stopping ??= (async () => {
        // close() stops accepting and closes idle keep-alive connections now; requests in flight
        // finish and their connections close after the answer. Past the grace period, cut them.
        const cut = setTimeout(() => server.server.closeAllConnections(), graceMs);
        try {
          // Stop accepting first and give connections already accepted a moment to deliver their
          // request before idle ones are closed (one accepted but not yet read counts as idle).
          NetServer.prototype.close.call(server.server);
          await new Promise((r) => setTimeout(r, DRAIN_MS));
          await Promise.all([server.close(), metricsApp?.close()]);
        } finally {
          clearTimeout(cut);
          try {
            await broker.close();
          } finally {
            lock.release();
          }
        }
      })();
      return stopping;
    },
  };
}

const DRAIN_MS = 200;

function hostForUrl(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}


/**
 * One server per data directory: `<data_dir>/server.lock` names the process (pid, address) while it
 * runs. A lock whose process is gone is stale and replaced; a live one refuses the start (and
 * `--reset-bootstrap`). Locks held by this process are tracked, so a stopped in-process server's
 * leftover never blocks.
 */
const held = new Set<string>();

export interface Lock {
  release(): void;
}

interface LockInfo {
  pid: number;
  host: string;
  port: number;
  started_at: string;
}

function lockPath(dataDir: string): string {
  return join(dataDir, 'server.lock');
}

/** The live server holding this data directory, if any. */
function lockHolder(dataDir: string): LockInfo | undefined {
  let info: LockInfo;
  try {
    info = JSON.parse(readFileSync(lockPath(dataDir), 'utf8')) as LockInfo;
  } catch {
    return undefined;
  }
  if (!Number.isInteger(info.pid) || info.pid <= 0) return undefined;
  if (info.pid === process.pid) return held.has(lockPath(dataDir)) ? info : undefined;
  try {
    process.kill(info.pid, 0);
    return info;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM' ? info : undefined;
  }
}

function takeLock(dataDir: string, where: { host: string; port: number }): Lock {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const path = lockPath(dataDir);
  const holder = lockHolder(dataDir);
  if (holder) {
    throw new CliError(`a Portcullis server (pid ${holder.pid}, ${holder.host}:${holder.port}) is running on ${dataDir}: stop it first (or, if that process is not Portcullis, remove ${path})`, EXIT.failure);
  }
  writeFileSync(path, JSON.stringify({ pid: process.pid, ...where, started_at: new Date().toISOString() }), { mode: 0o600 });
  held.add(path);
  return {
    release() {
      if (!held.delete(path)) return;
      try {
        const info = JSON.parse(readFileSync(path, 'utf8')) as LockInfo;
        if (info.pid === process.pid) rmSync(path, { force: true });
      } catch {
        /* already gone */
      }
    },
  };
}

/** Whether something accepts TCP connections at host:port (within a second). */
function listening(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (v: boolean) => {
      socket.destroy();
      resolve(v);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * `portcullis server --config … --reset-bootstrap`: with the server stopped (lock file and listen
 * address both checked), opens the data directory — which needs the master key, since the audit
 * event is signed — voids any earlier bootstrap secret and returns a new one-time one.
 */
/** `portcullis migrate`: brings the configured store's schema up to date; returns what was applied. */
export async function migrateStore(config: PortcullisConfig): Promise<{ store: 'sqlite' | 'postgres'; applied: { domain: string; version: number }[] }> {
  if (config.store.kind === 'postgres') {
    const { PostgresStore } = await import('../store/postgres/index.ts');
    return { store: 'postgres', applied: await PostgresStore.migrate(config.store.url) };
  }
  // The embedded store migrates as it opens; there is nothing to run apart from a server.
  return { store: 'sqlite', applied: [] };
}

export async function resetBootstrap(loaded: LoadedConfig, options: BrokerOptions = {}): Promise<string> {
  const { config } = loaded;
  if (config.store.kind === 'postgres') {
    // The store is shared: the reset is one database change every replica sees.
    const broker = await Broker.open(config, { log: () => {}, ...options });
    try {
      return await broker.resetBootstrap();
    } finally {
      await broker.close();
    }
  }
  const holder = lockHolder(config.data_dir);
  if (holder) throw new CliError(`the server is running (pid ${holder.pid}, ${holder.host}:${holder.port}): stop it, then run --reset-bootstrap again`, EXIT.failure);
  if (config.listen.port !== 0 && (await listening(config.listen.host, config.listen.port))) {
    throw new CliError(`something is listening on ${config.listen.host}:${config.listen.port} (the configured listen address): stop the server, then run --reset-bootstrap again`, EXIT.failure);
  }
  if (!existsSync(join(config.data_dir, 'portcullis.db'))) {
    throw new CliError(`no Portcullis store in ${config.data_dir} (data_dir of the config): --reset-bootstrap needs the data directory of the server it resets`, EXIT.usage);
  }
  const lock = takeLock(config.data_dir, { host: config.listen.host, port: config.listen.port });
  try {
    const broker = await Broker.open(config, { log: () => {}, ...options });
    try {
      return await broker.resetBootstrap();
    } finally {
      await broker.close();
    }
  } finally {
    lock.release();
  }
}
