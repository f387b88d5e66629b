// Item 8.9 (review): a lease that may create objects in a schema on the admin connection's
// search_path must not get its code run by the broker's admin connection. PostgreSQL resolves an
// unqualified function or operator over every schema on the search_path and prefers the better
// argument match (CVE-2018-1058): `public.pg_advisory_xact_lock(integer)` beats
// `pg_catalog.pg_advisory_xact_lock(bigint)` for an integer argument, an operator
// `public.=(oid, regclass)` beats `pg_catalog.=(oid, oid)`. Every variant below plants such a
// shadow that records `current_user` and tries to escalate; after issuing and revoking around it,
// nothing ran as the admin role. Real PostgreSQL, NOSUPERUSER CREATEROLE admin role.
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
let su: pg.Client;

before(async () => {
  pgdb = await startPostgres(['-c', 'max_prepared_transactions=5']);
  su = pgdb.admin();
  await su.connect();
  // Where a shadow writes who ran it: owned by an unrelated role, anyone may insert.
  await su.query(`CREATE ROLE bystander NOLOGIN; CREATE TABLE public.ran_as (who text, what text); ALTER TABLE public.ran_as OWNER TO bystander;
                  GRANT INSERT ON public.ran_as TO PUBLIC`);
  // Readable by the lease only (through its permission set); an unrelated role that may create in public.
  await su.query(`CREATE TABLE public.lease_only (s text); INSERT INTO public.lease_only VALUES ('only-for-the-lease');
                  ALTER TABLE public.lease_only OWNER TO ${BROKER_ROLE}; REVOKE ALL ON public.lease_only FROM PUBLIC;
                  CREATE ROLE other_app LOGIN PASSWORD 'other-pw'; GRANT CREATE ON SCHEMA public TO other_app`);
  const target = validateTargets([
    {
      name: 'orders-db', kind: 'postgres', host: pgdb.host, port: pgdb.port, database: pgdb.database,
      admin: { user: pgdb.user, password_env: 'PG_ADMIN_PW' },
      permissions: {
        planter: ['GRANT CREATE ON SCHEMA public TO {{role}}'],
        reader: { preset: 'readonly', schemas: ['public'] },
        keep: { statements: ['GRANT CREATE ON SCHEMA public TO {{role}}'], on_revoke: 'keep_objects' },
        'planter-reader': ['GRANT CREATE ON SCHEMA public TO {{role}}', 'GRANT SELECT ON public.lease_only TO {{role}}'],
      },
      max_ttl: '1h',
    },
  ])[0] as PostgresTarget;
  const policy = new TablePolicy();
  policy.allow('workload:planter', 'Database::orders-db');
  svc = createCredentialService({ leases: sqliteLeases(), audit: new MemoryAudit(), decide: policy.decide, targets: [target], env: { PG_ADMIN_PW: pgdb.password } });
});

after(async () => {
  await su?.end().catch(() => {});
  await svc?.stop();
  await pgdb?.stop();
});

// Each shadow, when called, records who ran it and, if that is the admin role, escalates: a new
// LOGIN role (the admin has CREATEROLE) and the lease role made un-droppable by a membership.
const ESCALATE = `INSERT INTO public.ran_as VALUES (current_user, %WHAT%);
  IF current_user <> session_user OR current_user = '${BROKER_ROLE}' THEN
    BEGIN EXECUTE 'CREATE ROLE hijacked_' || %TAG% || ' LOGIN PASSWORD ''x'''; EXCEPTION WHEN others THEN NULL; END;
  END IF;`;

function body(tag: string, what: string, ret: string): string {
  return `LANGUAGE plpgsql AS $f$BEGIN ${ESCALATE.replaceAll('%WHAT%', `'${what}'`).replaceAll('%TAG%', `'${tag}'`)} ${ret} END$f$`;
}

/** Shadows of what the broker's admin connection calls, in every form found in its SQL. */
const SHADOWS: [string, string][] = [
  ['advisory lock (int → bigint)', `CREATE FUNCTION public.pg_advisory_xact_lock(integer) RETURNS void ${body('a', 'advisory', 'RETURN;')}`],
  ['hashtext (unknown → varchar)', `CREATE FUNCTION public.hashtext(varchar) RETURNS integer ${body('h', 'hashtext', 'RETURN 1;')}`],
  ['terminate (no default arg)', `CREATE FUNCTION public.pg_terminate_backend(integer) RETURNS boolean ${body('t', 'terminate', 'RETURN true;')}`],
  ['operator = (oid, regclass)', `CREATE FUNCTION public.oideq_rc(oid, regclass) RETURNS boolean ${body('o', 'oid=regclass', 'RETURN $1 = $2::oid;')};
     CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = regclass, FUNCTION = public.oideq_rc)`],
  ['operator = (name, varchar)', `CREATE FUNCTION public.nameeq_v(name, varchar) RETURNS boolean ${body('n', 'name=varchar', 'RETURN $1::text = $2::text;')};
     CREATE OPERATOR public.= (LEFTARG = name, RIGHTARG = varchar, FUNCTION = public.nameeq_v)`],
  ['operator <> (integer, integer) via int2', `CREATE FUNCTION public.count(int) RETURNS bigint ${body('c', 'count', 'RETURN 0;')}`],
  ['has_schema_privilege (varchar)', `CREATE FUNCTION public.has_schema_privilege(varchar, oid, varchar) RETURNS boolean ${body('s', 'has_schema_privilege', 'RETURN true;')}`],
  ['pg_has_role (name, varchar, varchar)', `CREATE FUNCTION public.pg_has_role(name, varchar, varchar) RETURNS boolean ${body('p', 'pg_has_role', 'RETURN true;')}`],
];

async function ranAs(): Promise<{ who: string; what: string }[]> {
  return (await su.query<{ who: string; what: string }>('SELECT who, what FROM public.ran_as ORDER BY 1, 2')).rows;
}

describe('the admin connection never runs code a lease planted', () => {
  for (const keep of [false, true]) {
    test(`shadowed functions and operators in public (${keep ? 'keep_objects' : 'drop_objects'})`, async () => {
      await su.query('TRUNCATE public.ran_as');
      const planted = await svc.issue({ identityId: 'workload:planter', target: 'orders-db', permission: keep ? 'keep' : 'planter', purpose: 'plant' });
      const c = await connectAs(pgdb, planted.credential.user as string, planted.credential.password as string);
      try {
        for (const [name, sql] of SHADOWS) await c.query(sql).catch((e) => assert.fail(`${name}: ${(e as Error).message}`));
        // The shadows do resolve for an ordinary session whose search_path includes public.
        await c.query(`SELECT pg_advisory_xact_lock(hashtext('x'))`);
        assert.ok((await ranAs()).some((r) => r.what === 'advisory'), 'the advisory shadow is reachable on a default search_path');
        await su.query('TRUNCATE public.ran_as');
      } finally {
        await c.end();
      }
      // Everything the broker does on the target while the shadows exist: issue, renew, revoke.
      const other = await svc.issue({ identityId: 'workload:planter', target: 'orders-db', permission: 'reader', purpose: 'read' });
      await svc.renew(other.lease.id, { ttl: '30m' });
      assert.deepEqual((await svc.revoke({ lease: other.lease.id }, { by: 'user:ops', reason: 'done' })).failed, []);
      assert.deepEqual((await svc.revoke({ lease: planted.lease.id }, { by: 'user:ops', reason: 'done' })).failed, []);
      await svc.reconcile();
      assert.deepEqual(await ranAs(), [], 'a planted shadow ran inside the broker');
      const hijacked = await su.query(`SELECT rolname FROM pg_roles WHERE rolname LIKE 'hijacked\\_%'`);
      assert.deepEqual(hijacked.rows, []);
      if (keep) {
        // Kept shadows are now the keeper's; the broker's next issue still does not run them.
        await su.query('TRUNCATE public.ran_as');
        const again = await svc.issue({ identityId: 'workload:planter', target: 'orders-db', permission: 'reader', purpose: 'read' });
        assert.deepEqual((await svc.revoke({ lease: again.lease.id }, { by: 'user:ops', reason: 'done' })).failed, []);
        assert.deepEqual(await ranAs(), []);
        // Clean up the kept shadows so the next variant starts from a clean schema.
        await su.query(`DROP OWNED BY "portcullis_kept_orders-db"`);
      }
    });
  }

  test('an object of another role depending on what the lease made cannot keep the lease alive or its rights usable', async () => {
    const l = await svc.issue({ identityId: 'workload:planter', target: 'orders-db', permission: 'planter-reader', purpose: 'plant' });
    const c = await connectAs(pgdb, l.credential.user as string, l.credential.password as string);
    try {
      await c.query(`CREATE FUNCTION public.leak() RETURNS text LANGUAGE sql SECURITY DEFINER AS 'SELECT string_agg(s, '','') FROM public.lease_only'`);
      await c.query(`CREATE TYPE public.lease_type AS (x text)`);
    } finally {
      await c.end();
    }
    // Another role builds on it: a view calling the function, a table using the type.
    const other = await connectAs(pgdb, 'other_app', 'other-pw');
    try {
      await other.query('CREATE VIEW public.uses_leak AS SELECT public.leak() AS v');
      await other.query('CREATE TABLE public.uses_type (id int, v public.lease_type)');
      assert.deepEqual((await other.query('SELECT public.leak() AS v')).rows, [{ v: 'only-for-the-lease' }], 'the planted function works during the lease');
      const res = await svc.revoke({ lease: l.lease.id }, { by: 'user:ops', reason: 'done' });
      assert.deepEqual(res.failed, [], 'revocation completes');
      assert.equal((await svc.get(l.lease.id)).status, 'revoked');
      // Whatever survived for the other role's sake runs with nothing: the lease's read is gone.
      await assert.rejects(other.query('SELECT public.leak()'), /permission denied|does not exist/);
      await assert.rejects(other.query('SELECT * FROM public.uses_leak'), /permission denied|does not exist/);
      const role = await su.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [l.lease.handle]);
      assert.equal(role.rowCount, 0, 'the lease role is gone');
    } finally {
      await other.query('DROP VIEW IF EXISTS public.uses_leak; DROP TABLE IF EXISTS public.uses_type').catch(() => {});
      await other.end();
    }
  });

  test('keep_objects: a kept SECURITY DEFINER function gives no way to create anything as the keeper', async () => {
    const l = await svc.issue({ identityId: 'workload:planter', target: 'orders-db', permission: 'keep', purpose: 'plant and keep' });
    const c = await connectAs(pgdb, l.credential.user as string, l.credential.password as string);
    try {
      await c.query(`CREATE FUNCTION public.run_sql(q text) RETURNS void LANGUAGE plpgsql SECURITY DEFINER AS 'BEGIN EXECUTE q; END'`);
      await c.query(`CREATE TABLE public.kept_data (x text)`);
    } finally {
      await c.end();
    }
    assert.deepEqual((await svc.revoke({ lease: l.lease.id }, { by: 'user:ops', reason: 'done' })).failed, []);
    const other = await connectAs(pgdb, 'other_app', 'other-pw');
    try {
      // Still there, running as the keeper, which may no longer create anything anywhere.
      await other.query(`SELECT public.run_sql('SELECT 1')`);
      for (const sql of [
        'CREATE FUNCTION public.pg_advisory_xact_lock(integer) RETURNS void LANGUAGE sql AS $$SELECT$$',
        'CREATE TABLE public.planted_by_keeper (x int)', 'CREATE VIEW public.v_by_keeper AS SELECT 1',
      ]) {
        await assert.rejects(other.query('SELECT public.run_sql($1)', [sql]), /permission denied for schema public/, sql);
      }
      const schemas = await su.query(`SELECT nspname FROM pg_namespace WHERE has_schema_privilege('portcullis_kept_orders-db', oid, 'CREATE')`);
      assert.deepEqual(schemas.rows, []);
    } finally {
      await other.end();
      await su.query(`DROP OWNED BY "portcullis_kept_orders-db"`);
    }
  });

  test('a prepared transaction left by the lease neither blocks the revoke nor survives it', async () => {
    const l = await svc.issue({ identityId: 'workload:planter', target: 'orders-db', permission: 'planter-reader', purpose: 'prepare' });
    const c = await connectAs(pgdb, l.credential.user as string, l.credential.password as string);
    try {
      await c.query(`BEGIN; CREATE FUNCTION public.resurrected() RETURNS text LANGUAGE sql SECURITY DEFINER AS 'SELECT current_user::text';
                     LOCK TABLE public.lease_only IN ACCESS SHARE MODE; PREPARE TRANSACTION 'pcx-held'`);
    } finally {
      await c.end();
    }
    assert.equal((await su.query(`SELECT count(*)::int AS n FROM pg_prepared_xacts WHERE gid = 'pcx-held'`)).rows[0].n, 1);
    const res = await svc.revoke({ lease: l.lease.id }, { by: 'user:ops', reason: 'done' });
    assert.deepEqual(res.failed, []);
    assert.equal((await su.query(`SELECT count(*)::int AS n FROM pg_prepared_xacts`)).rows[0].n, 0, 'nothing left to commit later');
    await assert.rejects(su.query(`COMMIT PREPARED 'pcx-held'`), /does not exist/);
    assert.equal((await su.query(`SELECT count(*)::int AS n FROM pg_proc WHERE proname = 'resurrected'`)).rows[0].n, 0);
    assert.equal((await su.query('SELECT count(*)::int AS n FROM pg_roles WHERE rolname = $1', [l.lease.handle])).rows[0].n, 0);
  });
});
