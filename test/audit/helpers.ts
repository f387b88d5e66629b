// Shared fixtures: a real SQLite file in a temp dir and a real Ed25519 key.
import { generateKeyPairSync, sign, type JsonWebKey } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { openDatabase, type Db } from '../../src/store/sqlite/db.ts';
import type { CheckpointSigner, PublicKeyResolver } from '../../src/audit/types.ts';
import { AUDIT_DB_FILE } from '../../src/audit/verify.ts';

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
