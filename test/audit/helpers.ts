// Shared fixtures: a real SQLite file in a temp dir and a real Ed25519 key; the audit store's
// SQLite implementation over a raw connection, and verification and queries over one.
import { generateKeyPairSync, sign, type JsonWebKey } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { openDatabase, SqliteDb, type Db } from '../../src/store/sqlite/db.ts';
import { AUDIT_DB_FILE } from '../../src/store/sqlite/index.ts';
import { SqliteAuditReader, SqliteAuditStore } from '../../src/store/sqlite/audit/index.ts';
import { openAuditReader } from '../../src/store/sqlite/audit/offline.ts';
import { verifyAll as verifyStore, verifyStream as verifyStoreStream, type VerifyOptions } from '../../src/audit/verify.ts';
import { normalizeQuery } from '../../src/audit/query.ts';
import type { WitnessedCheckpoints } from '../../src/audit/witness.ts';
import type { AuditQuery, AuditRecord, AuditStreamName, AuditVerification, CheckpointSigner, PublicKeyResolver, StreamVerification } from '../../src/audit/types.ts';

export interface TempStore {
  dir: string;
  path: string;
  db: Db;
  cleanup(): void;
}

export function tempStore(): TempStore {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-audit-'));
  const path = join(dir, AUDIT_DB_FILE);
  const db = openDatabase(path);
  return {
    dir,
    path,
    db,
    cleanup() {
      try {
        if (db.isOpen) db.close();
      } catch {
        // already closed
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface TestKey {
  signer: CheckpointSigner;
  jwk: JsonWebKey;
}

export function ed25519Key(kid: string): TestKey {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return {
    signer: { kid, sign: (data: Uint8Array) => sign(null, data, privateKey) },
    jwk: publicKey.export({ format: 'jwk' }),
  };
}

export function resolverOf(...keys: TestKey[]): PublicKeyResolver {
  return (kid) => keys.find((k) => k.signer.kid === kid)?.jwk;
}

/** A second, writable connection for playing the attacker with raw SQL. */
export function tamper(path: string, sql: string, ...params: (string | number | null)[]): void {
  const db = new DatabaseSync(path);
  try {
    db.prepare(sql).run(...params);
  } finally {
    db.close();
  }
}

/** The audit store over a raw connection (migrates its tables, as opening the store does). */
export function auditStore(db: Db): SqliteAuditStore {
  return new SqliteAuditStore(new SqliteDb(db));
}

/** The audit reader over a raw connection (read-only is fine; nothing is migrated). */
export function auditReader(db: Db): SqliteAuditReader {
  return new SqliteAuditReader(new SqliteDb(db));
}

/** Every stream of the store on `db`, each from one snapshot. */
export function verifyAll(db: Db, keys: PublicKeyResolver, witness?: WitnessedCheckpoints): Promise<AuditVerification> {
  return verifyStore(auditReader(db), keys, witness ? { witness } : {});
}

export function verifyStream(db: Db, stream: AuditStreamName, keys: PublicKeyResolver): Promise<StreamVerification> {
  return verifyStoreStream(auditReader(db), stream, keys);
}

/** Offline: `<dir>/audit.db` opened read-only, as `portcullis audit verify --data` does (serially, or in parallel). */
export async function verifyDataDir(dir: string, keys: PublicKeyResolver, witness?: WitnessedCheckpoints): Promise<AuditVerification> {
  return verifyOffline(dir, keys, witness ? { witness } : {});
}

export async function verifyDataDirParallel(dir: string, keys: PublicKeyResolver, opts: Omit<VerifyOptions, 'parallel'> = {}): Promise<AuditVerification> {
  return verifyOffline(dir, keys, { ...opts, parallel: true });
}

async function verifyOffline(dir: string, keys: PublicKeyResolver, opts: VerifyOptions): Promise<AuditVerification> {
  const reader = openAuditReader(dir);
  try {
    return await verifyStore(reader, keys, opts);
  } finally {
    reader.close();
  }
}

/** A query validated by the domain and answered by the store on `db`. */
export async function queryEvents(db: Db, q: AuditQuery = {}): Promise<AuditRecord[]> {
  return auditReader(db).query(normalizeQuery(q));
}
