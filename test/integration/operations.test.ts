// What operators read off a real server. The operational log at its most verbose level: every
// line is one JSON object, every request has one line (request id, route, status, latency,
// identity, decision id), and no secret the server handed out or was sent — bootstrap secret,
// session tokens, API key, PostgreSQL password, access token, a forged bearer token — appears in
// any line. The metrics after that traffic: `promtool check metrics` clean, and the counts match.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger } from '../../src/common/log.ts';
import { startServer } from '../credentials/server.ts';
import type { TestServer } from '../credentials/server.ts';
import { startPostgres } from '../credentials/helpers.ts';
import type { TestPostgres } from '../credentials/helpers.ts';
import { missingDependency } from '../ci.ts';

const API = 'workload:github/acme/api';
const hasPromtool = spawnSync('promtool', ['--version']).status === 0;
const noPromtool = hasPromtool ? false : missingDependency('promtool', 'apt-get install prometheus (Debian ships promtool in it)');

/** The value of one sample in Prometheus text format (0 when absent). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    const m = /^([a-z_:]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return 0;
}

describe('operations: log and metrics', () => {
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
  let roleLease = '';
  let admin = '';
  let session = '';

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
    admin = (adminLogin.body as { session_token: string }).session_token;
    secrets.set('admin session token', admin);

    session = await s.login('acme/api');
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
    roleLease = (role.body as { lease: { id: string } }).lease.id;
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

  it('serves metrics promtool accepts, counting what happened', { skip: noPromtool }, async () => {
    const denied = await s.call('POST', '/v1/credentials', { target: 'orders-db', permission: 'readonly', ttl: '10m', reason: 'x' }, admin);
    assert.equal(denied.status, 403, JSON.stringify(denied.body));
    const revoked = await s.call('POST', '/v1/revocations', { selector: { lease: roleLease }, reason: 'done' }, session);
    assert.equal(revoked.status, 200, JSON.stringify(revoked.body));
    await s.running.broker.audit.flush();
    const res = await fetch(`${s.url}/metrics`);
    assert.equal(res.status, 200);
    const text = await res.text();
    const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.equal(check.status, 0, `promtool: ${check.stdout}${check.stderr}`);

    assert.equal(sample(text, 'portcullis_decisions_total', { decision: 'allow', engine: 'compiled' }) >= 2, true);
    assert.equal(sample(text, 'portcullis_decision_seconds_count', { engine: 'compiled' }) >= 2, true);
    assert.equal(sample(text, 'portcullis_credential_issuance_total', { kind: 'postgres', target: 'orders-db', result: 'issued' }), 1);
    assert.equal(sample(text, 'portcullis_credential_issuance_total', { kind: 'postgres', target: 'orders-db', result: 'denied' }), 1);
    assert.equal(sample(text, 'portcullis_credential_issuance_total', { kind: 'api', target: 'orders-api', result: 'issued' }), 1);
    assert.equal(sample(text, 'portcullis_credential_revocations_total', { kind: 'postgres', result: 'revoked' }), 1);
    assert.equal(sample(text, 'portcullis_credential_revocation_seconds_count', { kind: 'postgres' }), 1);
    assert.equal(sample(text, 'portcullis_leases_active', { kind: 'api' }), 1);
    assert.equal(sample(text, 'portcullis_leases_active', { kind: 'postgres' }), 0);
    assert.ok(sample(text, 'portcullis_authentications_total', { result: 'failure' }) >= 1);
    assert.ok(sample(text, 'portcullis_audit_append_seconds_count', { result: 'ok' }) >= 1);
    assert.ok(sample(text, 'portcullis_audit_events_total', { result: 'ok' }) >= 10);
    assert.ok(sample(text, 'portcullis_http_request_duration_seconds_count', { route: '/v1/authorize', method: 'POST' }) >= 3);
    assert.ok(text.includes('portcullis_audit_checkpoint_age_seconds{stream="authz"}'), 'a checkpoint was signed (every 5 events)');
    assert.ok(sample(text, 'portcullis_process_cpu_seconds_total') > 0, 'process metrics');
    assert.ok(text.includes('portcullis_grants_active 0'));

    // The Grafana dashboard shipped in deploy/ asks only for metrics the server serves.
    const dashboard = readFileSync(join(import.meta.dirname, '..', '..', 'deploy', 'grafana', 'portcullis-dashboard.json'), 'utf8');
    const asked = new Set([...dashboard.matchAll(/portcullis_[a-z0-9_]+/g)].map((m) => m[0].replace(/_(bucket|count|sum)$/, '')));
    const served = new Set([...text.matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1]));
    assert.deepEqual([...asked].filter((n) => !served.has(n)), [], 'dashboard metrics the server does not serve');
  });
});
