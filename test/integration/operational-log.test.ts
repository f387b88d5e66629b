// The operational log through a real server at its most verbose level: every line is one JSON
// object, every request has one line (request id, route, status, latency, identity, decision id),
// and no secret the server handed out or was sent — bootstrap secret, session tokens, API key,
// PostgreSQL password, access token, a forged bearer token — appears in any line.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogger } from '../../src/common/log.ts';
import { startServer } from '../credentials/server.ts';
import type { TestServer } from '../credentials/server.ts';
import { startPostgres } from '../credentials/helpers.ts';
import type { TestPostgres } from '../credentials/helpers.ts';

const API = 'workload:github/acme/api';

describe('operational log', () => {
  const lines: string[] = [];
  let partial = '';
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      const parts = (partial + chunk.toString()).split('\n');
      partial = parts.pop()!;
      lines.push(...parts.filter(Boolean));
      done();
    },
  });
  let s: TestServer;
  let pg: TestPostgres;
  const secrets = new Map<string, string>();

  before(async () => {
    pg = await startPostgres();
    s = await startServer({
      logger: createLogger({ level: 'trace', format: 'json' }, sink),
      resources: [
        '  - { type: Database, id: orders-db, boundary: application, environment: prod }',
        '  - { type: Api, id: orders-api, boundary: application, environment: prod }',
      ].join('\n'),
      targets: [
        `  - { name: orders-db, kind: postgres, host: 127.0.0.1, port: ${pg.port}, database: orders, admin: { user: ${pg.user}, password_env: ORDERS_DB_ADMIN_PASSWORD }, permissions: { readonly: readonly }, max_ttl: 1h }`,
        '  - { name: orders-api, kind: api, audience: https://orders.example.test, scopes: [orders:read], max_ttl: 30m, default_ttl: 10m }',
      ].join('\n'),
      env: { ORDERS_DB_ADMIN_PASSWORD: pg.password },
      policies: `
permit (principal, action == Action::"credential.issue", resource == Database::"orders-db");
permit (principal, action == Action::"credential.issue", resource == Api::"orders-api");
permit (principal, action == Action::"db.select", resource == Database::"orders-db");
`,
    });
  });

  after(async () => {
    await s?.close();
    await pg?.stop();
  });

  it('logs one JSON line per request with its decision id, and no secret anywhere', async () => {
    const bootstrap = await s.running.broker.bootstrap();
    assert.ok(bootstrap);
    secrets.set('bootstrap secret', bootstrap);
    secrets.set('target admin password', pg.password);
    const adminLogin = await s.call('POST', '/v1/auth/token', { bootstrap });
    assert.equal(adminLogin.status, 200, JSON.stringify(adminLogin.body));
    const admin = (adminLogin.body as { session_token: string }).session_token;
    secrets.set('admin session token', admin);

    const session = await s.login('acme/api');
    secrets.set('workload session token', session);
    const decided = await s.call('POST', '/v1/authorize', { action: 'db.select', resource: { type: 'Database', id: 'orders-db' } }, session);
    assert.equal(decided.status, 200, JSON.stringify(decided.body));

    const key = await s.call('POST', '/v1/apikeys', { identity: API, ttl: '1h' }, admin);
    assert.equal(key.status, 201, JSON.stringify(key.body));
    const apiKey = (key.body as { api_key: string }).api_key;
    assert.ok(apiKey);
    secrets.set('API key', apiKey);
    const viaKey = await s.call('POST', '/v1/auth/token', { api_key: apiKey });
    assert.equal(viaKey.status, 200, JSON.stringify(viaKey.body));
    secrets.set('API-key session token', (viaKey.body as { session_token: string }).session_token);
    assert.equal((await s.call('POST', '/v1/authorize', { action: 'db.select', resource: { type: 'Database', id: 'orders-db' } }, (viaKey.body as { session_token: string }).session_token)).status, 200);

    const role = await s.call('POST', '/v1/credentials', { target: 'orders-db', permission: 'readonly', ttl: '10m', reason: 'report' }, session);
    assert.equal(role.status, 201, JSON.stringify(role.body));
    const password = (role.body as { credential: { password: string } }).credential.password;
    assert.ok(password);
    secrets.set('leased PostgreSQL password', password);

    const token = await s.call('POST', '/v1/credentials', { target: 'orders-api', scopes: ['orders:read'], reason: 'sync' }, session);
    assert.equal(token.status, 201, JSON.stringify(token.body));
    const accessToken = (token.body as { credential: { access_token: string } }).credential.access_token;
    assert.ok(accessToken);
    secrets.set('access token', accessToken);

    // What an attacker sends is kept out too: a forged bearer and a forged login token.
    const forged = 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJmb3JnZWQtbWFya2VyLXNlY3JldCJ9.';
    secrets.set('forged bearer', forged);
    assert.equal((await s.call('POST', '/v1/authorize', { action: 'db.select', resource: { type: 'Database', id: 'orders-db' } }, forged)).status, 401);
    assert.equal((await s.call('POST', '/v1/auth/token', { token: forged })).status, 401);
    // A secret in a query string is not logged either.
    assert.equal((await s.call('GET', `/v1/leases?token=${encodeURIComponent(apiKey)}`, undefined, session)).status, 400);

    await new Promise((r) => setTimeout(r, 50)); // the last onResponse lines
    assert.ok(lines.length > 10, `log lines: ${lines.length}`);
    const parsed = lines.map((l, i) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        return assert.fail(`line ${i} is not JSON: ${l}`);
      }
    });
    for (const o of parsed) {
      assert.equal(typeof o.level, 'number');
      assert.equal(typeof o.time, 'number');
      assert.equal(typeof o.msg, 'string');
    }
    for (const [what, secret] of secrets) {
      const hit = lines.find((l) => l.includes(secret));
      assert.equal(hit, undefined, `the ${what} is in the log: ${hit}`);
    }

    const requests = parsed.filter((o) => o.msg === 'request');
    const authorize = requests.filter((o) => o.route === '/v1/authorize');
    assert.equal(authorize.length, 3);
    const allowed = authorize.filter((o) => o.status === 200);
    assert.deepEqual(allowed.map((o) => o.identity), [API, API]);
    assert.equal(allowed[0]!.decision_id, (decided.body as { decision_id: string }).decision_id);
    for (const o of requests) {
      assert.match(String(o.req_id), /^req_/);
      assert.equal(typeof o.ms, 'number');
      assert.ok(!String(o.path).includes('?'), 'no query string');
    }
    const issued = requests.find((o) => o.route === '/v1/credentials' && o.status === 201);
    assert.equal(issued?.decision_id, (role.body as { lease: { decision_id: string } }).lease.decision_id);
  });
});
