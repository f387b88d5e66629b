// The identity and bootstrap repositories over SQLite only: the migrations keep their domains and
// versions (data directories from before the ports open unchanged). The ports' contract over both
// stores is in identity.test.ts and bootstrap.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SqliteDb, openDatabase } from '../../src/store/sqlite/db.ts';
import { SqliteIdentityStore } from '../../src/store/sqlite/identity.ts';
import { SqliteBootstrapStore } from '../../src/store/sqlite/bootstrap.ts';

function fresh() {
  const db = new SqliteDb(openDatabase(':memory:'));
  return { db, identity: new SqliteIdentityStore(db), bootstrap: new SqliteBootstrapStore(db) };
}

test('migrations: same domains and versions as before the ports; opening twice is a no-op', () => {
  const { db } = fresh();
  new SqliteIdentityStore(db);
  new SqliteBootstrapStore(db);
  const rows = db.raw.prepare('SELECT domain, version FROM schema_migrations ORDER BY domain, version').all();
  assert.deepEqual(rows.map((r) => `${r.domain}:${r.version}`), ['broker:1', 'identity:1', 'identity:2', 'identity-replay:1']);
});
