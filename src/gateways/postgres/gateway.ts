// The PostgreSQL gateway: a TCP listener whose connections are PgSessions (session.ts); the
// parser loaded before it listens; TLS toward clients when configured; the gateway's cancel keys
// mapped to the upstream's, and cancels forwarded on a fresh connection to the upstream.
import { readFileSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { resolve } from 'node:path';
import { createSecureContext, type SecureContext } from 'node:tls';
import { InvalidInput } from '../../common/errors.ts';
import type { Gateway, GatewayDeps } from '../plugin.ts';
import { loadParser } from './analyze.ts';
import type { PostgresGatewayConfig } from './config.ts';
import { PgSession, type GatewayContext } from './session.ts';
import { cancelRequest } from './wire.ts';

export class PostgresGateway implements Gateway {
  readonly name: string;
  readonly kind = 'postgres';
  readonly #config: PostgresGatewayConfig;
  readonly #deps: GatewayDeps;
  #server: Server | undefined;
  readonly #live = new Set<PgSession>();
  readonly #ending = new Set<Promise<void>>();
  readonly #cancels = new Map<string, { host: string; port: number; pid: number; key: number }>();

  constructor(config: PostgresGatewayConfig, deps: GatewayDeps) {
    this.name = config.name;
    this.#config = config;
    this.#deps = deps;
  }

  async start(): Promise<{ host: string; port: number }> {
    await loadParser();
    let tls: SecureContext | undefined;
    if (this.#config.tls) {
      const read = (f: string, field: string) => {
        try {
          return readFileSync(resolve(this.#deps.baseDir, f));
        } catch {
          throw new InvalidInput(`gateway ${this.name}: cannot read tls.${field} ${f}`, `tls.${field}`);
        }
      };
      // Client certificates (X.509-SVIDs) are asked against Portcullis' own SPIFFE CAs only, like the API's TLS listener.
      const ca = this.#deps.host.clientCaPem();
      tls = createSecureContext({ cert: read(this.#config.tls.cert, 'cert'), key: read(this.#config.tls.key, 'key'), minVersion: 'TLSv1.2', ...(ca !== '' && { ca }) });
    }
    const ctx: GatewayContext = {
      config: this.#config,
      host: this.#deps.host,
      log: this.#deps.log,
      ...(tls && { tls }),
      cancels: this.#cancels,
      forwardCancel: (to) => {
        const s = connect({ host: to.host, port: to.port }, () => s.end(cancelRequest(to.pid, to.key)));
        s.on('error', () => {});
        s.setTimeout(5000, () => s.destroy());
      },
      live: this.#live,
      ending: this.#ending,
    };
    const server = createServer({ noDelay: true }, (socket) => {
      socket.on('error', () => {});
      try {
        new PgSession(socket, ctx);
      } catch {
        socket.destroy();
      }
    });
    server.on('error', (err) => this.#deps.log(`gateway ${this.name}: ${err.message}`));
    await new Promise<void>((ok, fail) => {
      server.once('error', fail);
      server.listen(this.#config.listen.port, this.#config.listen.host, () => {
        server.off('error', fail);
        ok();
      });
    });
    this.#server = server;
    const a = server.address();
    return { host: this.#config.listen.host, port: typeof a === 'object' && a ? a.port : this.#config.listen.port };
  }

  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    const closed = server ? new Promise<void>((r) => server.close(() => r())) : Promise.resolve();
    await Promise.all([...this.#live].map((s) => s.end('the gateway is shutting down', { code: '57P01', message: 'terminating connection: the Portcullis gateway is shutting down' })));
    await Promise.all([...this.#ending]);
    await closed;
  }
}
