// The offline audit reader: a data directory's audit.db opened read-only, never migrated, for
// `portcullis audit verify --data DIR` while the server is down (no master key needed).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { NotFound } from '../../../common/errors.ts';
import { SqliteDb } from '../db.ts';
import { AUDIT_DB_FILE } from '../index.ts';
import { SqliteAuditReader } from './index.ts';

class OfflineAuditReader extends SqliteAuditReader {
  close(): void {
    this.db.close();
  }
}

/** Opens `<dataDir>/audit.db` read-only; NotFound when there is none. */
export function openAuditReader(dataDir: string): OfflineAuditReader {
  const path = join(dataDir, AUDIT_DB_FILE);
  if (!existsSync(path)) throw new NotFound(`database ${path}`);
  return new OfflineAuditReader(new SqliteDb(new DatabaseSync(path, { readOnly: true })));
}
