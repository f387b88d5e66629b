// SQLite implementation of the crypto domain's storage ports (src/crypto/ports.ts): the keyring's
// tables (domain `crypto`), the SPIFFE CAs' (domain `spiffe_ca`), and a read-only public-key reader.
import { DatabaseSync } from 'node:sqlite';
import type { JWK } from 'jose';
import type { KeyStore, PublicKeyReader, SealedValueRepository, SigningKeyRepository, SpiffeCaGeneration, SpiffeCaRepository, StoredKey } from '../../crypto/ports.ts';
import type { Migration, SqliteDb } from './db.ts';
import { migrate, SQLITE_SQL } from './db.ts';
import { caFromRow, caInsert, keyFromRow, keyInsert, publicKeyFromRow, sealedValueStatements, type CaRow as SharedCaRow, type KeyRow as SharedKeyRow, type SealedTable } from '../rows/keys.ts';

const KEYRING_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    up: `CREATE TABLE crypto_keys (
           kid TEXT PRIMARY KEY,
           purpose TEXT NOT NULL,
           alg TEXT NOT NULL,
           public_jwk TEXT NOT NULL,
           private_sealed BLOB,
           created_at INTEGER NOT NULL,
           superseded_at INTEGER,
           retire_at INTEGER);
         CREATE INDEX crypto_keys_by_purpose ON crypto_keys (purpose, created_at);
         CREATE TABLE crypto_meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
         CREATE TABLE crypto_secrets (name TEXT PRIMARY KEY, sealed BLOB NOT NULL, created_at INTEGER NOT NULL);`,
  },
];

const SPIFFE_CA_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    up: `CREATE TABLE spiffe_ca (
           trust_domain TEXT NOT NULL,
           generation INTEGER NOT NULL,
           root_pem TEXT NOT NULL,
           intermediate_pem TEXT NOT NULL,
           intermediate_key_sealed BLOB NOT NULL,
           created_at INTEGER NOT NULL,
           not_after INTEGER NOT NULL,
           PRIMARY KEY (trust_domain, generation));`,
  },
];

export class SqliteKeyStore implements KeyStore {
  readonly signingKeys: SqliteSigningKeys;
  readonly secrets: SealedValueRepository;
  readonly meta: SealedValueRepository;
  readonly spiffeCa: SqliteSpiffeCa;

  constructor(db: SqliteDb) {
    migrate(db.raw, 'crypto', KEYRING_MIGRATIONS);
    migrate(db.raw, 'spiffe_ca', SPIFFE_CA_MIGRATIONS);
    this.signingKeys = new SqliteSigningKeys(db);
    this.secrets = new SqliteSealedValues(db, 'secrets');
    this.meta = new SqliteSealedValues(db, 'meta');
    this.spiffeCa = new SqliteSpiffeCa(db);
  }
}

type KeyRow = SharedKeyRow<Uint8Array>;
type CaRow = SharedCaRow<Uint8Array>;

/** SQLite gives and takes BLOBs as plain Uint8Arrays: nothing to convert. */
const asIs = (b: Uint8Array): Uint8Array => b;

function publicKeys(raw: DatabaseSync, purpose: string): { kid: string; publicJwk: JWK }[] {
  const rows = raw.prepare('SELECT kid, public_jwk FROM crypto_keys WHERE purpose = ?').all(purpose) as unknown as { kid: string; public_jwk: string }[];
  return rows.map(publicKeyFromRow);
}

class SqliteSigningKeys implements SigningKeyRepository {
  readonly #db: SqliteDb;

  constructor(db: SqliteDb) {
    this.#db = db;
  }

  list(): Promise<StoredKey[]> {
    return this.#db.run((raw) => (raw.prepare('SELECT * FROM crypto_keys').all() as unknown as KeyRow[]).map((r) => keyFromRow(r, asIs)));
  }

  publicKeys(purpose: string): Promise<{ kid: string; publicJwk: JWK }[]> {
    return this.#db.run((raw) => publicKeys(raw, purpose));
  }

  active(purpose: string): Promise<StoredKey | undefined> {
    return this.#db.run((raw) => {
      const row = raw.prepare('SELECT * FROM crypto_keys WHERE purpose = ? AND superseded_at IS NULL').get(purpose) as KeyRow | undefined;
      return row === undefined ? undefined : keyFromRow(row, asIs);
    });
  }

  async insert(k: StoredKey): Promise<void> {
    const { sql, values } = keyInsert(SQLITE_SQL, k, asIs);
    await this.#db.run((raw) => raw.prepare(sql).run(...values));
  }

  async supersede(kid: string, at: number, retireAt: number): Promise<void> {
    await this.#db.run((raw) => raw.prepare('UPDATE crypto_keys SET superseded_at = ?, retire_at = ? WHERE kid = ?').run(at, retireAt, kid));
  }

  eraseRetired(now: number): Promise<number> {
    return this.#db.run((raw) =>
      Number(raw.prepare('UPDATE crypto_keys SET private_sealed = NULL WHERE retire_at IS NOT NULL AND retire_at <= ? AND private_sealed IS NOT NULL').run(now).changes),
    );
  }
}

/** `crypto_secrets` (name, sealed, created_at) and `crypto_meta` (name, value) share this shape. */
class SqliteSealedValues implements SealedValueRepository {
  readonly #db: SqliteDb;
  readonly #sql: ReturnType<typeof sealedValueStatements>;

  constructor(db: SqliteDb, which: SealedTable) {
    this.#db = db;
    this.#sql = sealedValueStatements(SQLITE_SQL, which);
  }

  get(name: string): Promise<Uint8Array | undefined> {
    return this.#db.run((raw) => (raw.prepare(this.#sql.get).get(name) as { v: Uint8Array } | undefined)?.v);
  }

  insertIfAbsent(name: string, sealed: Uint8Array, createdAt: number): Promise<boolean> {
    return this.#db.run((raw) => raw.prepare(this.#sql.insert).run(...this.#sql.insertValues(name, sealed, createdAt)).changes === 1);
  }
}

class SqliteSpiffeCa implements SpiffeCaRepository {
  readonly #db: SqliteDb;

  constructor(db: SqliteDb) {
    this.#db = db;
  }

  generations(trustDomain: string): Promise<SpiffeCaGeneration[]> {
    return this.#db.run((raw) =>
      (raw.prepare('SELECT * FROM spiffe_ca WHERE trust_domain = ? ORDER BY generation DESC').all(trustDomain) as unknown as CaRow[]).map((r) => caFromRow(r, asIs)),
    );
  }

  insert(g: SpiffeCaGeneration): Promise<boolean> {
    const { sql, values } = caInsert(SQLITE_SQL, g, asIs);
    return this.#db.run((raw) => raw.prepare(sql).run(...values).changes === 1);
  }
}

/**
 * The public keys of a state file opened read-only: no migrations, no master key, nothing
 * written (`portcullis audit verify --data DIR` while the server is down). A file made before the
 * keyring existed has no keys.
 */
export class ReadOnlyPublicKeys implements PublicKeyReader {
  readonly #path: string;

  constructor(path: string) {
    this.#path = path;
  }

  async publicKeys(purpose: string): Promise<{ kid: string; publicJwk: JWK }[]> {
    const raw = new DatabaseSync(this.#path, { readOnly: true });
    try {
      const table = raw.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'crypto_keys'").get();
      return table === undefined ? [] : publicKeys(raw, purpose);
    } finally {
      raw.close();
    }
  }
}
