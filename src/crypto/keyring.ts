// The broker's own Ed25519 signing keys, one active key per purpose, stored in SQLite with the
// private half sealed under the master key (envelope.ts). Rotation makes a new active key; the
// previous one stops signing at once but keeps verifying for an overlap (≥ the longest token TTL
// signed with it), then retires: its private half is erased, its public half is kept forever so
// old audit checkpoints still verify.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign as edSign } from 'node:crypto';
import type { JsonWebKey as NodeJsonWebKey, KeyObject } from 'node:crypto';
import { SignJWT } from 'jose';
import type { JWK, JWTPayload } from 'jose';
import type { Db } from '../store/sqlite/db.ts';
import { migrate, transaction } from '../store/sqlite/db.ts';
import type { Clock } from '../common/clock.ts';
import { systemClock } from '../common/clock.ts';
import type { CheckpointSigner, PublicKeyResolver } from '../audit/types.ts';
import { DecryptionFailed, open, seal } from './envelope.ts';
import { MasterKeyError } from './masterkey.ts';

export type KeyPurpose = 'session' | 'audit' | 'token';
export const KEY_PURPOSES: readonly KeyPurpose[] = ['session', 'audit', 'token'];
export type KeyStatus = 'active' | 'retiring' | 'retired';

/** Public view of one key (never the private half). */
export interface KeyInfo {
  kid: string;
  purpose: KeyPurpose;
  alg: 'EdDSA';
  status: KeyStatus;
  /** ms since the epoch. */
  createdAt: number;
  /** When a newer key took over signing. */
  supersededAt?: number;
  /** When the key stops verifying (retiring → retired). */
  retireAt?: number;
  publicJwk: JWK;
}

export interface KeyringOptions {
  masterKey: Uint8Array;
  clock?: Clock;
  /** Default overlap a rotated-out key keeps verifying (default 1 h). */
  overlapMs?: number;
  /** Smallest overlap `rotate` accepts unless `immediate` (default 15 min, the session cap). */
  minOverlapMs?: number;
}

export interface RotateOptions {
  overlapMs?: number;
  /** Key compromise: the old key stops verifying now, killing every token it signed. */
  immediate?: boolean;
}

export const KEYRING_MIGRATIONS = [
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
] as const;

const MASTER_CHECK = 'portcullis master key check v1';
const RELOAD_EVERY_MS = 5_000;

interface KeyRow {
  kid: string;
  purpose: string;
  alg: string;
  public_jwk: string;
  private_sealed: Uint8Array | null;
  created_at: number;
  superseded_at: number | null;
  retire_at: number | null;
}

interface LoadedKey {
  row: KeyRow;
  jwk: JWK;
  publicKey: KeyObject;
  privateKey?: KeyObject;
}

/** RFC 7638 thumbprint of an Ed25519 public JWK. */
function thumbprint(x: string): string {
  return createHash('sha256').update(`{"crv":"Ed25519","kty":"OKP","x":"${x}"}`).digest('base64url');
}

function aad(kid: string, purpose: string): string {
  return `crypto_keys:${purpose}:${kid}`;
}

export class Keyring {
  readonly #db: Db;
  readonly #master: Uint8Array;
  readonly #clock: Clock;
  readonly #overlapMs: number;
  readonly #minOverlapMs: number;
  #keys = new Map<string, LoadedKey>();
  #loadedAt = -Infinity;

  /** Migrates the `crypto` tables and checks the master key against this database. */
  static open(db: Db, options: KeyringOptions): Keyring {
    migrate(db, 'crypto', KEYRING_MIGRATIONS);
    const ring = new Keyring(db, options);
    // Every purpose has its own active key from the start: a store made before a purpose existed
    // gets one now, so no purpose ever borrows another's key.
    for (const p of KEY_PURPOSES) ring.activeKey(p);
    return ring;
  }

  private constructor(db: Db, options: KeyringOptions) {
    if (options.masterKey.length !== 32) throw new MasterKeyError('master key must be 32 bytes');
    this.#db = db;
    this.#master = options.masterKey;
    this.#clock = options.clock ?? systemClock;
    this.#overlapMs = options.overlapMs ?? 3_600_000;
    this.#minOverlapMs = options.minOverlapMs ?? 15 * 60_000;
    this.#checkMasterKey();
    this.#reload();
  }

  #checkMasterKey(): void {
    this.#db
      .prepare('INSERT OR IGNORE INTO crypto_meta (name, value) VALUES (?, ?)')
      .run('master_check', seal(this.#master, Buffer.from(MASTER_CHECK), 'crypto_meta:master_check'));
    const row = this.#db.prepare('SELECT value FROM crypto_meta WHERE name = ?').get('master_check') as { value: Uint8Array };
    try {
      open(this.#master, row.value, 'crypto_meta:master_check');
    } catch (e) {
      if (e instanceof DecryptionFailed) {
        throw new MasterKeyError('the master key does not match this data directory (PORTCULLIS_MASTER_KEY or master.key is wrong)');
      }
      throw e;
    }
  }

  #reload(): void {
    const now = this.#clock.now();
    // Erase the private half of keys whose overlap has ended: they can never sign again. Checked
    // in memory first so the periodic reload stays read-only when there is nothing to erase.
    const due = this.#loadedAt === -Infinity || [...this.#keys.values()].some((k) => k.row.private_sealed !== null && k.row.retire_at !== null && k.row.retire_at <= now);
    if (due) {
      this.#db.prepare('UPDATE crypto_keys SET private_sealed = NULL WHERE retire_at IS NOT NULL AND retire_at <= ? AND private_sealed IS NOT NULL').run(now);
    }
    const rows = this.#db.prepare('SELECT * FROM crypto_keys').all() as unknown as KeyRow[];
    const next = new Map<string, LoadedKey>();
    for (const row of rows) {
      const prev = this.#keys.get(row.kid);
      const jwk = JSON.parse(row.public_jwk) as JWK;
      const loaded: LoadedKey = { row, jwk, publicKey: prev?.publicKey ?? createPublicKey({ key: jwk as NodeJsonWebKey, format: 'jwk' }) };
      // Only a key that may still sign needs its private half in memory.
      if (row.superseded_at === null && row.private_sealed !== null) {
        loaded.privateKey = prev?.privateKey ?? this.#openPrivate(row);
      }
      next.set(row.kid, loaded);
    }
    this.#keys = next;
    this.#loadedAt = now;
  }

  #openPrivate(row: KeyRow): KeyObject {
    try {
      const der = open(this.#master, row.private_sealed!, aad(row.kid, row.purpose));
      return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
    } catch (e) {
      if (e instanceof DecryptionFailed) throw new MasterKeyError(`private key ${row.kid} cannot be decrypted with this master key`);
      throw e;
    }
  }

  #maybeReload(): void {
    if (this.#clock.now() - this.#loadedAt >= RELOAD_EVERY_MS || this.#clock.now() < this.#loadedAt) this.#reload();
  }

  #status(row: KeyRow, now: number): KeyStatus {
    if (row.superseded_at === null) return 'active';
    return row.retire_at !== null && row.retire_at > now ? 'retiring' : 'retired';
  }

  #info(k: LoadedKey, now = this.#clock.now()): KeyInfo {
    const r = k.row;
    return {
      kid: r.kid,
      purpose: r.purpose as KeyPurpose,
      alg: 'EdDSA',
      status: this.#status(r, now),
      createdAt: r.created_at,
      ...(r.superseded_at !== null ? { supersededAt: r.superseded_at } : {}),
      ...(r.retire_at !== null ? { retireAt: r.retire_at } : {}),
      publicJwk: { ...k.jwk },
    };
  }

  #insertKey(purpose: KeyPurpose, now: number): void {
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    const jwk = publicKey.export({ format: 'jwk' }) as { x: string };
    const kid = `${purpose}-${thumbprint(jwk.x).slice(0, 22)}`;
    const publicJwk: JWK = { kty: 'OKP', crv: 'Ed25519', x: jwk.x, kid, alg: 'EdDSA', use: 'sig' };
    const der = privateKey.export({ format: 'der', type: 'pkcs8' });
    try {
      this.#db
        .prepare('INSERT INTO crypto_keys (kid, purpose, alg, public_jwk, private_sealed, created_at) VALUES (?, ?, ?, ?, ?, ?)')
        .run(kid, purpose, 'EdDSA', JSON.stringify(publicJwk), seal(this.#master, der, aad(kid, purpose)), now);
    } finally {
      der.fill(0);
    }
  }

  #active(purpose: KeyPurpose): LoadedKey | undefined {
    for (const k of this.#keys.values()) if (k.row.purpose === purpose && k.row.superseded_at === null) return k;
    return undefined;
  }

  /** The key that signs for `purpose` now; the first one is generated on demand. */
  activeKey(purpose: KeyPurpose): KeyInfo {
    return this.#info(this.#activeLoaded(purpose));
  }

  #activeLoaded(purpose: KeyPurpose): LoadedKey {
    assertPurpose(purpose);
    this.#maybeReload();
    let k = this.#active(purpose);
    if (k === undefined) {
      transaction(this.#db, () => {
        const exists = this.#db.prepare('SELECT 1 FROM crypto_keys WHERE purpose = ? AND superseded_at IS NULL').get(purpose);
        if (exists === undefined) this.#insertKey(purpose, this.#clock.now());
      });
      this.#reload();
      k = this.#active(purpose)!;
    }
    if (k.privateKey === undefined) throw new MasterKeyError(`active key ${k.row.kid} has no private half`);
    return k;
  }

  /** Every key (all statuses), newest first. */
  list(purpose?: KeyPurpose): KeyInfo[] {
    this.#reload();
    const now = this.#clock.now();
    return [...this.#keys.values()]
      .filter((k) => purpose === undefined || k.row.purpose === purpose)
      .sort((a, b) => b.row.created_at - a.row.created_at)
      .map((k) => this.#info(k, now));
  }

  /** Makes a new active key; the previous one verifies for the overlap, then retires. */
  rotate(purpose: KeyPurpose, options: RotateOptions = {}): { active: KeyInfo; previous?: KeyInfo } {
    assertPurpose(purpose);
    const overlap = options.immediate === true ? 0 : (options.overlapMs ?? this.#overlapMs);
    if (!Number.isFinite(overlap) || overlap < 0) throw new RangeError('overlapMs must be a non-negative number');
    if (options.immediate !== true && overlap < this.#minOverlapMs) {
      throw new RangeError(`overlap must be at least ${this.#minOverlapMs} ms (the longest token TTL); use immediate for a compromised key`);
    }
    const now = this.#clock.now();
    let previousKid: string | undefined;
    transaction(this.#db, () => {
      const prev = this.#db.prepare('SELECT kid FROM crypto_keys WHERE purpose = ? AND superseded_at IS NULL').get(purpose) as { kid: string } | undefined;
      if (prev !== undefined) {
        previousKid = prev.kid;
        this.#db.prepare('UPDATE crypto_keys SET superseded_at = ?, retire_at = ? WHERE kid = ?').run(now, now + overlap, prev.kid);
      }
      this.#insertKey(purpose, now);
    });
    this.#reload();
    const active = this.#info(this.#active(purpose)!, now);
    const prevKey = previousKid === undefined ? undefined : this.#keys.get(previousKid);
    return prevKey === undefined ? { active } : { active, previous: this.#info(prevKey, now) };
  }

  /**
   * Public keys that still verify (active and retiring), as a JWKS for `/.well-known/jwks.json`:
   * the access-token (`token`) keys only. Session keys are never published (the broker verifies
   * its own sessions), so a resource server that trusts this JWKS cannot be handed a session
   * token; audit keys are served apart (auditJwks).
   */
  publicJwks(): { keys: JWK[] } {
    this.#maybeReload();
    const now = this.#clock.now();
    return { keys: [...this.#keys.values()].filter((k) => k.row.purpose === 'token' && this.#status(k.row, now) !== 'retired').map((k) => ({ ...k.jwk })) };
  }

  /** Every audit checkpoint key ever used (retired ones too: old checkpoints must verify), for offline verification. */
  auditJwks(): { keys: (JWK & { status: KeyStatus; created_at: string })[] } {
    this.#maybeReload();
    const now = this.#clock.now();
    return {
      keys: [...this.#keys.values()]
        .filter((k) => k.row.purpose === 'audit')
        .sort((a, b) => a.row.created_at - b.row.created_at)
        .map((k) => ({ ...k.jwk, status: this.#status(k.row, now), created_at: new Date(k.row.created_at).toISOString() })),
    };
  }

  /**
   * The public key for `kid` if it belongs to `purpose` and still verifies (active or in its
   * overlap). An unknown kid re-reads the table at most every few seconds (another process may
   * have rotated).
   */
  verificationKey(kid: string, purpose: KeyPurpose): KeyObject | undefined {
    let k = this.#keys.get(kid);
    if (k === undefined) {
      this.#maybeReload();
      k = this.#keys.get(kid);
    }
    if (k === undefined || k.row.purpose !== purpose) return undefined;
    return this.#status(k.row, this.#clock.now()) === 'retired' ? undefined : k.publicKey;
  }

  /** Signs a JWT with the active key of `purpose` (EdDSA, header carries kid and typ). */
  async signJwt(purpose: KeyPurpose, payload: JWTPayload, header: { typ?: string } = {}): Promise<string> {
    const k = this.#activeLoaded(purpose);
    return new SignJWT(payload)
      .setProtectedHeader({ alg: 'EdDSA', kid: k.row.kid, ...(header.typ !== undefined ? { typ: header.typ } : {}) })
      .sign(k.privateKey!);
  }

  /** Raw Ed25519 signature with the active key of `purpose`. */
  sign(purpose: KeyPurpose, data: Uint8Array): { kid: string; signature: Uint8Array } {
    const k = this.#activeLoaded(purpose);
    return { kid: k.row.kid, signature: new Uint8Array(edSign(null, data, k.privateKey!)) };
  }

  /** Signs audit checkpoints with the active `audit` key; `kid` follows rotations. */
  checkpointSigner(): CheckpointSigner {
    const ring = this;
    return {
      get kid(): string {
        return ring.#activeLoaded('audit').row.kid;
      },
      sign(data: Uint8Array): Uint8Array {
        return ring.sign('audit', data).signature;
      },
    };
  }

  /** Resolves any audit key ever used, retired ones included (old checkpoints must verify). */
  readonly publicKeyResolver: PublicKeyResolver = (kid: string) => {
    let k = this.#keys.get(kid);
    if (k === undefined) {
      this.#maybeReload();
      k = this.#keys.get(kid);
    }
    return k !== undefined && k.row.purpose === 'audit' ? ({ ...k.jwk } as NodeJsonWebKey) : undefined;
  };

  /**
   * A named 32-byte server secret (e.g. the API key pepper), generated once and sealed at rest
   * under the master key like the private keys.
   */
  secret(name: string): Uint8Array {
    const a = `crypto_secrets:${name}`;
    this.#db
      .prepare('INSERT OR IGNORE INTO crypto_secrets (name, sealed, created_at) VALUES (?, ?, ?)')
      .run(name, seal(this.#master, randomBytes(32), a), this.#clock.now());
    const row = this.#db.prepare('SELECT sealed FROM crypto_secrets WHERE name = ?').get(name) as { sealed: Uint8Array };
    try {
      return new Uint8Array(open(this.#master, row.sealed, a));
    } catch (e) {
      if (e instanceof DecryptionFailed) throw new MasterKeyError(`secret ${name} cannot be decrypted with this master key`);
      throw e;
    }
  }
}

function assertPurpose(p: string): asserts p is KeyPurpose {
  if (!(KEY_PURPOSES as readonly string[]).includes(p)) throw new RangeError(`unknown key purpose "${p}"`);
}
