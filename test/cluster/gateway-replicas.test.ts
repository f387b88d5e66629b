// Gateway sessions across replicas (issue #11, docs/gateways.md): two `portcullis server`
// processes over one PostgreSQL store, each with its own PostgreSQL gateway; a session lives on
// A's gateway. Suspending its identity on B, or terminating the session through B's API, ends it
// on A within 1 s (the ChangeFeed notice, the lease revocation, the registry's backstop), measured
// between the servers' own records of the cause and of the session's end.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { freePort, startPostgres, type TestPostgres } from '../credentials/helpers.ts';
import { freshStoreUrl } from '../store/pg.ts';
import { witnessUrl } from '../store/stores.ts';
import { Cluster, auditRecords, call, ciIssuer, eventually } from './harness.ts';
import type { AuditRecord, Replica as Server } from './harness.ts';

/** A replica and the port of its PostgreSQL gateway. */
interface Replica extends Server {
  gateway: number;
}

describe('gateway sessions over two replicas', { timeout: 480_000 }, () => {
  const cluster = new Cluster('pcx-gw-cluster-');
  const { dir } = cluster;
  const replicas = cluster.replicas as Replica[];
  const { jwk, login } = ciIssuer();
  let target: TestPostgres;
  let env: NodeJS.ProcessEnv;
  let admin: string;

  const start = async (name: string): Promise<Replica> => {
    const gateway = await freePort();
    const cfg = join(dir, `portcullis-${name}.yaml`);
    writeFileSync(
      cfg,
      `listen: { host: 127.0.0.1, port: 7070 }
public_url: http://portcullis.cluster.test
data_dir: ./data
store: { kind: postgres, url_env: PCX_STORE_URL, pool: 4 }
trusts:
  - { name: ci, kind: oidc, issuer: "https://ci.test", jwks: { keys: [${JSON.stringify(jwk)}] }, audiences: [portcullis], algorithms: [EdDSA], identity: "workload:github/{repository}", boundary: application, environment: prod, owner: team:platform }
resources:
  - { type: Database, id: orders-db, boundary: application, environment: prod }
targets:
  - { name: orders-db, kind: postgres, host: 127.0.0.1, port: ${target.port}, database: orders, admin: { user: ${target.user}, password_env: ORDERS_DB_ADMIN_PASSWORD }, permissions: { readonly: readonly }, max_ttl: 1h }
gateways:
  - { name: gw-${name.toLowerCase()}, kind: postgres, listen: { host: 127.0.0.1, port: ${gateway} }, target: orders-db }
policies: ./p.cedar
audit: { fail_closed: true, witness: { url: "${await witnessUrl()}" } }
outbound: { allow_private: [127.0.0.0/8] }
`,
    );
    return cluster.start<Replica>(name, cfg, env, { gateway });
  };

  /** A client on A's gateway, and the id of its session. */
  const onA = async (token: string): Promise<{ c: pg.Client; id: string; ended: Promise<Error & { code?: string }> }> => {
    const a = replicas[0]!;
    const c = new pg.Client({ host: '127.0.0.1', port: a.gateway, user: 'x', database: 'orders-db', password: token });
    const ended = new Promise<Error & { code?: string }>((r) => c.once('error', r));
    c.on('error', () => {}); // after the FATAL, the close is an error too
    await c.connect().catch((err: Error) => assert.fail(`connect through A's gateway: ${err.message}\n${a.stderr}`));
    const one = await c.query('SELECT 1 AS one').catch((err: Error) => assert.fail(`a first statement through A's gateway: ${err.message}\n${a.stderr}\n${replicas[1]?.stderr}`));
    assert.equal(one.rows[0].one, 1);
    const mine = await call(a, 'GET', '/v1/sessions?mine=true&live=true', undefined, token);
    const id = (mine.body.sessions as { id: string; here: boolean }[]).find((s) => s.here)!.id;
    return { c, id, ended };
  };

  before(async () => {
    target = await startPostgres();
    writeFileSync(join(dir, 'p.cedar'), 'permit (principal is Workload, action in [Action::"db.connect", Action::"credential.issue", Action::"db.select"], resource in Database::"orders-db");\n');
    env = { ...process.env, PORTCULLIS_MASTER_KEY: Buffer.alloc(32, 6).toString('base64'), PCX_STORE_URL: await freshStoreUrl(), ORDERS_DB_ADMIN_PASSWORD: target.password };
    await start('A');
    await start('B');
    admin = await cluster.admin();
  }, { timeout: 400_000 });

  after(async () => {
    await cluster.stop();
    await target?.stop();
  });

  /**
   * How long after its cause session `id` ended, on the servers' own clocks (the records' times: the
   * cause written by B, the end by A; the test process's timing is not measured). Polls for both
   * records with a generous deadline; `causes` picks the cause's records (the earliest counts).
   */
  const endAfter = async (id: string, causes: (lease: string) => Promise<AuditRecord[]>) => {
    const b = replicas[1]!;
    const end = await eventually('session.end recorded', async () => (await auditRecords(b, 'session', 'session.end', admin)).find((r) => r.payload.session === id), 30_000);
    const start = (await auditRecords(b, 'session', 'session.start', admin)).find((r) => r.payload.session === id)!;
    const lease = start.payload.lease as string;
    const cause = await eventually('the cause recorded', async () => {
      const found = await causes(lease);
      return found.length > 0 ? found : undefined;
    }, 30_000);
    const since = Math.min(...cause.map((r) => Date.parse(r.time)));
    return { end, lease, ms: Date.parse(end.time) - since };
  };
  /** The credential.revoked record of `lease` (polled for). */
  const revokedLease = (lease: string) =>
    eventually(`lease ${lease} revoked`, async () => (await auditRecords(replicas[1]!, 'admin', 'credential.revoked', admin)).find((r) => r.payload.lease === lease), 30_000);

  it('suspending the identity on B ends its gateway session on A within 1 s', async () => {
    const [a, b] = replicas as [Replica, Replica];
    const worker = 'workload:github/acme/worker';
    const { id, ended } = await onA(await login(a, 'acme/worker'));
    const s = await call(b, 'POST', `/v1/identities/${encodeURIComponent(worker)}/suspend`, { reason: 'compromised runner' }, admin);
    assert.equal(s.status, 200, JSON.stringify(s.body));
    const err = await ended;
    // Suspension also revokes the identity's leases, so the target may end the upstream first (08006);
    // otherwise A's registry ends it on the notice (57P01, naming why).
    if (err.code === '57P01') assert.match(err.message, /identity workload:github\/acme\/worker is suspended|lease .* ended/);
    else assert.equal(err.code, '08006', err.message);
    // The cause: the suspension's records (its lease revocations, then identity.suspended).
    const { end, lease, ms } = await endAfter(id, async () => [
      ...(await auditRecords(b, 'admin', 'identity.suspended', admin)).filter((r) => r.subject === worker),
      ...(await auditRecords(b, 'admin', 'credential.revoked', admin)).filter((r) => r.subject === worker && String(r.payload.reason).startsWith('identity suspended')),
    ]);
    // Causality: the end names the suspension, or the end of the session's lease, which the suspension revoked.
    const reason = String(end.payload.reason);
    if (!/identity workload:github\/acme\/worker is suspended/.test(reason)) {
      assert.ok(reason === `lease ${lease} ended` || reason === 'the upstream server closed the connection', reason);
      assert.match(String((await revokedLease(lease)).payload.reason), /^identity suspended: compromised runner/);
    }
    assert.ok(ms <= 1000, `session.end recorded ${ms} ms after the suspension (server clocks)`);
  });

  it('terminating the session through B ends it on A within 1 s', async () => {
    const [a, b] = replicas as [Replica, Replica];
    const token = await login(a, 'acme/api');
    const { id, ended } = await onA(token);
    const t = await call(b, 'POST', `/v1/sessions/${id}/terminate`, { reason: 'cluster test' }, token);
    assert.equal(t.status, 200, JSON.stringify(t.body));
    assert.equal(t.body.here, false, 'it lives on A, not on B');
    const err = await ended;
    assert.ok(err.code === '57P01' || err.code === '08006', `${err.code}: ${err.message}`);
    // The record names the session's lease (its payload.session is the caller's login session).
    const { end, lease, ms } = await endAfter(id, async (l) => (await auditRecords(b, 'admin', 'gateway_session.terminated', admin)).filter((r) => r.payload.lease === l));
    // Causality: B ends a session on A by revoking its lease; A's end names that lease (or the upstream it closed).
    assert.ok(end.payload.reason === `lease ${lease} ended` || end.payload.reason === 'the upstream server closed the connection', String(end.payload.reason));
    assert.match(String((await revokedLease(lease)).payload.reason), new RegExp(`^gateway session ${id} terminated by`));
    assert.ok(ms <= 1000, `session.end recorded ${ms} ms after the termination (server clocks)`);
  });
});
