// A PostgreSQL store that cannot serve (unreachable, shutting down, full, timing out) is the
// server's condition: 503 store_unavailable, like a full SQLite disk — while a constraint
// violation or a bug stays a 500, and a real lost connection is recognised along the cause chain.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { isStoreFailure, toProblem } from '../../src/server/problem.ts';
import { freePort } from '../credentials/helpers.ts';

test('PostgreSQL SQLSTATEs of an unavailable store map to 503; others do not', () => {
  for (const code of ['08006', '08001', '53100', '53300', '57P01', '57P03', '55P03', '57014', '25006']) {
    const err = Object.assign(new Error(`pg ${code}`), { code });
    assert.equal(toProblem(err).status, 503, code);
    assert.equal(toProblem(new Error('wrapped', { cause: err })).code, 'store_unavailable', `${code} as a cause`);
  }
  for (const code of ['23505', '42P01', '22P02', '40001']) assert.equal(isStoreFailure(Object.assign(new Error(code), { code })), false, code);
});

test('a real refused connection to PostgreSQL is a store failure', async () => {
  const port = await freePort(); // nothing listens there
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'x', database: 'x', connectionTimeoutMillis: 2000 });
  const err = await client.connect().then(() => assert.fail('connected to nothing'), (e: unknown) => e);
  assert.equal(isStoreFailure(err), true, String(err));
  assert.equal(toProblem(err).status, 503);
});
