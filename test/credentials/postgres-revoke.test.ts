// Item 8.9: a lease never leaves something that runs with more rights than it had. A lease that
// may create objects plants a SECURITY DEFINER function, a view, a trigger, an event trigger
// attempt, default privileges and an object in another database; after revoke nothing of it runs
// as the broker's admin role — checked with real SQL as an unrelated role, against a real server
// where the admin connection is a NOSUPERUSER CREATEROLE role.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { validateTargets } from '../../src/credentials/config.ts';
import type { PostgresTarget } from '../../src/credentials/config.ts';
import { createCredentialService } from '../../src/credentials/service.ts';
import type { CredentialService } from '../../src/credentials/service.ts';
import { BROKER_ROLE, connectAs, MemoryAudit, startPostgres, TablePolicy, sqliteLeases } from './helpers.ts';
import type { TestPostgres } from './helpers.ts';

let pgdb: TestPostgres;
let svc: CredentialService;
let probe: pg.Client;
const SECRET = 'crown-jewels-7f3a';

before(async () => {
  pgdb = await startPostgres();
  const su = pgdb.admin();
  await su.connect();
  // Something only the admin role may read: what a planted object would be after.
  await su.query(`CREATE TABLE vault (s text); INSERT INTO vault VALUES ('${SECRET}'); ALTER TABLE vault OWNER TO ${BROKER_ROLE};
                  REVOKE ALL ON vault FROM PUBLIC`);
  // An unrelated role that later tries to use what the lease left behind.
  await su.query(`CREATE ROLE probe LOGIN PASSWORD 'probe-pw'`);
  // A second database where PUBLIC may create (as before PG 15): DROP OWNED is per database.
  await su.query('CREATE DATABASE scratch');
  await su.end();
  const s2 = new pg.Client({ ...suInfo(), database: 'scratch' });
  await s2.connect();
  await s2.query('GRANT CREATE ON SCHEMA public TO PUBLIC');
  await s2.end();
  const env = { PG_ADMIN_PW: pgdb.password };
  const statements = ['GRANT CREATE ON SCHEMA public TO {{role}}'];
  const target = validateTargets([
    {
      name: 'orders-db', kind: 'postgres', host: pgdb.host, port: pgdb.port, database: pgdb.database,
      admin: { user: pgdb.user, password_env: 'PG_ADMIN_PW' },
      permissions: { planter: statements, 'planter-keep': { statements, on_revoke: 'keep_objects' } },
      max_ttl: '1h',
    },
  ])[0] as PostgresTarget;
  const policy = new TablePolicy();
  policy.allow('workload:planter', 'Database::orders-db');
  svc = createCredentialService({ leases: sqliteLeases(), audit: new MemoryAudit(), decide: policy.decide, targets: [target], env });
  probe = await connectAs(pgdb, 'probe', 'probe-pw');
});

after(async () => {
  await probe?.end().catch(() => {});
  await svc?.stop();
  await pgdb?.stop();
});

function suInfo(): pg.ClientConfig {
  const c = pgdb.admin() as unknown as { connectionParameters: pg.ClientConfig };
  const p = c.connectionParameters;
  return { host: p.host, port: p.port, user: p.user, password: p.password, database: p.database };
}

async function asSuperuser<T>(database: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ ...suInfo(), database });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** Objects in `database` owned by the broker's admin role (functions, relations, default ACLs). */
async function ownedByAdmin(database: string): Promise<string[]> {
  return asSuperuser(database, async (c) => {
    const r = await c.query<{ o: string }>(
      `SELECT 'function ' || proname AS o FROM pg_proc WHERE proowner = $1::regrole
       UNION ALL SELECT 'relation ' || relname FROM pg_class WHERE relowner = $1::regrole
       UNION ALL SELECT 'default acl ' || defaclobjtype::text FROM pg_default_acl WHERE defaclrole = $1::regrole
       UNION ALL SELECT 'event trigger ' || evtname FROM pg_event_trigger ORDER BY 1`,
      [BROKER_ROLE],
    );
    return r.rows.map((x) => x.o);
  });
}

/** Plants everything a lease with CREATE on a schema can leave behind; returns the planted names. */
async function plant(user: string, password: string, tag: string): Promise<void> {
  const c = await connectAs(pgdb, user, password);
  try {
    await c.query(`CREATE FUNCTION public.whoami_${tag}() RETURNS text LANGUAGE sql SECURITY DEFINER AS 'SELECT current_user::text'`);
    await c.query(`CREATE FUNCTION public.steal_${tag}() RETURNS text LANGUAGE plpgsql SECURITY DEFINER AS $$BEGIN RETURN (SELECT string_agg(s, ',') FROM public.vault); END$$`);
    await c.query(`CREATE VIEW public.peek_${tag} AS SELECT s FROM public.vault`);
    await c.query(`GRANT SELECT ON public.peek_${tag} TO PUBLIC`);
    await c.query(`CREATE TABLE public.dropbox_${tag} (x text)`);
    await c.query(`GRANT INSERT, SELECT ON public.dropbox_${tag} TO PUBLIC`);
    await c.query(`CREATE FUNCTION public.copy_${tag}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS
                   $$BEGIN NEW.x := (SELECT string_agg(s, ',') FROM public.vault); RETURN NEW; END$$`);
    await c.query(`CREATE TRIGGER copy_${tag} BEFORE INSERT ON public.dropbox_${tag} FOR EACH ROW EXECUTE FUNCTION public.copy_${tag}()`);
    await c.query(`ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO PUBLIC`);
    await c.query(`CREATE FUNCTION public.evt_${tag}() RETURNS event_trigger LANGUAGE plpgsql AS 'BEGIN END'`);
    await assert.rejects(c.query(`CREATE EVENT TRIGGER evt_${tag} ON ddl_command_start EXECUTE FUNCTION public.evt_${tag}()`), /permission denied/);
    await assert.rejects(c.query(`ALTER DEFAULT PRIVILEGES FOR ROLE ${BROKER_ROLE} GRANT ALL ON TABLES TO PUBLIC`), /permission denied|must be member/);
  } finally {
    await c.end();
  }
  const other = new pg.Client({ host: pgdb.host, port: pgdb.port, database: 'scratch', user, password });
  await other.connect();
  try {
    await other.query(`CREATE FUNCTION public.whoami_${tag}() RETURNS text LANGUAGE sql SECURITY DEFINER AS 'SELECT current_user::text'`);
  } finally {
    await other.end();
  }
}

async function probeScratch(sql: string): Promise<unknown> {
  const c = new pg.Client({ host: pgdb.host, port: pgdb.port, database: 'scratch', user: 'probe', password: 'probe-pw' });
  await c.connect();
  try {
    return (await c.query(sql)).rows;
  } finally {
    await c.end();
  }
}

describe('revoke leaves nothing running with the admin role', () => {
  test('default: everything the lease created is dropped, in every database', async () => {
    const before = { orders: await ownedByAdmin('orders'), scratch: await ownedByAdmin('scratch') };
    const { lease, credential } = await svc.issue({ identityId: 'workload:planter', target: 'orders-db', permission: 'planter', purpose: 'plant' });
    await plant(credential.user as string, credential.password as string, 'd');
    const res = await svc.revoke({ lease: lease.id }, { by: 'user:ops', reason: 'done' });
    assert.deepEqual(res.failed, []);
    assert.equal((await svc.get(lease.id)).status, 'revoked');
    for (const sql of ['SELECT public.whoami_d()', 'SELECT public.steal_d()', 'SELECT * FROM public.peek_d', `INSERT INTO public.dropbox_d VALUES ('x')`]) {
      await assert.rejects(probe.query(sql), /does not exist/, sql);
    }
    await assert.rejects(probeScratch('SELECT public.whoami_d()'), /does not exist/);
    assert.deepEqual({ orders: await ownedByAdmin('orders'), scratch: await ownedByAdmin('scratch') }, before);
    // The lease's default privileges are gone with it: a table created now is not PUBLIC's.
    const dacl = await asSuperuser('orders', (c) => c.query(`SELECT count(*)::int AS n FROM pg_default_acl WHERE defaclrole NOT IN (SELECT oid FROM pg_roles)`));
    assert.equal(dacl.rows[0].n, 0);
  });

  test('keep_objects: objects survive, owned by a NOLOGIN keeper with nothing worth taking', async () => {
    const before = { orders: await ownedByAdmin('orders'), scratch: await ownedByAdmin('scratch') };
    const { lease, credential } = await svc.issue({ identityId: 'workload:planter', target: 'orders-db', permission: 'planter-keep', purpose: 'plant and keep' });
    await plant(credential.user as string, credential.password as string, 'k');
    const res = await svc.revoke({ lease: lease.id }, { by: 'user:ops', reason: 'done' });
    assert.deepEqual(res.failed, []);
    const keeper = 'portcullis_kept_orders-db';
    // Still there, and running as the keeper, not as the admin role.
    assert.deepEqual((await probe.query('SELECT public.whoami_k() AS u')).rows, [{ u: keeper }]);
    assert.deepEqual(await probeScratch('SELECT public.whoami_k() AS u'), [{ u: keeper }]);
    await assert.rejects(probe.query('SELECT public.steal_k()'), /permission denied for table vault/);
    await assert.rejects(probe.query('SELECT * FROM public.peek_k'), /permission denied for table vault/);
    await assert.rejects(probe.query(`INSERT INTO public.dropbox_k VALUES ('x')`), /permission denied for table vault/);
    assert.deepEqual({ orders: await ownedByAdmin('orders'), scratch: await ownedByAdmin('scratch') }, before);
    const info = await asSuperuser('orders', (c) =>
      c.query(`SELECT rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls,
                      (SELECT count(*)::int FROM pg_auth_members WHERE member = r.oid) AS memberships
                 FROM pg_roles r WHERE rolname = $1`, [keeper]),
    );
    assert.deepEqual(info.rows, [{ rolcanlogin: false, rolsuper: false, rolcreaterole: false, rolcreatedb: false, rolbypassrls: false, memberships: 0 }]);
    assert.equal((await asSuperuser('orders', (c) => c.query(`SELECT count(*)::int AS n FROM pg_roles WHERE rolname = $1`, [lease.handle]))).rows[0].n, 0);
  });

  test('the admin connection is not a superuser and nothing needed one', async () => {
    const r = await asSuperuser('orders', (c) => c.query('SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = $1', [BROKER_ROLE]));
    assert.deepEqual(r.rows, [{ rolsuper: false, rolcreaterole: true }]);
  });
});
