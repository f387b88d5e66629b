// Starts the HTTP server for a loaded configuration (used by `server` and `dev`).
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { CliError, EXIT } from './client.ts';
import type { FastifyInstance } from 'fastify';
import { Broker } from '../broker/index.ts';
import type { BrokerOptions } from '../broker/index.ts';
import type { LoadedConfig } from '../config/load.ts';
import { PORTCULLIS_BUNDLE } from '../config/load.ts';
import { buildServer } from '../server/app.ts';

export interface Running {
  broker: Broker;
  app: FastifyInstance;
  url: string;
  stop(): Promise<void>;
}

export async function serve(loaded: LoadedConfig, options: BrokerOptions & { quiet?: boolean } = {}): Promise<Running> {
  const { config } = loaded;
  const log = options.log ?? ((m: string) => (options.quiet ? undefined : process.stderr.write(`${m}\n`)));
  for (const w of loaded.warnings) log(`warning: ${w}`);
  const tls = config.listen.tls;
  const scheme = tls ? 'https' : 'http';
  // Tokens name the broker's URL (`iss`) before it listens, so "any free port" is chosen up front.
  const port = config.listen.port === 0 ? await freePort(config.listen.host) : config.listen.port;
  const issuer = options.issuer ?? `${scheme}://${config.listen.host}:${port}`;
  const lock = takeLock(config.data_dir, { host: config.listen.host, port });
  let broker: Broker;
  try {
    broker = await Broker.open(config, { ...options, issuer, log });
  } catch (err) {
    lock.release();
    throw err;
  }
  let app: FastifyInstance;
  try {
    // A spiffe trust with `bundle: portcullis` accepts SVIDs Portcullis issued: its roots and
    // intermediates go into `ca` so Node builds (and hands us) the client's full chain.
    const ownCa = config.trusts.some((t) => t.kind === 'spiffe' && t.bundle === PORTCULLIS_BUNDLE);
    const ca = [...(tls?.client_ca !== undefined ? [readFileSync(tls.client_ca, 'utf8')] : []), ...(ownCa ? [broker.spiffeCa.trustPem()] : [])];
    app = await buildServer(broker, {
      https: tls
        ? {
            cert: readFileSync(tls.cert),
            key: readFileSync(tls.key),
            ...(ca.length > 0 && { ca: Buffer.from(ca.join('\n')) }),
            requestCert: ca.length > 0,
            rejectUnauthorized: false, // the spiffe trust decides; a bad certificate is audited, not dropped silently
          }
        : null,
    });
    await app.listen({ host: config.listen.host, port });
  } catch (err) {
    await broker.close();
    lock.release();
    throw err;
  }
  const url = `${scheme}://${config.listen.host}:${port}`;
  return {
    broker,
    app,
    url,
    async stop() {
      try {
        await app.close();
        await broker.close();
      } finally {
        lock.release();
      }
    },
  };
}

function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, host, () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
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

export function lockPath(dataDir: string): string {
  return join(dataDir, 'server.lock');
}

/** The live server holding this data directory, if any. */
export function lockHolder(dataDir: string): LockInfo | undefined {
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

export function takeLock(dataDir: string, where: { host: string; port: number }): Lock {
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
export async function resetBootstrap(loaded: LoadedConfig, options: BrokerOptions = {}): Promise<string> {
  const { config } = loaded;
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
