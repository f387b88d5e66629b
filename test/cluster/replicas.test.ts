// Three replicas (real `portcullis server` processes) over one PostgreSQL store: a session from A
// decides on B, a revocation on C reaches A and B, a suspension on A ends B's sessions, a policy
// activated on B is live on A and C, and when the leader is killed (-9) another takes the lead.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { startPostgres } from '../credentials/helpers.ts';
import type { TestPostgres } from '../credentials/helpers.ts';
import pg from 'pg';
import { freshStoreUrl } from '../store/pg.ts';
import { witnessUrl, witnessed } from '../store/stores.ts';
import { Cluster, call, ciIssuer, until } from './harness.ts';
import type { Replica } from './harness.ts';

const run = promisify(execFile);
const DB = { type: 'Database', id: 'orders' };

// Generous: under a loaded CI machine three server processes take a while to start.
describe('three replicas over one PostgreSQL store', { timeout: 480_000 }, () => {
  const cluster = new Cluster('pcx-cluster-');
  const { dir, replicas } = cluster;
  const ci = ciIssuer();
  const { jwk, login } = ci;
  let env: NodeJS.ProcessEnv;
  let admin: string;
  /** A real PostgreSQL target the replicas issue roles on (the orphan-role check after the kill). */
  let target: TestPostgres;

  const decide = (r: Replica, token: string, action = 'db.select') => call(r, 'POST', '/v1/authorize', { action, resource: DB }, token);
  const start = (name: string) => cluster.start(name, join(dir, 'portcullis.yaml'), env);

  before(async () => {
    target = await startPostgres();
    writeFileSync(join(dir, 'p.cedar'), `permit (principal is Workload, action == Action::"db.select", resource == Database::"orders");
`);
    writeFileSync(
      join(dir, 'portcullis.yaml'),
      `listen: { host: 127.0.0.1, port: 7070 }
public_url: http://portcullis.cluster.test
data_dir: ./data
store: { kind: postgres, url_env: PCX_STORE_URL, pool: 4 }
trusts:
  - { name: ci, kind: oidc, issuer: "https://ci.test", jwks: { keys: [${JSON.stringify(jwk)}] }, audiences: [portcullis], algorithms: [EdDSA], identity: "workload:github/{repository}", boundary: application, environment: prod, owner: team:platform }
resources:
  - { type: Database, id: orders, boundary: application, environment: prod }
  - { type: Database, id: orders-db, boundary: application, environment: prod }
  - { type: Host, id: bastion, boundary: application, environment: prod }
targets:
  - { name: bastion, kind: ssh, hosts: [127.0.0.1], principals: { "workload:github/*": [deploy] }, max_ttl: 1h }
  - { name: orders-db, kind: postgres, host: 127.0.0.1, port: ${target.port}, database: orders, admin: { user: ${target.user}, password_env: ORDERS_DB_ADMIN_PASSWORD }, permissions: { readonly: readonly }, max_ttl: 1h }
policies: ./p.cedar
audit: { fail_closed: true, checkpoint_every: 3, checkpoint_interval: 1s, witness: { url: "${await witnessUrl()}" } }
outbound: { allow_private: [127.0.0.0/8] }   # the witness receiver is this test, on loopback
`,
    );
    env = { ...process.env, PORTCULLIS_MASTER_KEY: Buffer.alloc(32, 4).toString('base64'), PCX_STORE_URL: await freshStoreUrl(), ORDERS_DB_ADMIN_PASSWORD: target.password };
    // One at a time first (migrations and first keys are raced in the store tests), then the others.
    await start('A');
    await Promise.all([start('B'), start('C')]);
    admin = await cluster.admin();
  }, { timeout: 400_000 });

  after(async () => {
    await cluster.stop();
    await target?.stop();
  });

  it('a session from A decides on B and C; revoking it on C is refused on A and B at once', async () => {
    const [a, b, c] = replicas as [Replica, Replica, Replica];
    const token = await login(a, 'acme/api');
    assert.equal((await decide(b, token)).body.decision, 'allow');
    assert.equal((await decide(c, token)).body.decision, 'allow');
    const jti = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).jti as string;
    assert.equal((await call(c, 'POST', '/v1/sessions/revoke', { jti }, token)).status, 200);
    const onA = await until('refused on A', async () => (await decide(a, token)).status === 401, 1000);
    const onB = await until('refused on B', async () => (await decide(b, token)).status === 401, 1000);
    assert.ok(onA < 1000 && onB < 1000, `revocation reached A in ${onA.toFixed(0)} ms, B in ${onB.toFixed(0)} ms`);
  });

  it('an identity first seen on one replica is known on the others at once (its session works there immediately)', async () => {
    const [a, b, c] = replicas as [Replica, Replica, Replica];
    // 30 first logins at once, each session used on the next replica the moment it is answered,
    // while the notices of the new identities are still on their way.
    const statuses = await Promise.all(
      Array.from({ length: 30 }, async (_, i) => {
        const [first, next] = [[a, b], [b, c], [c, a]][i % 3] as [Replica, Replica];
        const token = await login(first, `acme/fresh-${i}`);
        return (await decide(next, token)).status;
      }),
    );
    assert.deepEqual(statuses, Array(30).fill(200));
  });

  it("suspending an identity on A ends its live sessions on B and C, and new logins anywhere", async () => {
    const [a, b, c] = replicas as [Replica, Replica, Replica];
    const token = await login(b, 'acme/worker');
    assert.equal((await decide(c, token)).body.decision, 'allow');
    const s = await call(a, 'POST', `/v1/identities/${encodeURIComponent('workload:github/acme/worker')}/suspend`, { reason: 'compromised runner' }, admin);
    assert.equal(s.status, 200, JSON.stringify(s.body));
    await until('suspended on B', async () => (await decide(b, token)).status === 401, 1000);
    await until('suspended on C', async () => (await decide(c, token)).status === 401, 1000);
    assert.equal((await call(c, 'POST', '/v1/auth/token', { token: await ci.token('acme/worker') })).status, 401);
  });

  it('a policy activated on B is live on A and C within a second', async () => {
    const [a, b, c] = replicas as [Replica, Replica, Replica];
    const token = await login(c, 'acme/api');
    assert.equal((await decide(a, token, 'db.update')).body.decision, 'deny');
    const text = 'permit (principal is Workload, action in [Action::"db.select", Action::"db.update"], resource == Database::"orders");\n';
    const act = await call(b, 'PUT', '/v1/policies', { files: [{ name: 'widen.cedar', text }], reason: 'widen for the cluster test' }, admin);
    assert.equal(act.status, 200, JSON.stringify(act.body));
    await until('live on A', async () => (await decide(a, token, 'db.update')).body.decision === 'allow', 1000);
    await until('live on C', async () => (await decide(c, token, 'db.update')).body.decision === 'allow', 1000);
  });

  it('an SSH certificate issued on A and revoked on C is in the KRL every replica serves', async () => {
    const [a, b, c] = replicas as [Replica, Replica, Replica];
    const text = 'permit (principal is Workload, action == Action::"credential.issue", resource == Host::"bastion");\n';
    const act = await call(a, 'PUT', '/v1/policies', { files: [{ name: 'ssh.cedar', text }], reason: 'the KRL test issues a certificate' }, admin);
    assert.equal(act.status, 200, JSON.stringify(act.body));
    const token = await login(a, 'acme/deployer');
    const key = join(dir, 'id_deployer');
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
    const issued = await call(a, 'POST', '/v1/credentials', { target: 'bastion', ttl: '10m', reason: 'deploy', public_key: readFileSync(`${key}.pub`, 'utf8').trim() }, token);
    assert.equal(issued.status, 201, JSON.stringify(issued.body));
    writeFileSync(`${key}-cert.pub`, `${(issued.body.credential as { certificate: string }).certificate}\n`);
    const revoked = (krl: Buffer) => {
      writeFileSync(join(dir, 'krl'), krl);
      // ssh-keygen -Q exits non-zero when a key it tests is revoked.
      return run('ssh-keygen', ['-Q', '-f', join(dir, 'krl'), `${key}-cert.pub`]).then(() => false, () => true);
    };
    const krlOf = async (r: Replica) => {
      const res = await fetch(`${r.url}/v1/ssh/krl`);
      assert.equal(res.status, 200, `KRL from ${r.name}`);
      return Buffer.from(await res.arrayBuffer());
    };
    assert.equal(await revoked(await krlOf(b)), false, 'not revoked yet');
    const lease = (issued.body.lease as { id: string }).id;
    const r = await call(c, 'POST', '/v1/revocations', { selector: { lease }, reason: 'key left on a laptop' }, admin);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    // Each replica compiles at most once a second.
    for (const x of [a, b, c]) await until(`revoked in ${x.name}'s KRL`, async () => revoked(await krlOf(x)), 3000);
    // One ETag for one list on every replica; a poller holding it gets 304 anywhere.
    const etags = await Promise.all([a, b, c].map(async (x) => (await fetch(`${x.url}/v1/ssh/krl`)).headers.get('etag')));
    assert.ok(etags[0] && etags.every((e) => e === etags[0]), JSON.stringify(etags));
    for (const x of [a, b, c]) assert.equal((await fetch(`${x.url}/v1/ssh/krl`, { headers: { 'if-none-match': etags[0]! } })).status, 304);
  });

  it('kill -9 of the leader under mixed load: another leads within 10 s; every decision a client received is on record; no orphan PostgreSQL role; the streams verify', async () => {
    // Decisions and role issuance on the target, on every replica.
    const text = 'permit (principal is Workload, action == Action::"db.select", resource == Database::"orders");\npermit (principal is Workload, action == Action::"credential.issue", resource == Database::"orders-db");\n';
    const act = await call(replicas[0]!, 'PUT', '/v1/policies', { files: [{ name: 'load.cedar', text }], reason: 'the kill test issues roles' }, admin);
    assert.equal(act.status, 200, JSON.stringify(act.body));
    const policyVersion = act.body.version;
    await until('the load policy on every replica', async () => (await Promise.all(replicas.map(async (r) => (await call(r, 'GET', '/readyz')).body.policy_version === policyVersion))).every(Boolean), 2000);
    const ready = async (r: Replica) => (await call(r, 'GET', '/readyz')).body as { leader?: boolean };
    let leader: Replica | undefined;
    await until('a leader', async () => {
      for (const r of replicas) if ((await ready(r)).leader) leader = r;
      return leader !== undefined;
    }, 10_000);
    const others = replicas.filter((r) => r !== leader);
    assert.equal((await Promise.all(others.map(ready))).filter((x) => x.leader).length, 0, 'one leader at a time');
    const token = await login(others[0]!, 'acme/load');

    // Decisions (3 clients) and role issuance (2 clients) on all three replicas, back to back,
    // while the leader is killed.
    const received: string[] = [];
    const leases: string[] = [];
    let stop = false;
    const alive = (r: Replica) => !stop && r.child.exitCode === null && r.child.signalCode === null;
    const load = replicas.flatMap((r) => [
      ...Array.from({ length: 3 }, async () => {
        while (alive(r)) {
          try {
            const d = await decide(r, token);
            if (d.status === 200) received.push(d.body.decision_id as string);
          } catch {
            /* the killed replica's connections fail: those clients got no decision */
          }
        }
      }),
      ...Array.from({ length: 2 }, async () => {
        while (alive(r)) {
          try {
            const c = await call(r, 'POST', '/v1/credentials', { target: 'orders-db', permission: 'readonly', ttl: '10m', reason: 'cluster load' }, token);
            if (c.status === 201) leases.push((c.body.lease as { id: string }).id);
            else if (c.status !== 503) assert.fail(`issuance on ${r.name}: ${c.status} ${JSON.stringify(c.body)}`);
          } catch (e) {
            if (e instanceof assert.AssertionError) throw e;
            /* the killed replica: no answer */
          }
        }
      }),
    ]);
    // Load under way (decisions answered) before the kill; a loaded machine may take a while.
    await until('decisions answered before the kill', async () => received.length > 0, 30_000);
    const before = received.length;
    leader!.child.kill('SIGKILL');
    const took = await until('a new leader', async () => (await Promise.all(others.map(ready))).some((x) => x.leader), 10_000);
    await new Promise((res) => setTimeout(res, 500));
    stop = true;
    await Promise.all(load);
    assert.ok(took < 10_000, `failover took ${took.toFixed(0)} ms`);
    assert.ok(before > 0 && received.length > before, `decisions before the kill ${before}, in all ${received.length}`);
    assert.ok(leases.length > 0, 'roles were issued under the load');

    // No orphan role: once the new leader has reconciled, every role Portcullis made at the target
    // belongs to an active lease, no intent is left, and every lease a client received is active.
    // (An intent the killed replica left — its role made or not — is claimed and cleaned up.)
    const store = new pg.Client({ connectionString: env.PCX_STORE_URL });
    const tgt = target.admin();
    await store.connect();
    await tgt.connect();
    try {
      let state = '';
      await until('no orphan role and no intent left', async () => {
        const roles = (await tgt.query<{ rolname: string; comment: string | null }>("SELECT rolname, shobj_description(oid, 'pg_authid') AS comment FROM pg_roles WHERE rolname LIKE 'pcx\\_%'")).rows;
        const owners = roles.map((r) => /lease=(\S+)/.exec(r.comment ?? '')?.[1] ?? '?');
        const rows = (await store.query<{ id: string; status: string }>('SELECT id, status FROM credential_leases')).rows;
        const status = new Map(rows.map((r) => [r.id, r.status]));
        const orphans = owners.filter((id) => status.get(id) !== 'active');
        const intents = rows.filter((r) => r.status === 'issuing').map((r) => r.id);
        const failed = rows.filter((r) => r.status === 'failed').length;
        state = `${roles.length} roles, ${orphans.length} orphans (${orphans.join(', ')}), ${intents.length} intents, ${failed} failed leases`;
        return orphans.length === 0 && intents.length === 0;
      }, 15_000);
      console.log(`# after the kill: ${state}; ${leases.length} leases answered to clients`);
      const rows = (await store.query<{ id: string; status: string }>('SELECT id, status FROM credential_leases WHERE id = ANY($1)', [leases])).rows;
      assert.equal(rows.length, leases.length);
      for (const r of rows) assert.equal(r.status, 'active', `lease ${r.id} a client received`);
    } finally {
      await store.end();
      await tgt.end();
    }

    // Every decision id a client received is in the authz stream (read back from a survivor).
    const recorded = new Set<string>();
    for (let after = 0; ;) {
      const page = await call(others[0]!, 'GET', `/v1/audit/authz?identity=${encodeURIComponent('workload:github/acme/load')}&limit=5000&after=${after}`, undefined, admin);
      assert.equal(page.status, 200, JSON.stringify(page.body));
      const events = page.body.events as { seq: number; payload: { decision_id?: string } }[];
      for (const e of events) if (e.payload.decision_id) recorded.add(e.payload.decision_id);
      if (events.length < 5000) break;
      after = events.at(-1)!.seq;
    }
    const lost = received.filter((id) => !recorded.has(id));
    assert.deepEqual(lost, [], `${lost.length} of ${received.length} answered decisions are not on record`);

    // The streams three replicas wrote (one killed mid-way) verify as one chain each, their
    // checkpoints linked by whichever replica led.
    const v = await call(others[0]!, 'GET', '/v1/audit/verify', undefined, admin);
    assert.equal(v.status, 200, JSON.stringify(v.body));
    assert.equal(v.body.ok, true, JSON.stringify(v.body));
  });

  it('the leading replica published the signed checkpoints to the witness', async () => {
    await until('a checkpoint at the witness', async () => witnessed.length > 0, 5000);
    for (const c of witnessed as { stream?: string; sig?: string }[]) assert.ok(c.stream && c.sig, JSON.stringify(c));
  });
});
