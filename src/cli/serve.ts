// Starts the HTTP server for a loaded configuration (used by `server` and `dev`).
import { readFileSync } from 'node:fs';
import { Server as NetServer, createServer } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { Broker } from '../broker/index.ts';
import type { BrokerOptions } from '../broker/index.ts';
import type { LoadedConfig } from '../config/load.ts';
import { PORTCULLIS_BUNDLE } from '../config/load.ts';
import { buildServer } from '../server/app.ts';
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

export async function serve(loaded: LoadedConfig, options: BrokerOptions & { quiet?: boolean } = {}): Promise<Running> {
  const { config } = loaded;
  const log = options.log ?? ((m: string) => (options.quiet ? undefined : process.stderr.write(`${m}\n`)));
  for (const w of loaded.warnings) log(`warning: ${w}`);
  const tls = config.listen.tls;
  const scheme = tls ? 'https' : 'http';
  // Tokens name the broker's URL (`iss`) before it listens, so "any free port" is chosen up front.
  const port = config.listen.port === 0 ? await freePort(config.listen.host) : config.listen.port;
  const issuer = options.issuer ?? `${scheme}://${hostForUrl(config.listen.host)}:${port}`;
  const broker = await Broker.open(config, { ...options, issuer, log });
  let app: FastifyInstance | undefined;
  let metricsApp: FastifyInstance | undefined;
  try {
    // Client certificates are verified by the spiffe trusts, not by OpenSSL: when OpenSSL's own
    // check succeeds Node hands over only the chain it built from `ca`, dropping the intermediates
    // the client presented (issue 8.25). So `ca` holds only Portcullis' own roots and
    // intermediates (a chain it completes is still re-verified), never `client_ca` or the system roots.
    const ownCa = config.trusts.some((t) => t.kind === 'spiffe' && t.bundle === PORTCULLIS_BUNDLE);
    const anySpiffe = config.trusts.some((t) => t.kind === 'spiffe');
    const ca = ownCa ? [broker.spiffeCa.trustPem()] : [];
    app = await buildServer(broker, {
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
  } catch (err) {
    await metricsApp?.close();
    await app?.close();
    await broker.close();
    throw err;
  }
  const url = `${scheme}://${hostForUrl(config.listen.host)}:${port}`;
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
          await broker.close();
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
