// The broker's own Ed25519 signing keys, one active key per purpose, kept in the store (KeyStore) with
// the private half sealed under the master key (envelope.ts). Rotation makes a new active key; the
// previous one stops signing at once but keeps verifying for an overlap (≥ the longest token TTL
// signed with it), then retires: its private half is erased, its public half is kept forever so
// old audit checkpoints still verify.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign as edSign } from 'node:crypto';
import type { JsonWebKey as NodeJsonWebKey, KeyObject } from 'node:crypto';
import { signEdDsaJwt } from './sign.ts';
import type { JWK, JWTPayload } from 'jose';
import type { ChangeFeed, UnitOfWork } from '../store/ports.ts';
import type { KeyStore, StoredKey } from './ports.ts';
import type { Clock } from '../common/clock.ts';
import { systemClock } from '../common/clock.ts';
import type { CheckpointSigner, PublicKeyResolver } from '../audit/types.ts';
import { DecryptionFailed, open, seal } from './envelope.ts';
import { MasterKeyError } from './masterkey.ts';

export type KeyPurpose = 'session' | 'audit' | 'token';
const KEY_PURPOSES: readonly KeyPurpose[] = ['session', 'audit', 'token'];
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
  /** The named secrets to load (created on first open) for `secret(name)`; default KEYRING_SECRETS. */
  secrets?: readonly string[];
}

export interface RotateOptions {
  overlapMs?: number;
  /** Key compromise: the old key stops verifying now, killing every token it signed. */
  immediate?: boolean;
}

/**
 * The named secrets the keyring loads at open (`secret(name)` serves them synchronously): the API
 * key pepper (identity/apikeys.ts), the SSH user and host CA seeds (broker/open.ts) and the key that seals
 * pending human logins in the store (identity/login-state.ts LOGIN_STATE_SECRET).
 */
const KEYRING_SECRETS: readonly string[] = ['apikey-pepper', 'ssh-user-ca', 'ssh-host-ca', 'oidc-login-state', 'access-page-cursor'];

/** The keyring cannot serve a request: no active key for a purpose, or a secret not loaded at open. */
export class KeyringError extends Error {
  readonly code = 'keyring_error';
  constructor(message: string) {
    super(message);
    this.name = 'KeyringError';
  }
}

/** What the keyring needs of the store: its repositories and the unit of work. */
export type KeyringStore = UnitOfWork & { readonly keys: KeyStore; readonly changes?: ChangeFeed };

const MASTER_CHECK = 'portcullis master key check v1';
const RELOAD_EVERY_MS = 5_000;

interface LoadedKey {
  stored: StoredKey;
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

/**
 * Keys are held in memory and every signing and verifying call is synchronous against that copy;
 * opening, rotating and the periodic refresh go through the store (KeyStore, ports.ts).
 */
export class Keyring {
  readonly #store: KeyringStore;
  readonly #master: Uint8Array;
  readonly #clock: Clock;
  readonly #overlapMs: number;
  readonly #minOverlapMs: number;
  // Refreshed from the store every few seconds when used, at once after a rotation made here, and
  // on another replica's notice, so a key rotated in there signs and verifies here at once.
  #keys = new Map<string, LoadedKey>();
  #loadedAt = -Infinity;
  /** Sealed secrets by name, loaded at open (opened on each use, like the private keys at rest). */
  readonly #secrets = new Map<string, Uint8Array>();
  /** Refreshes are numbered as they start; one that finishes after a later one is dropped. */
  #refreshes = 0;
  #applied = 0;
  /** The background refresh in flight, and when the last one started. */
  #pending: Promise<void> | undefined;
  #triedAt = -Infinity;

  /**
   * Checks the master key against this store, gives every purpose its active key and loads the
   * keys and the named secrets (`secrets`, default KEYRING_SECRETS; created on first open).
   */
  static async open(store: KeyringStore, options: KeyringOptions): Promise<Keyring> {
    const ring = new Keyring(store, options);
    store.changes?.subscribe('keys', () => ring.refresh());
    store.changes?.onResync(() => ring.refresh());
    await ring.#checkMasterKey();
    // Every purpose has its own active key from the start: a store made before a purpose existed
    // gets one now, so no purpose ever borrows another's key.
    await ring.#ensureActiveKeys();
    await ring.refresh();
    for (const name of options.secrets ?? KEYRING_SECRETS) await ring.#loadSecret(name);
    return ring;
  }

  private constructor(store: KeyringStore, options: KeyringOptions) {
    if (options.masterKey.length !== 32) throw new MasterKeyError('master key must be 32 bytes');
    this.#store = store;
    this.#master = options.masterKey;
    this.#clock = options.clock ?? systemClock;
    this.#overlapMs = options.overlapMs ?? 3_600_000;
    this.#minOverlapMs = options.minOverlapMs ?? 15 * 60_000;
  }

  async #checkMasterKey(): Promise<void> {
    const meta = this.#store.keys.meta;
    await meta.insertIfAbsent('master_check', seal(this.#master, Buffer.from(MASTER_CHECK), 'crypto_meta:master_check'), this.#clock.now());
    const value = await meta.get('master_check');
    try {
      open(this.#master, value!, 'crypto_meta:master_check');
    } catch (e) {
      if (e instanceof DecryptionFailed) {
        throw new MasterKeyError('the master key does not match this data directory (PORTCULLIS_MASTER_KEY or master.key is wrong)');
      }
      throw e;
    }
  }

  async #ensureActiveKeys(): Promise<void> {
    const keys = this.#store.keys.signingKeys;
    await this.#store.transaction(async () => {
      await this.#store.lock('keyring');
      for (const p of KEY_PURPOSES) {
        if ((await keys.active(p)) !== undefined) continue;
        await keys.insert(this.#newKey(p, this.#clock.now()));
        await this.#store.changes?.publish('keys', p);
      }
    });
  }

  async #loadSecret(name: string): Promise<void> {
    const secrets = this.#store.keys.secrets;
    await secrets.insertIfAbsent(name, seal(this.#master, randomBytes(32), `crypto_secrets:${name}`), this.#clock.now());
    this.#secrets.set(name, (await secrets.get(name))!);
  }

  /**
   * Re-reads every key from the store. Erases the private half of keys whose overlap has ended
   * first: they can never sign again (checked in memory first, so a refresh stays read-only when
   * there is nothing to erase).
   */
  async refresh(): Promise<void> {
    const n = ++this.#refreshes;
    const now = this.#clock.now();
    const keys = this.#store.keys.signingKeys;
    const due = this.#loadedAt === -Infinity || [...this.#keys.values()].some((k) => k.stored.privateSealed !== null && k.stored.retireAt !== null && k.stored.retireAt <= now);
    if (due) await keys.eraseRetired(now);
    const stored = await keys.list();
    if (n < this.#applied) return;
    const next = new Map<string, LoadedKey>();
    for (const s of stored) {
      const prev = this.#keys.get(s.kid);
      const loaded: LoadedKey = { stored: s, jwk: s.publicJwk, publicKey: prev?.publicKey ?? createPublicKey({ key: s.publicJwk as NodeJsonWebKey, format: 'jwk' }) };
      // Only a key that may still sign needs its private half in memory.
      if (s.supersededAt === null && s.privateSealed !== null) {
        loaded.privateKey = prev?.privateKey ?? this.#openPrivate(s);
      }
      next.set(s.kid, loaded);
    }
    this.#keys = next;
    this.#loadedAt = now;
    this.#applied = n;
  }

  #openPrivate(s: StoredKey): KeyObject {
    try {
      const der = open(this.#master, s.privateSealed!, aad(s.kid, s.purpose));
      return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
    } catch (e) {
      if (e instanceof DecryptionFailed) throw new MasterKeyError(`private key ${s.kid} cannot be decrypted with this master key`);
      throw e;
    }
  }

  /**
   * Starts a refresh in the background when the copy in memory is older than a few seconds (or
   * the clock went back); the call that starts it is answered from memory. A failed refresh is
   * retried after the same interval.
   */
  #maybeReload(): void {
    const now = this.#clock.now();
    const stale = (since: number) => now - since >= RELOAD_EVERY_MS || now < since;
    if (this.#pending !== undefined || !stale(this.#loadedAt) || !stale(this.#triedAt)) return;
    this.#triedAt = now;
    this.#pending = this.refresh()
      .catch(() => {})
      .finally(() => (this.#pending = undefined));
  }

  #status(s: StoredKey, now: number): KeyStatus {
    if (s.supersededAt === null) return 'active';
    return s.retireAt !== null && s.retireAt > now ? 'retiring' : 'retired';
  }

  #info(k: LoadedKey, now = this.#clock.now()): KeyInfo {
    const s = k.stored;
    return {
      kid: s.kid,
      purpose: s.purpose as KeyPurpose,
      alg: 'EdDSA',
      status: this.#status(s, now),
      createdAt: s.createdAt,
      ...(s.supersededAt !== null ? { supersededAt: s.supersededAt } : {}),
      ...(s.retireAt !== null ? { retireAt: s.retireAt } : {}),
      publicJwk: { ...k.jwk },
    };
  }

  /** A fresh key pair for `purpose`, its private half sealed and bound to kid and purpose. */
  #newKey(purpose: KeyPurpose, now: number): StoredKey {
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    const jwk = publicKey.export({ format: 'jwk' }) as { x: string };
    const kid = `${purpose}-${thumbprint(jwk.x).slice(0, 22)}`;
    const publicJwk: JWK = { kty: 'OKP', crv: 'Ed25519', x: jwk.x, kid, alg: 'EdDSA', use: 'sig' };
    const der = privateKey.export({ format: 'der', type: 'pkcs8' });
    try {
      return { kid, purpose, alg: 'EdDSA', publicJwk, privateSealed: seal(this.#master, der, aad(kid, purpose)), createdAt: now, supersededAt: null, retireAt: null };
    } finally {
      der.fill(0);
    }
  }

  #active(purpose: KeyPurpose): LoadedKey | undefined {
    for (const k of this.#keys.values()) if (k.stored.purpose === purpose && k.stored.supersededAt === null) return k;
    return undefined;
  }

  /** The key that signs for `purpose` now. */
  activeKey(purpose: KeyPurpose): KeyInfo {
    return this.#info(this.#activeLoaded(purpose));
  }

  #activeLoaded(purpose: KeyPurpose): LoadedKey {
    assertPurpose(purpose);
    this.#maybeReload();
    const k = this.#active(purpose);
    // Cannot happen after open (every purpose gets a key then, and rotation replaces it in one transaction).
    if (k === undefined) throw new KeyringError(`no active ${purpose} key`);
    if (k.privateKey === undefined) throw new MasterKeyError(`active key ${k.stored.kid} has no private half`);
    return k;
  }

  /** Every key (all statuses), newest first, as stored now. */
  async list(purpose?: KeyPurpose): Promise<KeyInfo[]> {
    await this.refresh();
    const now = this.#clock.now();
    return [...this.#keys.values()]
      .filter((k) => purpose === undefined || k.stored.purpose === purpose)
      .sort((a, b) => b.stored.createdAt - a.stored.createdAt)
      .map((k) => this.#info(k, now));
  }

  /** Makes a new active key; the previous one verifies for the overlap, then retires. */
  async rotate(purpose: KeyPurpose, options: RotateOptions = {}): Promise<{ active: KeyInfo; previous?: KeyInfo }> {
    assertPurpose(purpose);
    const overlap = options.immediate === true ? 0 : (options.overlapMs ?? this.#overlapMs);
    if (!Number.isFinite(overlap) || overlap < 0) throw new RangeError('overlapMs must be a non-negative number');
    if (options.immediate !== true && overlap < this.#minOverlapMs) {
      throw new RangeError(`overlap must be at least ${this.#minOverlapMs} ms (the longest token TTL); use immediate for a compromised key`);
    }
    const now = this.#clock.now();
    const keys = this.#store.keys.signingKeys;
    // Read the active key and replace it as one unit: two rotations at once must not both supersede
    // the same key and leave two active ones.
    const { previousKid, kid } = await this.#store.transaction(async () => {
      await this.#store.lock('keyring');
      const prev = await keys.active(purpose);
      if (prev !== undefined) await keys.supersede(prev.kid, now, now + overlap);
      const made = this.#newKey(purpose, now);
      await keys.insert(made);
      await this.#store.changes?.publish('keys', purpose);
      return { previousKid: prev?.kid, kid: made.kid };
    });
    await this.refresh();
    // The key this rotation made (a rotation that ran right after may already have replaced it).
    const active = this.#info(this.#keys.get(kid)!, now);
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
    return { keys: [...this.#keys.values()].filter((k) => k.stored.purpose === 'token' && this.#status(k.stored, now) !== 'retired').map((k) => ({ ...k.jwk })) };
  }

  /** Every audit checkpoint key ever used (retired ones too: old checkpoints must verify), for offline verification. */
  auditJwks(): { keys: (JWK & { status: KeyStatus; created_at: string })[] } {
    this.#maybeReload();
    const now = this.#clock.now();
    return {
      keys: [...this.#keys.values()]
        .filter((k) => k.stored.purpose === 'audit')
        .sort((a, b) => a.stored.createdAt - b.stored.createdAt)
        .map((k) => ({ ...k.jwk, status: this.#status(k.stored, now), created_at: new Date(k.stored.createdAt).toISOString() })),
    };
  }

  /**
   * The public key for `kid` if it belongs to `purpose` and still verifies (active or in its
   * overlap). An unknown kid starts a refresh (at most every few seconds: another process may
   * have rotated) and is refused this time.
   */
  verificationKey(kid: string, purpose: KeyPurpose): KeyObject | undefined {
    const k = this.#keys.get(kid);
    if (k === undefined) this.#maybeReload();
    if (k === undefined || k.stored.purpose !== purpose) return undefined;
    return this.#status(k.stored, this.#clock.now()) === 'retired' ? undefined : k.publicKey;
  }

  /** Signs a JWT with the active key of `purpose` (EdDSA, header carries kid and typ). */
  async signJwt(purpose: KeyPurpose, payload: JWTPayload, header: { typ?: string } = {}): Promise<string> {
    const k = this.#activeLoaded(purpose);
    return signEdDsaJwt(payload, k.privateKey!, k.stored.kid, header.typ);
  }

  /** Raw Ed25519 signature with the active key of `purpose`. */
  sign(purpose: KeyPurpose, data: Uint8Array): { kid: string; signature: Uint8Array } {
    const k = this.#activeLoaded(purpose);
    return { kid: k.stored.kid, signature: new Uint8Array(edSign(null, data, k.privateKey!)) };
  }

  /** Signs audit checkpoints with the active `audit` key; `kid` follows rotations. */
  checkpointSigner(): CheckpointSigner {
    const kid = (): string => this.#activeLoaded('audit').stored.kid;
    return {
      get kid(): string {
        return kid();
      },
      sign: (data: Uint8Array): Uint8Array => this.sign('audit', data).signature,
    };
  }

  /** Resolves any audit key ever used, retired ones included (old checkpoints must verify). */
  readonly publicKeyResolver: PublicKeyResolver = (kid: string) => {
    const k = this.#keys.get(kid);
    if (k === undefined) this.#maybeReload();
    return k !== undefined && k.stored.purpose === 'audit' ? ({ ...k.jwk } as NodeJsonWebKey) : undefined;
  };

  /**
   * A named 32-byte server secret (e.g. the API key pepper), generated once and sealed at rest
   * under the master key like the private keys. Only the secrets named when the keyring opened.
   */
  secret(name: string): Uint8Array {
    const sealed = this.#secrets.get(name);
    if (sealed === undefined) throw new KeyringError(`secret ${name} was not loaded when the keyring opened (KEYRING_SECRETS)`);
    try {
      return new Uint8Array(open(this.#master, sealed, `crypto_secrets:${name}`));
    } catch (e) {
      if (e instanceof DecryptionFailed) throw new MasterKeyError(`secret ${name} cannot be decrypted with this master key`);
      throw e;
    }
  }
}

function assertPurpose(p: string): asserts p is KeyPurpose {
  if (!(KEY_PURPOSES as readonly string[]).includes(p)) throw new RangeError(`unknown key purpose "${p}"`);
}
