// Offline audit verification against a PostgreSQL store (`portcullis audit verify --store-url`):
// the audit reader and the public keys, read without migrating, writing or the master key.
import type { AuditReader } from '../../audit/ports.ts';
import type { PublicKeyReader } from '../../crypto/ports.ts';
import { PgDb } from './db.ts';
import { pgAuditStore } from './audit.ts';
import { pgKeyStore } from './keys.ts';

export interface PgVerification {
  reader: AuditReader;
  keys: PublicKeyReader;
  close(): Promise<void>;
}

export async function openPgVerification(url: string): Promise<PgVerification> {
  const db = await PgDb.open(url, { pool: 2, applicationName: 'portcullis-verify' });
  // Every read in this session is read-only: a verifier never writes to the store it judges.
  db.pool.on('connect', (c) => void c.query('SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY').catch(() => {}));
  return { reader: pgAuditStore(db), keys: pgKeyStore(db).signingKeys, close: () => db.close() };
}
