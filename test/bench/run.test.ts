// Issue #8 item 23: `npm run bench` runs every suite to the end. A suite that throws is reported
// on its own JSON line and the others still run; the exit status says whether any failed. The
// audit suite runs for real at tiny sizes (PCX_BENCH_QUICK=1): every step, offline verification
// of the data directory included, must complete.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { runSuites, SUITES } from '../../bench/run.ts';

const RUN = join(import.meta.dirname, '..', '..', 'bench', 'run.ts');

test('a failing suite is reported on its JSON line and the run goes on', async () => {
  const lines: Record<string, unknown>[] = [];
  const ran: string[] = [];
  const failed = await runSuites(
    {
      first: async () => ({ run: async (emit) => void (ran.push('first'), emit({ bench: 'first', op: 'x' })) }),
      broken: async () => ({ run: async () => { ran.push('broken'); throw new Error('no such file: audit.db'); } }),
      unloadable: () => Promise.reject(new Error('cannot import')),
      last: async () => ({ run: async () => void ran.push('last') }),
    },
    [],
    (l) => lines.push(l),
    () => {},
  );
  assert.deepEqual(failed, ['broken', 'unloadable']);
  assert.deepEqual(ran, ['first', 'broken', 'last']);
  assert.deepEqual(lines.map((l) => [l.bench, l.suite ?? l.op]), [['first', 'x'], ['first', 'done'], ['broken', 'failed'], ['unloadable', 'failed'], ['last', 'done']]);
  assert.match(String(lines[2]!.error), /no such file: audit\.db/);
});

test('every suite of npm run bench is in the one list', () => {
  assert.deepEqual(Object.keys(SUITES).slice(0, 5), ['engine', 'decisions', 'audit', 'http', 'credentials']);
});

test('the audit suite runs to the end (quick sizes), offline verification included', () => {
  const r = spawnSync(process.execPath, [RUN, 'audit'], { encoding: 'utf8', env: { ...process.env, PCX_BENCH_QUICK: '1' }, timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const ops = lines.filter((l) => l.bench === 'audit').map((l) => l.op ?? l.suite);
  for (const op of ['append', 'append_serial', 'verify', 'verify_offline', 'verify_offline_parallel', 'query', 'pg_append', 'pg_plain_insert', 'pg_verify', 'pg_append_replicas', 'done']) assert.ok(ops.includes(op), `${op} in ${ops.join(',')}`);
  const q = lines.find((l) => l.op === 'query' && l.shape === 'identity')!;
  assert.ok((q.rows as number) > 0, 'the identity query finds events');
});

test('an unknown suite name is a usage error', () => {
  const r = spawnSync(process.execPath, [RUN, 'audti'], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /unknown suite audti/);
});
