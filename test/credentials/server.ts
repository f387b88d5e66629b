// A real Portcullis server on loopback for the credential integration tests (SPIFFE/mTLS,
// delegation, SSH), with the CI issuer of the shared harness. Unlike harness.ts it takes the
// whole targets/resources/trusts sections and can listen with TLS.
import { execFileSync } from 'node:child_process';
import { request as httpsRequest } from 'node:https';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import type { CryptoKey, JWK } from 'jose';
import { ManualClock } from '../../src/common/clock.ts';
import { parseConfig } from '../../src/config/load.ts';
import { testStoreConfig } from '../store/stores.ts';
import { serve } from '../../src/cli/serve.ts';
import { testRunning } from '../integration/broker-view.ts';
import type { TestRunning } from '../integration/broker-view.ts';
import { freePort } from './helpers.ts';
import type { Json } from '../json.ts';
import type { Logger } from '../../src/common/log.ts';

export const CI_ISSUER = 'https://ci.example.test';

export interface ServerOptions {
  /** YAML list items under `trusts:` after the CI trust. */
  trusts?: string;
  /** YAML list items under `resources:`. */
  resources: string;
  /** YAML list items under `targets:`. */
  targets: string;
  identities?: string;
  policies: string;
  tls?: boolean;
  env?: Record<string, string>;
  /** The server's operational log (default: none). */
  logger?: Logger;
  /** YAML list items under `gateways:`. */
  gateways?: string;
  /** The server's clock (default: a ManualClock at the current time). */
  clock?: ManualClock;
}

export interface Reply {
  status: number;
  body: Json;
}

export interface TestServer {
  dir: string;
  url: string;
  clock: ManualClock;
  running: TestRunning;
  /** The PostgreSQL store's URL when the run is over PostgreSQL. */
  storeUrl?: string;
  /** PEM of the server certificate (TLS only): what clients trust. */
  serverCa: string;
  ciToken(repository: string): Promise<string>;
  login(repository: string): Promise<string>;
  admin(): Promise<string>;
  call(method: string, path: string, body?: unknown, token?: string, tls?: { cert: string; key: string }): Promise<Reply>;
  form(path: string, fields: Record<string, string>): Promise<Reply>;
  close(): Promise<void>;
}

export async function startServer(o: ServerOptions): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), 'pcx-cred-it-'));
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid: 'ci-1', alg: 'ES256', use: 'sig' };
  const jwks: Server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] })));
  await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', r));
  const jwksPort = (jwks.address() as { port: number }).port;
  // A fixed port, so the issuer (`iss` of access tokens) is the real URL.
  const port = await freePort();
  let serverCa = '';
  let tlsYaml = '';
  if (o.tls) {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'server.key'), '-out', join(dir, 'server.crt'),
      '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    serverCa = readFileSync(join(dir, 'server.crt'), 'utf8');
    tlsYaml = `, tls: { cert: ./server.crt, key: ./server.key }`;
  }
  mkdirSync(join(dir, 'policies'));
  writeFileSync(join(dir, 'policies', 'main.cedar'), o.policies);
  const store = await testStoreConfig();
  const yaml = `
listen: { host: 127.0.0.1, port: ${port}${tlsYaml} }
data_dir: ./data
boundaries: [application, platform, infrastructure, ai-platform]
trusts:
  - name: ci
    kind: oidc
    issuer: ${CI_ISSUER}
    jwks_uri: http://127.0.0.1:${jwksPort}/.well-known/jwks
    audiences: [portcullis]
    algorithms: [ES256]
    require: { repository_owner: acme }
    identity: "workload:github/{repository}"
    identity_kind: workload
    attributes: [repository]
    boundary: application
    environment: prod
    owner: team:platform
${o.trusts ?? ''}
identities:
${o.identities ?? `  - { id: workload:github/acme/api, kind: workload, owner: team:payments, boundary: application, environment: prod }`}
resources:
${o.resources}
targets:
${o.targets}
policies: ./policies
${o.gateways !== undefined ? `gateways:\n${o.gateways}\n` : ''}session: { ttl: 10m }
audit: { fail_closed: true, checkpoint_every: 5${store.witness} }
outbound: { allow_private: [127.0.0.0/8, "::1/128"] }   # the test JWKS, IdP and webhook receivers are on loopback
${store.yaml}`;
  writeFileSync(join(dir, 'portcullis.yaml'), yaml);
  const clock = o.clock ?? new ManualClock(Date.now());
  const env = { PORTCULLIS_MASTER_KEY: Buffer.alloc(32, 9).toString('base64'), ...store.env, ...o.env };
  let running: Awaited<ReturnType<typeof serve>>;
  try {
    running = await serve(parseConfig(yaml, dir, { ...process.env, ...env }), { clock, env, ...(o.logger ? { logger: o.logger } : { quiet: true }) });
  } catch (err) {
    // A server that did not start leaves nothing listening (the test's JWKS would keep the run alive).
    await new Promise((r) => jwks.close(r));
    throw err;
  }
  const url = running.url;

  const call = (method: string, path: string, body?: unknown, token?: string, tls?: { cert: string; key: string }): Promise<Reply> => {
    const headers: Record<string, string> = {};
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    if (payload !== undefined) headers['content-type'] = typeof body === 'string' ? 'application/x-www-form-urlencoded' : 'application/json';
    if (token) headers.authorization = `Bearer ${token}`;
    if (!o.tls) {
      return fetch(url + path, { method, headers, ...(payload !== undefined && { body: payload }) }).then(async (r) => ({ status: r.status, body: parse(await r.text()) }));
    }
    return new Promise((resolve, reject) => {
      const req = httpsRequest(url + path, { method, headers, ca: serverCa, ...(tls && { cert: tls.cert, key: tls.key }) }, (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: parse(text) }));
      });
      req.on('error', reject);
      req.end(payload);
    });
  };

  const ciToken = (repository: string) => {
    const now = Math.floor(clock.now() / 1000);
    return new SignJWT({ repository, repository_owner: 'acme', iss: CI_ISSUER, aud: 'portcullis' })
      .setProtectedHeader({ alg: 'ES256', kid: 'ci-1', typ: 'JWT' })
      .setSubject(`repo:${repository}:ref:refs/heads/main`)
      .setIssuedAt(now)
      .setExpirationTime(now + 300)
      .sign(privateKey as CryptoKey);
  };
  let adminToken: string | undefined;
  return {
    dir,
    url,
    clock,
    running: testRunning(running),
    ...(store.env.PCX_STORE_URL !== undefined && { storeUrl: store.env.PCX_STORE_URL }),
    serverCa,
    ciToken,
    async login(repository) {
      const r = await call('POST', '/v1/auth/token', { token: await ciToken(repository) });
      if (r.status !== 200) throw new Error(`login failed: ${r.status} ${JSON.stringify(r.body)}`);
      return r.body.session_token as string;
    },
    async admin() {
      if (adminToken) return adminToken;
      const r = await call('POST', '/v1/auth/token', { bootstrap: await running.broker.bootstrap() });
      if (r.status !== 200) throw new Error(`bootstrap login failed: ${r.status}`);
      adminToken = r.body.session_token as string;
      return adminToken;
    },
    call,
    form: (path, fields) => call('POST', path, new URLSearchParams(fields).toString()),
    async close() {
      await running.stop().catch(() => {});
      await new Promise<void>((r) => jwks.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
