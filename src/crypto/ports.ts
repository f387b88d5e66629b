// The crypto domain's storage ports: what it needs from a store, implemented in src/store/.
// Sealed keyring entries (signing keys, secrets) and the SPIFFE CAs' sealed keys.
import type { JWK } from 'jose';

/** One signing key as stored: the public half in clear, the private half sealed (envelope.ts). */
export interface StoredKey {
  kid: string;
  purpose: string;
  alg: string;
  publicJwk: JWK;
  /** Sealed under the master key, bound to kid and purpose; null once the key retired. */
  privateSealed: Uint8Array | null;
  /** ms since the epoch. */
  createdAt: number;
  /** When a newer key of the purpose took over signing; null for the active key. */
  supersededAt: number | null;
  /** When it stops verifying. */
  retireAt: number | null;
}

/** Public halves only: what the offline reader needs (no master key, nothing written). */
export interface PublicKeyReader {
  /** Every stored key of `purpose`, retired ones included. */
  publicKeys(purpose: string): Promise<{ kid: string; publicJwk: JWK }[]>;
}

export interface SigningKeyRepository extends PublicKeyReader {
  list(): Promise<StoredKey[]>;
  /** The key of `purpose` that is not superseded, if any. */
  active(purpose: string): Promise<StoredKey | undefined>;
  insert(key: StoredKey): Promise<void>;
  /** Marks a key as superseded at `at`, verifying until `retireAt`. */
  supersede(kid: string, at: number, retireAt: number): Promise<void>;
  /** Erases the private half of every key whose `retireAt` is at or before `now`; returns how many. */
  eraseRetired(now: number): Promise<number>;
}

/** Named sealed values (server secrets, the master-key check). */
export interface SealedValueRepository {
  get(name: string): Promise<Uint8Array | undefined>;
  /** Stores `sealed` under `name` unless a value is there; true when this one was stored. */
  insertIfAbsent(name: string, sealed: Uint8Array, createdAt: number): Promise<boolean>;
}

/** One generation of a trust domain's SPIFFE CA: a root and the intermediate it signed. */
export interface SpiffeCaGeneration {
  trustDomain: string;
  generation: number;
  rootPem: string;
  intermediatePem: string;
  /** The intermediate's private key, sealed under the master key, bound to domain and generation. */
  intermediateKeySealed: Uint8Array;
  /** ms since the epoch. */
  createdAt: number;
  /** The intermediate's notAfter, ms since the epoch. */
  notAfter: number;
}

export interface SpiffeCaRepository {
  /** The trust domain's generations, newest first. */
  generations(trustDomain: string): Promise<SpiffeCaGeneration[]>;
  /** Stores a generation; false (nothing written) when that generation exists already. */
  insert(generation: SpiffeCaGeneration): Promise<boolean>;
}

export interface KeyStore {
  readonly signingKeys: SigningKeyRepository;
  /** Named server secrets (e.g. the API key pepper). */
  readonly secrets: SealedValueRepository;
  /** The keyring's own records (the master-key check). */
  readonly meta: SealedValueRepository;
  readonly spiffeCa: SpiffeCaRepository;
}
