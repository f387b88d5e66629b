// Spins up a real Portcullis server on loopback with a real JWKS endpoint for a CI issuer.
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import type { CryptoKey, JWK } from 'jose';
import { ManualClock } from '../../src/common/clock.ts';
import { parseConfig } from '../../src/config/load.ts';
import { serve } from '../../src/cli/serve.ts';
import { testRunning } from './broker-view.ts';
import type { TestRunning } from './broker-view.ts';
import type { Json } from '../json.ts';
import { testStoreConfig, type StoreKind } from '../store/stores.ts';

export const ISSUER = 'https://ci.example.test';
/** A second, independent issuer (its own key and JWKS server), for cross-trust tests. */
export const ISSUER2 = 'https://ci2.example.test';

export interface Harness {
  dir: string;
  clock: ManualClock;
  running: TestRunning;
  url: string;
  jwksHits: () => number;
  /** Signs a token of the second issuer (ISSUER2, key ci2-1) with exactly these claims plus iss/aud/iat/exp. */
  token2(claims: Record<string, unknown>): Promise<string>;
  /** Signs a CI token with the issuer's real key. */
  ciToken(claims?: Record<string, unknown>, opts?: { expiresInS?: number; header?: Record<string, unknown> }): Promise<string>;
  post(path: string, body: unknown, token?: string): Promise<{ status: number; body: Json; headers: Headers }>;
  get(path: string, token?: string): Promise<{ status: number; body: Json; headers: Headers }>;
  put(path: string, body: unknown, token?: string): Promise<{ status: number; body: Json; headers: Headers }>;
  request(method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; body: Json; headers: Headers }>;
  loginCi(claims?: Record<string, unknown>): Promise<string>;
  /** The first administrator's session, through the one-time bootstrap credential. */
  admin(): Promise<string>;
  close(): Promise<void>;
}

export const POLICIES = `
@id("api-reads-orders-with-purpose")
permit (principal == Workload::"workload:github/acme/api", action in Action::"db.read", resource in Database::"orders")
when { context.purpose has reason };

@id("api-writes-in-hours")
permit (principal == Workload::"workload:github/acme/api", action in Action::"db.write", resource in Database::"orders")
when { context.purpose has ticket && context.request.hour >= 6 && context.request.hour < 22 };

@id("no-api-key-writes")
forbid (principal, action in Action::"db.write", resource)
when { context.authn.method == "api-key" };

@id("anyone-reads-analytics")
permit (principal, action == Action::"db.select", resource == Database::"analytics");

@id("api-gets-readonly-orders-db")
permit (principal == Workload::"workload:github/acme/api", action == Action::"credential.issue", resource == Database::"orders-db")
when { context.credential.permission == "readonly" && context.credential.ttlSeconds <= 900 && context.purpose has reason };

@id("agent-reads-orders")
permit (principal is Agent, action == Action::"db.select", resource == Database::"orders");
`;

/** The `orders-db` PostgreSQL target against a test server, and the env holding its admin password. */
export function ordersDbTarget(pg: { port: number; user: string; password: string }): { yaml: string; env: Record<string, string> } {
  return {
    yaml: `targets:
  - name: orders-db
    kind: postgres
    host: 127.0.0.1
    port: ${pg.port}
    database: orders
    admin: { user: ${pg.user}, password_env: ORDERS_DB_ADMIN_PASSWORD }
    permissions: { readonly: readonly, readwrite: readwrite }
    max_ttl: 1h
`,
    env: { ORDERS_DB_ADMIN_PASSWORD: pg.password },
  };
}

/** `trusts`: extra YAML list items under `trusts:`; `policies`: Cedar appended to the main policy file. */
export interface HarnessOptions {
  /** Either YAML, or a function of the second issuer's JWKS URL returning YAML. */
  trusts?: string | ((jwks2: string) => string);
  policies?: string;
  /** Extra YAML keys of the `ci` trust and of the declared `workload:github/acme/api` (indented 4). */
  ciExtra?: string;
  apiExtra?: string;
  /** Extra YAML list items under `identities:`. */
  identities?: string;
  /** Reuse this folder (a store from an earlier run); it is not removed on close. */
  dir?: string;
  /** Replaces the `audit:` mapping (flow YAML), e.g. to configure a witness. */
  audit?: string;
  /** Listen host (default 127.0.0.1) and extra `listen` fields as YAML flow, e.g. `trusted_proxies: [10.0.0.0/8]`. */
  host?: string;
  /** Listen port (default 0: any free one); name one only where it must be known before start (freePort). */
  port?: number;
  listen?: string;
  /** Data directory (default ./data in the harness folder), e.g. on a small filesystem. */
  dataDir?: string;
  /** Extra YAML list items under `resources:`. */
  resources?: string;
  /** The store kind, whatever the run's (PCX_TEST_STORE): e.g. replicas that need PostgreSQL. */
  store?: StoreKind;
}

export async function startHarness(extraYaml = '', extraEnv: Record<string, string> = {}, clockStart = Date.parse('2026-03-02T10:00:00Z'), opts: HarnessOptions = {}): Promise<Harness> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'pcx-it-'));
  const second = await generateKeyPair('ES256');
  const jwk2: JWK = { ...(await exportJWK(second.publicKey)), kid: 'ci2-1', alg: 'ES256', use: 'sig' };
  const jwks2Server: Server = createServer((req, res) => {
    res.writeHead(req.url === '/.well-known/jwks' ? 200 : 404, { 'content-type': 'application/json' });
    res.end(req.url === '/.well-known/jwks' ? JSON.stringify({ keys: [jwk2] }) : '');
  });
  await new Promise<void>((r) => jwks2Server.listen(0, '127.0.0.1', r));
  const jwks2 = `http://127.0.0.1:${(jwks2Server.address() as { port: number }).port}/.well-known/jwks`;
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid: 'ci-1', alg: 'ES256', use: 'sig' };
  let hits = 0;
  const jwksServer: Server = createServer((req, res) => {
    hits++;
    if (req.url === '/.well-known/jwks') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [jwk] }));
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((r) => jwksServer.listen(0, '127.0.0.1', r));
  const jwksPort = (jwksServer.address() as { port: number }).port;
  mkdirSync(join(dir, 'policies'), { recursive: true });
  writeFileSync(join(dir, 'policies', 'main.cedar'), POLICIES + (opts.policies ?? ''));
  // SQLite in ./data, or a fresh PostgreSQL database when the run is over PostgreSQL (PCX_TEST_STORE).
  const store = await testStoreConfig(opts.store);
  extraEnv = { ...store.env, ...extraEnv };
  const yaml = `
listen: { host: "${opts.host ?? '127.0.0.1'}", port: ${opts.port ?? 0}${opts.listen ? `, ${opts.listen}` : ''} }
data_dir: ${opts.dataDir ?? './data'}
${store.yaml}boundaries: [application, platform, infrastructure, ai-platform]
bridges:
  - { from: ai-platform, to: application, actions: [db.select], reason: support agent reads orders }
trusts:
  - name: ci
    kind: oidc
    issuer: ${ISSUER}
    jwks_uri: http://127.0.0.1:${jwksPort}/.well-known/jwks
    audiences: [portcullis]
    algorithms: [ES256]
    require: { repository_owner: acme }
    identity: "workload:github/{repository}"
    identity_kind: workload
    attributes: [repository, ref]
    boundary: application
    environment: prod
    owner: team:platform
${opts.ciExtra ?? ''}
${typeof opts.trusts === 'function' ? opts.trusts(jwks2) : (opts.trusts ?? '')}
identities:
  - id: workload:github/acme/api
    kind: workload
    owner: team:payments
    purpose: deploys the payments api
    boundary: application
    environment: prod
${opts.apiExtra ?? ''}
${opts.identities ?? ''}
resources:
  - { type: Database, id: orders, boundary: application, environment: prod }
  - { type: Table, id: orders.payments, boundary: application, environment: prod, parents: ['Database::"orders"'] }
  - { type: Database, id: analytics, boundary: platform, environment: prod }
  - { type: Database, id: orders-db, boundary: application, environment: prod }
${opts.resources ?? ''}
policies: ./policies
session: { ttl: 10m }
audit: ${opts.audit ? (opts.audit.includes('witness') ? opts.audit : opts.audit.replace(/\s*\}\s*$/, `${store.witness} }`)) : `{ fail_closed: true, checkpoint_every: 5${store.witness} }`}
outbound: { allow_private: [127.0.0.0/8, "::1/128"] }   # the test JWKS, IdP and webhook receivers are on loopback
${extraYaml}`;
  writeFileSync(join(dir, 'portcullis.yaml'), yaml);
  const clock = new ManualClock(clockStart);
  let loaded: ReturnType<typeof parseConfig>;
  try {
    loaded = parseConfig(yaml, dir, { ...process.env, ...extraEnv });
  } catch (err) {
    await new Promise<void>((r) => jwks2Server.close(() => r()));
    await new Promise<void>((r) => jwksServer.close(() => r()));
    if (!opts.dir) rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const running = await serve(loaded, { clock, quiet: true, env: { PORTCULLIS_MASTER_KEY: Buffer.alloc(32, 7).toString('base64'), ...extraEnv } });
  const url = running.url;

  const request = async (method: string, path: string, body?: unknown, token?: string) => {
    const headers: Record<string, string> = {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (token) headers.authorization = `Bearer ${token}`;
    const res = await fetch(url + path, { method, headers, ...(body !== undefined && { body: typeof body === 'string' ? body : JSON.stringify(body) }) });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    return { status: res.status, body: parsed as Json, headers: res.headers };
  };

  let adminToken: string | undefined;
  const h: Harness = {
    dir,
    clock,
    running: testRunning(running),
    url,
    jwksHits: () => hits,
    async ciToken(claims = {}, opts = {}) {
      const now = Math.floor(clock.now() / 1000);
      return new SignJWT({ repository: 'acme/api', repository_owner: 'acme', ref: 'refs/heads/main', iss: ISSUER, aud: 'portcullis', ...claims })
        .setProtectedHeader({ alg: 'ES256', kid: 'ci-1', typ: 'JWT', ...opts.header })
        .setSubject('repo:acme/api:ref:refs/heads/main')
        .setIssuedAt(now)
        .setExpirationTime(now + (opts.expiresInS ?? 300))
        .sign(privateKey as CryptoKey);
    },
    async token2(claims) {
      const now = Math.floor(clock.now() / 1000);
      return new SignJWT({ iss: ISSUER2, aud: 'portcullis', ...claims })
        .setProtectedHeader({ alg: 'ES256', kid: 'ci2-1', typ: 'JWT' })
        .setIssuedAt(now)
        .setExpirationTime(now + 300)
        .sign(second.privateKey as CryptoKey);
    },
    post: (path, body, token) => request('POST', path, body, token),
    get: (path, token) => request('GET', path, undefined, token),
    put: (path, body, token) => request('PUT', path, body, token),
    request,
    async loginCi(claims = {}) {
      const r = await request('POST', '/v1/auth/token', { token: await h.ciToken(claims) });
      if (r.status !== 200) throw new Error(`login failed: ${r.status} ${JSON.stringify(r.body)}`);
      return r.body.session_token as string;
    },
    async admin() {
      if (adminToken) return adminToken;
      const secret = await running.broker.bootstrap();
      const r = await request('POST', '/v1/auth/token', { bootstrap: secret });
      if (r.status !== 200) throw new Error(`bootstrap login failed: ${r.status} ${JSON.stringify(r.body)}`);
      adminToken = r.body.session_token as string;
      return adminToken;
    },
    async close() {
      await running.stop().catch(() => {});
      await new Promise<void>((r) => jwksServer.close(() => r()));
      await new Promise<void>((r) => jwks2Server.close(() => r()));
      if (!opts.dir) rmSync(dir, { recursive: true, force: true });
    },
  };
  return h;
}

/** An OIDC trust on the second issuer's key (issuer ISSUER2 + suffix); `extra` is more YAML keys. */
export const trust2 = (name: string, identity: string, o: { kind?: string; extra?: string; suffix?: string } = {}) => (jwks2: string) => `
  - name: ${name}
    kind: oidc
    issuer: ${ISSUER2}${o.suffix ?? ''}
    jwks_uri: ${jwks2}
    audiences: [portcullis]
    algorithms: [ES256]
    identity: "${identity}"
    identity_kind: ${o.kind ?? 'workload'}
    boundary: application
    environment: prod
${o.extra ?? ''}`;

/** Several `trusts` blocks on the second issuer's JWKS as one. */
export const allTrusts = (...fs: ((jwks2: string) => string)[]) => (jwks2: string) => fs.map((f) => f(jwks2)).join('');

/** A harness with no policies of its own, configured by `o` (trusts on the second issuer…). */
export const startSecondIssuer = (o: HarnessOptions) => startHarness('', {}, undefined, o);
