// PostgreSQL implementation of the crypto domain's storage ports (src/crypto/ports.ts): the keyring's
// tables (signing keys, sealed secrets, meta) and the SPIFFE CAs', shared by every replica.
import type { JWK } from 'jose';
import type { KeyStore, SealedValueRepository, SigningKeyRepository, SpiffeCaGeneration, SpiffeCaRepository, StoredKey } from '../../crypto/ports.ts';
import { PG_SQL, type PgDb, type PgDomainMigrations } from './db.ts';
import { caFromRow, caInsert, keyFromRow, keyInsert, publicKeyFromRow, sealedValueStatements, type CaRow as SharedCaRow, type KeyRow as SharedKeyRow, type SealedTable } from '../rows/keys.ts';

/**
 * Same tables and columns as SQLite (src/store/sqlite/keys.ts), so sealed values copy across
 * byte for byte: the sealed halves are BYTEA exactly as `envelope.ts` made them (the master key
 * never reaches the database), the public JWK the same JSON text. One more guard than SQLite: a
 * partial unique index allows one active (not superseded) key per purpose, so even a writer that
 * skipped the keyring's lock could not leave two replicas signing with different keys.
 */
export const MIGRATIONS: PgDomainMigrations = {
  domain: 'crypto',
  migrations: [
    {
      version: 1,
      up: `CREATE TABLE crypto_keys (
             kid TEXT PRIMARY KEY,
             purpose TEXT NOT NULL,
             alg TEXT NOT NULL,
             public_jwk TEXT NOT NULL,
             private_sealed BYTEA,
             created_at BIGINT NOT NULL,
             superseded_at BIGINT,
             retire_at BIGINT);
           CREATE INDEX crypto_keys_by_purpose ON crypto_keys (purpose, created_at);
           CREATE UNIQUE INDEX crypto_keys_one_active ON crypto_keys (purpose) WHERE superseded_at IS NULL;
           CREATE INDEX crypto_keys_retiring ON crypto_keys (retire_at) WHERE private_sealed IS NOT NULL AND retire_at IS NOT NULL;
           CREATE TABLE crypto_meta (name TEXT PRIMARY KEY, value BYTEA NOT NULL);
           CREATE TABLE crypto_secrets (name TEXT PRIMARY KEY, sealed BYTEA NOT NULL, created_at BIGINT NOT NULL);
           CREATE TABLE spiffe_ca (
             trust_domain TEXT NOT NULL,
             generation INTEGER NOT NULL,
             root_pem TEXT NOT NULL,
             intermediate_pem TEXT NOT NULL,
             intermediate_key_sealed BYTEA NOT NULL,
             created_at BIGINT NOT NULL,
             not_after BIGINT NOT NULL,
             PRIMARY KEY (trust_domain, generation));`,
    },
  ],
};

type KeyRow = SharedKeyRow<Buffer>;
type CaRow = SharedCaRow<Buffer>;

/** BYTEA comes back as a Buffer; the domain gets a plain Uint8Array, as from SQLite. */
function bytes(b: Buffer): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** And is bound as a Buffer. */
const blob = (u: Uint8Array): Buffer => Buffer.from(u);

/**
 * Signing keys. Creating the first keys and rotating are read-check-writes the keyring runs in
 * `store.transaction` under `store.lock('keyring')` (pg_advisory_xact_lock: one replica at a time,
 * and READ COMMITTED lets the waiter's next statement see the winner's rows); the partial unique
 * index backs that up in the database.
 */
class PgSigningKeys implements SigningKeyRepository {
  readonly #db: PgDb;

  constructor(db: PgDb) {
    this.#db = db;
  }

  async list(): Promise<StoredKey[]> {
    return (await this.#db.query<KeyRow>('SELECT * FROM crypto_keys ORDER BY created_at, kid')).map((r) => keyFromRow(r, bytes));
  }

  async publicKeys(purpose: string): Promise<{ kid: string; publicJwk: JWK }[]> {
    const rows = await this.#db.query<{ kid: string; public_jwk: string }>('SELECT kid, public_jwk FROM crypto_keys WHERE purpose = $1 ORDER BY created_at, kid', [purpose]);
    return rows.map(publicKeyFromRow);
  }

  async active(purpose: string): Promise<StoredKey | undefined> {
    const row = await this.#db.one<KeyRow>('SELECT * FROM crypto_keys WHERE purpose = $1 AND superseded_at IS NULL', [purpose]);
    return row === undefined ? undefined : keyFromRow(row, bytes);
  }

  async insert(k: StoredKey): Promise<void> {
    // #10: a key inserted here (the first keys, or a rotation's new key) and the supersede below
    // must reach every other replica's in-memory keyring (Keyring.refresh, src/crypto/keyring.ts)
    // once this transaction commits — a NOTIFY from the coordinator's fan-out. Until then the
    // others sign with the superseded key until their 5-s refresh, and refuse tokens signed with
    // the new one until an unknown kid makes them refresh.
    const { sql, values } = keyInsert(PG_SQL, k, blob);
    await this.#db.execute(sql, values);
  }

  async supersede(kid: string, at: number, retireAt: number): Promise<void> {
    // #10: see insert: a rotation (and an immediate one above all: a compromised key) must be
    // notified to the other replicas' keyrings at commit.
    await this.#db.execute('UPDATE crypto_keys SET superseded_at = $1, retire_at = $2 WHERE kid = $3', [at, retireAt, kid]);
  }

  eraseRetired(now: number): Promise<number> {
    // Idempotent and row-local: replicas erasing at once each erase what is left.
    return this.#db.execute('UPDATE crypto_keys SET private_sealed = NULL WHERE retire_at IS NOT NULL AND retire_at <= $1 AND private_sealed IS NOT NULL', [now]);
  }
}

/**
 * `crypto_secrets` (name, sealed, created_at) and `crypto_meta` (name, value) share this shape.
 * insertIfAbsent is one `INSERT … ON CONFLICT DO NOTHING`: replicas starting together each try
 * their own value, one row wins, and every replica reads that one back (`get`).
 */
class PgSealedValues implements SealedValueRepository {
  readonly #db: PgDb;
  readonly #sql: ReturnType<typeof sealedValueStatements>;

  constructor(db: PgDb, which: SealedTable) {
    this.#db = db;
    this.#sql = sealedValueStatements(PG_SQL, which);
  }

  async get(name: string): Promise<Uint8Array | undefined> {
    const row = await this.#db.one<{ v: Buffer }>(this.#sql.get, [name]);
    return row === undefined ? undefined : bytes(row.v);
  }

  async insertIfAbsent(name: string, sealed: Uint8Array, createdAt: number): Promise<boolean> {
    return (await this.#db.execute(this.#sql.insert, this.#sql.insertValues(name, blob(sealed), createdAt))) === 1;
  }
}

/** SPIFFE CA generations: a generation number is taken by whichever replica inserts it first. */
class PgSpiffeCa implements SpiffeCaRepository {
  readonly #db: PgDb;

  constructor(db: PgDb) {
    this.#db = db;
  }

  async generations(trustDomain: string): Promise<SpiffeCaGeneration[]> {
    const rows = await this.#db.query<CaRow>('SELECT * FROM spiffe_ca WHERE trust_domain = $1 ORDER BY generation DESC', [trustDomain]);
    return rows.map((r) => caFromRow(r, bytes));
  }

  async insert(g: SpiffeCaGeneration): Promise<boolean> {
    const { sql, values } = caInsert(PG_SQL, g, blob);
    return (await this.#db.execute(sql, values)) === 1;
  }
}

export function pgKeyStore(db: PgDb): KeyStore {
  return {
    signingKeys: new PgSigningKeys(db),
    secrets: new PgSealedValues(db, 'secrets'),
    meta: new PgSealedValues(db, 'meta'),
    spiffeCa: new PgSpiffeCa(db),
  };
}
