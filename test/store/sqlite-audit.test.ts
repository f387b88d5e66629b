// The SQLite audit store's own cases (the port's contract over both stores is in audit.test.ts):
// the offline reader is read-only and never migrates.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DatabaseSync } from 'node:sqlite';
import { join } from 'node:path';
import { normalizeQuery } from '../../src/audit/query.ts';
import { verifyAll } from '../../src/audit/verify.ts';
import { migrate } from '../../src/store/sqlite/db.ts';
import { AUDIT_MIGRATIONS } from '../../src/store/sqlite/audit/schema.ts';
import { openAuditReader } from '../../src/store/sqlite/audit/offline.ts';
import { NotFound } from '../../src/common/errors.ts';
import { tempStore } from '../audit/helpers.ts';

test('the offline reader opens audit.db read-only and never migrates it', async () => {
  const s = tempStore();
  try {
    migrate(s.db, 'audit', AUDIT_MIGRATIONS.filter((m) => m.version === 1)); // a version-1 store
    s.db.close();
    const reader = openAuditReader(s.dir);
    try {
      assert.deepEqual(await reader.query(normalizeQuery({ stream: 'authz', since: 0 })), []);
      assert.equal((await verifyAll(reader, () => undefined, { parallel: true })).ok, true);
      assert.equal(await reader.head('authz'), undefined);
    } finally {
      reader.close();
    }
    const db = new DatabaseSync(s.path, { readOnly: true });
    try {
      const versions = db.prepare("SELECT version FROM schema_migrations WHERE domain = 'audit'").all().map((r) => r.version);
      assert.deepEqual(versions, [1], 'not migrated');
    } finally {
      db.close();
    }
    assert.throws(() => openAuditReader(join(s.dir, 'nope')), NotFound);
  } finally {
    s.cleanup();
  }
});
