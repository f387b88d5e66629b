// Reads the broker's public keys from a data directory's database without the master key and
// without writing, so `portcullis audit verify --data DIR` works while the server is down.
import { DatabaseSync } from 'node:sqlite';
import { join } from 'node:path';
import type { Db } from '../store/sqlite/db.ts';
import type { JsonWebKey } from 'node:crypto';
import type { PublicKeyResolver } from '../audit/types.ts';
import type { KeyPurpose } from './keyring.ts';

/** Every stored public key of `purpose` by kid (retired keys included). */
export function readPublicKeys(db: Db, purpose: KeyPurpose = 'audit'): Map<string, JsonWebKey> {
  const out = new Map<string, JsonWebKey>();
  const table = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'crypto_keys'").get();
  if (table === undefined) return out;
  const rows = db.prepare('SELECT kid, public_jwk FROM crypto_keys WHERE purpose = ?').all(purpose) as { kid: string; public_jwk: string }[];
  for (const r of rows) out.set(r.kid, JSON.parse(r.public_jwk) as JsonWebKey);
  return out;
}

/** Opens the database file read-only and returns a resolver over its audit public keys. */
export function offlinePublicKeyResolver(dbPath: string, purpose: KeyPurpose = 'audit'): PublicKeyResolver {
  const db = new DatabaseSync(dbPath, { readOnly: true });
  try {
    const keys = readPublicKeys(db, purpose);
    return (kid) => keys.get(kid);
  } finally {
    db.close();
  }
}

/** The same for a data directory (the store file is `<dataDir>/<file>`). */
export function offlinePublicKeyResolverForDataDir(dataDir: string, file = 'portcullis.db', purpose: KeyPurpose = 'audit'): PublicKeyResolver {
  return offlinePublicKeyResolver(join(dataDir, file), purpose);
}
