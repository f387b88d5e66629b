// What the PostgreSQL gateway decides for a SQL text (src/gateways/postgres/analyze.ts), read from
// PostgreSQL's own parser: statement kinds, the action × resource pairs, schema qualification,
// normalization (no literal — no password — ever reaches a record).
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { analyze, loadParser, type StatementPlan } from '../../src/gateways/postgres/analyze.ts';

before(() => loadParser());

const plans = (sql: string, path = ['public']): StatementPlan[] => {
  const a = analyze(sql, path);
  assert.ok('statements' in a, `${sql}: ${'error' in a ? a.error : ''}`);
  return a.statements;
};
const checks = (sql: string, path?: string[]) => plans(sql, path).map((p) => [p.kind, ...p.checks.map((c) => `${c.action} ${c.resource.type}:${c.resource.id}`).sort()]);

test('reads, writes, and the tables a write reads', () => {
  assert.deepEqual(checks('SELECT a.x FROM public.accounts a JOIN t2 USING (id)'), [['select', 'db.select Table:public.accounts', 'db.select Table:public.t2']]);
  assert.deepEqual(checks('UPDATE t SET x = 1 FROM s.other o WHERE o.id = t.id'), [['update', 'db.select Table:s.other', 'db.update Table:public.t']]);
  assert.deepEqual(checks('DELETE FROM t WHERE id IN (SELECT id FROM gone)'), [['delete', 'db.delete Table:public.t', 'db.select Table:public.gone']]);
  assert.deepEqual(checks('INSERT INTO log SELECT * FROM src'), [['insert', 'db.insert Table:public.log', 'db.select Table:public.src']]);
  // A data-modifying WITH inside a SELECT is the write it is; the WITH name is no table.
  assert.deepEqual(checks('WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d'), [['select', 'db.delete Table:public.t']]);
  assert.deepEqual(checks('MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE'), [['update', 'db.select Table:public.s', 'db.update Table:public.t']]);
});

test('every function call is db.execute, in a SELECT, in FROM, in a write, via CALL', () => {
  assert.deepEqual(checks('SELECT pg_terminate_backend(42)'), [['select', 'db.execute Function:pg_terminate_backend']]);
  assert.deepEqual(checks("SELECT * FROM dblink('host=x', 'select 1') AS t(a int)"), [['select', 'db.execute Function:dblink']]);
  assert.deepEqual(checks("SELECT lo_import('/etc/passwd')"), [['select', 'db.execute Function:lo_import']]);
  assert.deepEqual(checks("SELECT pg_catalog.set_config('role', 'x', false)"), [['select', 'db.execute Function:pg_catalog.set_config']]);
  assert.deepEqual(checks('INSERT INTO t VALUES (now())'), [['insert', 'db.execute Function:now', 'db.insert Table:public.t']]);
  assert.deepEqual(checks('CALL maint.cleanup(1)'), [['execute', 'db.execute Function:maint.cleanup']]);
});

test('roles, code, files, notifications and dangerous settings are db.admin; harmless ones session control', () => {
  for (const sql of ['SET ROLE postgres', 'SET SESSION AUTHORIZATION postgres', 'SET search_path = evil', "DO $$BEGIN PERFORM 1; END$$", "COPY t FROM PROGRAM 'id'", "COPY t TO '/tmp/x'", 'LISTEN ch', "NOTIFY ch, 'x'", 'GRANT SELECT ON t TO public', "ALTER ROLE bob PASSWORD 'hunter2'", 'VACUUM t', 'LOCK TABLE t', "PREPARE TRANSACTION 'x'", 'CREATE EXTENSION dblink', 'ALTER SYSTEM SET work_mem = 1']) {
    const [p] = plans(sql);
    assert.equal(p!.kind, 'admin', sql);
    assert.ok(p!.checks.some((c) => c.action === 'db.admin' && c.resource.type === 'Database'), sql);
  }
  for (const sql of ['BEGIN', 'COMMIT', 'ROLLBACK', 'SAVEPOINT s', 'SHOW work_mem', 'SET statement_timeout = 1000', 'SET LOCAL TimeZone = UTC', 'RESET ALL', 'DISCARD ALL', 'DEALLOCATE ALL', 'SET TRANSACTION ISOLATION LEVEL SERIALIZABLE']) {
    assert.deepEqual(plans(sql).map((p) => p.checks.map((c) => c.action)), [['db.connect']], sql);
  }
});

test('DDL on what it names; a view also reads what it selects; DROP of several', () => {
  assert.deepEqual(checks('CREATE TABLE s.x (id int)'), [['ddl', 'db.ddl Table:s.x']]);
  assert.deepEqual(checks('CREATE VIEW v AS SELECT * FROM secret'), [['ddl', 'db.ddl Table:public.v', 'db.select Table:public.secret']]);
  assert.deepEqual(checks('DROP TABLE public.a, b'), [['ddl', 'db.ddl Table:public.a', 'db.ddl Table:public.b']]);
  assert.deepEqual(checks('TRUNCATE t'), [['ddl', 'db.ddl Table:public.t']]);
  assert.deepEqual(checks('SELECT * INTO copy FROM t'), [['ddl', 'db.ddl Table:public.copy', 'db.select Table:public.t']]);
  assert.deepEqual(checks('DROP FUNCTION f()'), [['ddl', 'db.ddl Database:']]);
});

test('qualification: every schema of the pinned search path, pg_catalog for pg_ names, pg_temp for temporary tables', () => {
  assert.deepEqual(checks('SELECT * FROM t', ['app', 'public']), [['select', 'db.select Table:app.t', 'db.select Table:public.t']]);
  assert.deepEqual(checks('SELECT * FROM pg_shadow'), [['select', 'db.select Table:pg_catalog.pg_shadow']]);
  assert.deepEqual(checks('CREATE TEMP TABLE tt (x int)'), [['ddl', 'db.ddl Table:pg_temp.tt']]);
  assert.deepEqual(checks('SELECT * FROM "Mixed Case"'), [['select', 'db.select Table:public.Mixed Case']]);
});

test('COPY, PREPARE/EXECUTE, EXPLAIN are decided on what they run; a bare statement on the Database', () => {
  assert.deepEqual(checks('COPY t FROM STDIN'), [['insert', 'db.insert Table:public.t']]);
  assert.deepEqual(checks('COPY (SELECT * FROM s) TO STDOUT'), [['select', 'db.select Table:public.s']]);
  assert.deepEqual(checks('EXPLAIN ANALYZE DELETE FROM t'), [['delete', 'db.delete Table:public.t']]);
  const [prep] = plans('PREPARE p AS DELETE FROM t WHERE id = $1');
  assert.equal(prep!.prepares?.name, 'p');
  assert.deepEqual(prep!.prepares?.plan.checks, [{ action: 'db.delete', resource: { type: 'Table', id: 'public.t' } }]);
  const [exec] = plans('EXECUTE p(1)');
  assert.equal(exec!.executes, 'p');
  assert.deepEqual(exec!.checks, [], 'decided by the session on what p runs');
  assert.deepEqual(checks('SELECT 1'), [['select', 'db.select Database:']]);
});

test('several statements are planned one by one, with their byte ranges in the text', () => {
  const sql = "SELECT 'é' FROM a; DELETE FROM b";
  const ps = plans(sql);
  assert.deepEqual(ps.map((p) => p.kind), ['select', 'delete']);
  const bytes = Buffer.from(sql);
  assert.equal(bytes.toString('utf8', ps[0]!.start, ps[0]!.end), "SELECT 'é' FROM a");
  assert.equal(bytes.toString('utf8', ps[1]!.start, ps[1]!.end), 'DELETE FROM b');
});

test('normalized text and fingerprint: literals (passwords) never survive; texts differing in literals share both', () => {
  const [p] = plans("ALTER ROLE bob PASSWORD 'hunter2'");
  assert.doesNotMatch(p!.normalized, /hunter2/);
  const [q] = plans("CREATE USER eve WITH PASSWORD 's3cret!'");
  assert.doesNotMatch(q!.normalized, /s3cret/);
  const [a] = plans('SELECT * FROM t WHERE id = 1');
  const [b] = plans('SELECT * FROM t WHERE id = 2');
  assert.equal(a!.normalized, 'SELECT * FROM t WHERE id = $1');
  assert.deepEqual([a!.normalized, a!.fingerprint], [b!.normalized, b!.fingerprint]);
  assert.notEqual(plans('SELECT * FROM u WHERE id = 1')[0]!.fingerprint, a!.fingerprint);
});

test('statements whose literals the parser does not normalize are recorded without their text (kind only), and stay apart by fingerprint', () => {
  const leaky = [
    "CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host 'h', password 'hunter2')",
    "ALTER SERVER s OPTIONS (SET password 'hunter2')",
    "ALTER SYSTEM SET primary_conninfo = 'host=h password=hunter2'",
    "ALTER ROLE app SET app.api_key = 'hunter2'",
    "COPY t FROM PROGRAM 'curl -H \"Authorization: Bearer hunter2\" https://x'",
    "PREPARE p AS SELECT * FROM users WHERE token = 'hunter2'",
    "CREATE TABLE t2 AS SELECT 'hunter2' AS k",
    "CREATE VIEW v AS SELECT $$hunter2$$ AS k",
    "COMMENT ON TABLE t IS 'hunter2'",
  ];
  for (const sql of leaky) {
    const ps = plans(sql);
    assert.ok(ps.length > 0, sql);
    for (const p of ps) {
      assert.doesNotMatch(p.normalized, /hunter2/, sql);
      assert.doesNotMatch(p.normalized, /'|\$\$/, sql);
    }
  }
  assert.match(plans("ALTER SYSTEM SET primary_conninfo = 'host=h password=hunter2'")[0]!.normalized, /^\(admin statement: text withheld/);
  assert.notEqual(plans("COMMENT ON TABLE t IS 'a'")[0]!.fingerprint, plans("COMMENT ON TABLE u IS 'a'")[0]!.fingerprint, 'withheld texts still differ by fingerprint');
  // Statements the parser normalizes keep their text.
  assert.equal(plans("SELECT * FROM t WHERE note = 'hunter2'")[0]!.normalized, 'SELECT * FROM t WHERE note = $1');
});

test('unparsable text is an error (denied), never a guess; an empty text has no statement', () => {
  for (const sql of ['SELEC 1', 'SELECT (', "SELECT 'unterminated", '\u0000']) assert.ok('error' in analyze(sql, ['public']), JSON.stringify(sql));
  assert.deepEqual(analyze('   ', ['public']), { statements: [] });
});

test('effects: reads without function calls and control that commits nothing run at once; anything else waits for its durable decisions', () => {
  const effects = (sql: string) => plans(sql).map((p) => p.effects);
  for (const sql of ['SELECT * FROM t WHERE id = 1', 'SELECT * FROM t FOR UPDATE', 'BEGIN', 'ROLLBACK', 'SAVEPOINT s', 'SHOW work_mem', 'SET statement_timeout = 0', 'DISCARD ALL', 'COPY t TO STDOUT', 'EXPLAIN SELECT 1', 'DECLARE c CURSOR FOR SELECT * FROM t', 'FETCH 10 FROM c']) {
    assert.deepEqual(effects(sql), [false], sql);
  }
  for (const sql of ["INSERT INTO t VALUES (1)", 'UPDATE t SET x = 1', 'DELETE FROM t', 'CREATE TABLE x (a int)', 'COMMIT', 'END', 'SET ROLE postgres', 'COPY t FROM STDIN', 'EXECUTE p(1)', 'SELECT nextval(\'s\')', 'SELECT count(*) FROM t', "SELECT * FROM t WHERE x = set_config('a', 'b', false)", 'WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d', 'CALL maint.cleanup(1)']) {
    assert.deepEqual(effects(sql), [true], sql);
  }
});
