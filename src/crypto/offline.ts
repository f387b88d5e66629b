// Reads the broker's public keys from a data directory's database without the master key and
// without writing, so `portcullis audit verify --data DIR` works while the server is down.
import { join } from 'node:path';
import type { JsonWebKey } from 'node:crypto';
import type { PublicKeyResolver } from '../audit/types.ts';
import { openPublicKeyReader } from '../store/index.ts';
import type { PublicKeyReader } from './ports.ts';
import type { KeyPurpose } from './keyring.ts';

/** Every stored public key of `purpose` by kid (retired keys included). */
async function readPublicKeys(reader: PublicKeyReader, purpose: KeyPurpose = 'audit'): Promise<Map<string, JsonWebKey>> {
  const out = new Map<string, JsonWebKey>();
  for (const k of await reader.publicKeys(purpose)) out.set(k.kid, k.publicJwk as JsonWebKey);
  return out;
}

/** A resolver over a store's public keys of `purpose`, read once. */
export async function publicKeyResolver(reader: PublicKeyReader, purpose: KeyPurpose = 'audit'): Promise<PublicKeyResolver> {
  const keys = await readPublicKeys(reader, purpose);
  return (kid) => keys.get(kid);
}

/** Reads the database file read-only once and returns a resolver over its public keys of `purpose`. */
export async function offlinePublicKeyResolver(dbPath: string, purpose: KeyPurpose = 'audit'): Promise<PublicKeyResolver> {
  const keys = await readPublicKeys(openPublicKeyReader(dbPath), purpose);
  return (kid) => keys.get(kid);
}

/** The same for a data directory (the store file is `<dataDir>/<file>`). */
export function offlinePublicKeyResolverForDataDir(dataDir: string, file = 'portcullis.db', purpose: KeyPurpose = 'audit'): Promise<PublicKeyResolver> {
  return offlinePublicKeyResolver(join(dataDir, file), purpose);
}
