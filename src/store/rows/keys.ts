// The crypto tables (signing keys, sealed secrets and meta, SPIFFE CA generations) as both stores read and write them; binary columns go through the store's own converters.
import type { JWK } from 'jose';
import type { SpiffeCaGeneration, StoredKey } from '../../crypto/ports.ts';
import { placeholders, type SqlDialect } from './sql.ts';

/** A signing key's row; `B` is how the store returns a binary column (Uint8Array on SQLite, Buffer on PostgreSQL). */
export interface KeyRow<B> {
  kid: string;
  purpose: string;
  alg: string;
  public_jwk: string;
  private_sealed: B | null;
  created_at: number;
  superseded_at: number | null;
  retire_at: number | null;
}

/** A signing key from its row; `bytes` turns the store's binary value into the domain's Uint8Array. */
export function keyFromRow<B>(r: KeyRow<B>, bytes: (b: B) => Uint8Array): StoredKey {
  return {
    kid: r.kid,
    purpose: r.purpose,
    alg: r.alg,
    publicJwk: JSON.parse(r.public_jwk) as JWK,
    privateSealed: r.private_sealed === null ? null : bytes(r.private_sealed),
    createdAt: r.created_at,
    supersededAt: r.superseded_at,
    retireAt: r.retire_at,
  };
}

export function publicKeyFromRow(r: { kid: string; public_jwk: string }): { kid: string; publicJwk: JWK } {
  return { kid: r.kid, publicJwk: JSON.parse(r.public_jwk) as JWK };
}

/** The INSERT of a signing key and its values; `blob` turns the sealed private key into what the store binds. */
export function keyInsert<B>(d: SqlDialect, k: StoredKey, blob: (u: Uint8Array) => B): { sql: string; values: (string | number | B | null)[] } {
  return {
    sql: `INSERT INTO crypto_keys (kid, purpose, alg, public_jwk, private_sealed, created_at, superseded_at, retire_at)
          VALUES (${placeholders(d, 8)})`,
    values: [k.kid, k.purpose, k.alg, JSON.stringify(k.publicJwk), k.privateSealed === null ? null : blob(k.privateSealed), k.createdAt, k.supersededAt, k.retireAt],
  };
}

/** `crypto_secrets` (name, sealed, created_at) and `crypto_meta` (name, value) share one shape. */
const SEALED_TABLES = {
  secrets: { table: 'crypto_secrets', column: 'sealed', withCreatedAt: true },
  meta: { table: 'crypto_meta', column: 'value', withCreatedAt: false },
} as const;

export type SealedTable = keyof typeof SEALED_TABLES;

/** The statements that read a sealed value and insert one unless the name is taken, and the insert's values. */
export function sealedValueStatements(d: SqlDialect, which: SealedTable) {
  const { table, column, withCreatedAt } = SEALED_TABLES[which];
  const columns = withCreatedAt ? ['name', column, 'created_at'] : ['name', column];
  return {
    get: `SELECT ${column} AS v FROM ${table} WHERE name = ${d.placeholder(1)}`,
    insert: `INSERT INTO ${table} (${columns.join(', ')}) VALUES (${placeholders(d, columns.length)}) ON CONFLICT (name) DO NOTHING`,
    insertValues: <B>(name: string, sealed: B, createdAt: number): (string | number | B)[] => (withCreatedAt ? [name, sealed, createdAt] : [name, sealed]),
  };
}

/** A SPIFFE CA generation's row; `B` as for KeyRow. */
export interface CaRow<B> {
  trust_domain: string;
  generation: number;
  root_pem: string;
  intermediate_pem: string;
  intermediate_key_sealed: B;
  created_at: number;
  not_after: number;
}

export function caFromRow<B>(r: CaRow<B>, bytes: (b: B) => Uint8Array): SpiffeCaGeneration {
  return {
    trustDomain: r.trust_domain,
    generation: r.generation,
    rootPem: r.root_pem,
    intermediatePem: r.intermediate_pem,
    intermediateKeySealed: bytes(r.intermediate_key_sealed),
    createdAt: r.created_at,
    notAfter: r.not_after,
  };
}

/** The INSERT of a generation, unless its number is taken, and its values; `blob` as for keyValues. */
export function caInsert<B>(d: SqlDialect, g: SpiffeCaGeneration, blob: (u: Uint8Array) => B): { sql: string; values: (string | number | B)[] } {
  return {
    sql: `INSERT INTO spiffe_ca (trust_domain, generation, root_pem, intermediate_pem, intermediate_key_sealed, created_at, not_after)
          VALUES (${placeholders(d, 7)}) ON CONFLICT (trust_domain, generation) DO NOTHING`,
    values: [g.trustDomain, g.generation, g.rootPem, g.intermediatePem, blob(g.intermediateKeySealed), g.createdAt, g.notAfter],
  };
}
