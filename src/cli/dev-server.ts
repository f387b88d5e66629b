// `portcullis dev` itself: the embedded PostgreSQL (with --postgres), the broker, and what to try next.
import { rmSync } from 'node:fs';
import { freePort } from '../common/net.ts';
import { resolve } from 'node:path';
import { serve } from './serve.ts';
import type { ServeOptions } from './serve.ts';
import { createLogger } from '../common/log.ts';
import { devConfig, devEnv, devPostgresGateway, devSigningJwk, devSsoUsers, startDevPostgres } from './dev.ts';
import { startDevSso } from './dev-sso.ts';
import type { DevSso } from './dev-sso.ts';
import { devSshGateway, startDevSshd } from './dev-sshd.ts';
import { devMcpGateway, devMcpTarget, startDevMcp } from './dev-mcp.ts';
import type { LoadedConfig } from '../config/load.ts';

export interface DevOptions {
  dataDir: string;
  port: number;
  fresh: boolean;
  postgres: boolean;
  stopOnSignal(stop: () => Promise<void>): void;
}

export async function runDev(o: DevOptions): Promise<void> {
  const { dataDir } = o;
  if (o.fresh) {
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(`${dataDir}-postgres`, { recursive: true, force: true });
  }
  // The dev issuers name the server's URL, so "any free port" is chosen before the config is made.
  const port = o.port === 0 ? await freePort() : o.port;
  const pg = o.postgres ? await startDevPostgres(dataDir, (m) => process.stderr.write(`${m}\n`)) : undefined;
  // With --postgres, a demo sshd behind the SSH gateway too (when OpenSSH is installed).
  const sshd = o.postgres ? await startDevSshd(dataDir, (m) => process.stderr.write(`${m}\n`)) : undefined;
  // Always: the demo MCP servers behind the MCP gateway `mcp-gw` (in-process, nothing external).
  let mcp: Awaited<ReturnType<typeof startDevMcp>> | undefined;
  let running: Awaited<ReturnType<typeof serve>>;
  let sso: DevSso | undefined;
  try {
    mcp = await startDevMcp();
    // The dev OpenID Provider (docs/dev-sso.md) on the next port (any free one when taken or --port 0),
    // signing with the dev issuer's key; its users are the dev config's people.
    let loaded: LoadedConfig | undefined;
    sso = await startDevSso({ port: o.port === 0 || port >= 65535 ? 0 : port + 1, serverPort: port, signingJwk: devSigningJwk(dataDir), users: () => (loaded ? devSsoUsers(loaded) : []) });
    // With --postgres, the PostgreSQL gateway `db-gw` in front of orders-db: on 6432 when it can
    // bind there, else on any free port (a probe first would race another dev server starting).
    // `mcp-gw`'s URL is its resource identifier (the audience of its tokens), so its port is named
    // before it listens: any free one, and another on EADDRINUSE.
    const start = async (dbGwPort: number, mcpGwPort: number) => {
      const gateways = [...(pg ? [devPostgresGateway(dbGwPort)] : []), ...(sshd ? [devSshGateway(sshd)] : []), devMcpGateway(mcpGwPort, mcp!)];
      loaded = devConfig(dataDir, port, pg, gateways, devMcpTarget(mcpGwPort), sso && { issuer: sso.issuer });
      return serve(loaded, { env: devEnv(pg), logger: createLogger(loaded.config.log, process.stderr), ...(await historyOptions(loaded, port)) });
    };
    let dbGwPort = 6432;
    for (let attempt = 0; ; attempt++) {
      try {
        running = await start(dbGwPort, await freePort());
        break;
      } catch (err) {
        const e = err as { code?: unknown; gateway?: unknown };
        if (e?.code !== 'EADDRINUSE' || (e.gateway !== 'db-gw' && e.gateway !== 'mcp-gw') || attempt >= 5) throw err;
        if (e.gateway === 'db-gw') dbGwPort = 0;
      }
    }
    sshd?.trustCa(running.broker.targets().sshUserCa);
  } catch (err) {
    await sso?.close();
    sshd?.stop();
    await mcp?.stop().catch(() => {});
    await pg?.stop().catch(() => {});
    throw err;
  }
  // Ctrl-C is ours before the banner says the server is up: a signal right after it stops the
  // server and the embedded PostgreSQL, never kills the process with them left running.
  o.stopOnSignal(async () => {
    try {
      await running.stop();
    } finally {
      await sso?.close();
      sshd?.stop();
      await mcp?.stop().catch(() => {});
      await pg?.stop();
    }
  });
  const mcpGw = running.broker.gatewayAddresses().get('mcp-gw');
  const cli = resolve(import.meta.dirname, '..', '..', 'bin', 'portcullis.js');
  process.stdout.write(`
Portcullis dev server on ${running.url}
  data:     ${dataDir}  (audit, keys, identities; --fresh to reset)
  policies: examples/dev/policies/demo.cedar  (policy version ${running.broker.readiness().policy_version})
  API:      ${running.url}/openapi.json
  mcp:      gateway mcp-gw on http://127.0.0.1:${mcpGw?.port ?? '?'}/mcp → demo MCP servers orders, tickets (agent:support-bot, sponsor user:dana@example.com)
${sso ? `  sso:      dev OpenID Provider on ${sso.issuer} (trust dev-op; dev users, no password): portcullis login --sso\n` : ''}${pg ? `  postgres: orders-db on 127.0.0.1:${pg.port} (embedded); gateway db-gw on 127.0.0.1:${running.broker.gatewayAddresses().get('db-gw')?.port ?? '?'} → orders-db\n` : ''}${sshd ? `  ssh:      gateway ssh-gw on 127.0.0.1:${running.broker.gatewayAddresses().get('ssh-gw')?.port ?? '?'} → web-1 (a demo sshd on 127.0.0.1:${sshd.port}, logins as ${sshd.login})\n` : ''}
Try this next, in another terminal (README.md, "Five minutes with the dev server", has the rest):

  alias portcullis=${cli}
  export PORTCULLIS_ADDR=${running.url}
${o.dataDir === resolve(import.meta.dirname, '..', '..', '.portcullis', 'dev') ? '' : `  export PORTCULLIS_DEV_DATA=${dataDir}\n`}
  # 1. a CI workload proves itself with an OIDC token from the dev issuer (secrets go through stdin)
  portcullis dev token --sub repo:acme/api | portcullis login --token -

  # 2. ask for decisions — purpose, time window, boundary
  portcullis authorize db.select Database::orders --reason "monthly report"    # allow
  portcullis authorize db.select Database::orders                              # deny: no purpose
  portcullis authorize db.select Database::analytics --reason "curious"        # deny: boundary guard

  # 3. an administrator looks at the audit trail and the inventory
  portcullis dev token --user admin@example.com | portcullis login --token -
  portcullis audit authz
  portcullis identities list
  portcullis audit verify

  # 4. governance on the week of history this data directory started with (README, "Governance")
  portcullis access usage --since 7d
  portcullis findings trend --days 8

  # 5. an AI agent acting for alice through the MCP gateway mcp-gw: README.md, "An agent acting for alice"
${pg ? '' : `
  # PostgreSQL credentials and the privileged-access walkthrough need: npm start -- --postgres
`}${pg ? `
  # Through the session gateways (as the payments API): every statement and channel decided and recorded
  portcullis dev token --sub repo:acme/api | portcullis login --token -
  portcullis db connect db-gw --reason "order report" -- -c 'select id, status from orders'
  portcullis db connect db-gw --reason cleanup -- -c 'delete from orders'   # denied: ERROR 42501, with the decision id
${sshd ? `  portcullis ssh web-1 -l ${sshd.login} -- uptime
  portcullis ssh web-1 -l ${sshd.login} -- rm -rf /tmp/x        # denied by policy: exec request failed
` : ''}  portcullis sessions list --mine
` : ''}
Ctrl-C stops the server.
`);
}


/**
 * A new data directory gets a week of demo history (dev-history.ts) before the server listens: the
 * broker opens on a clock seven days back, the history is made through it, then the clock is real.
 */
async function historyOptions(loaded: LoadedConfig, port: number): Promise<Pick<ServeOptions, 'clock' | 'beforeListen'>> {
  const { HistoryClock, historyPending, seedDevHistory } = await import('./dev-history.ts');
  if (!historyPending(loaded)) return {};
  const clock = new HistoryClock();
  return {
    clock,
    async beforeListen(broker) {
      process.stderr.write('seeding a week of demo history (first start of this data directory)…\n');
      const r = await seedDevHistory(broker, clock, { dataDir: loaded.config.data_dir, port });
      process.stderr.write(`demo history: ${r.logins} logins, ${r.decisions} decisions from ${r.from.slice(0, 10)} to ${r.to.slice(0, 10)} (${(r.ms / 1000).toFixed(1)} s)\n`);
    },
  };
}
