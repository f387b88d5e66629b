// Pending human logins (oidc-human), kept in the store so that any replica completes a login
// another started, once: rows are keyed by a digest of the handle, their state sealed (AES-GCM)
// under a keyring secret, and their number bounded so that unauthenticated starts cannot fill it.
import { createHash, randomBytes } from 'node:crypto';
import { AuthenticationFailed, Unavailable } from '../common/errors.ts';
import { DecryptionFailed, open, seal } from '../crypto/envelope.ts';
import type { LoginStateKind, LoginStateRepository, PendingLoginState } from './ports.ts';

/** Unexpired pending logins kept at most (all trusts together); starts beyond it are refused. */
export const MAX_PENDING_LOGINS = 10_000;

/** The keyring secret (crypto/keyring.ts KEYRING_SECRETS) that seals pending logins. */
export const LOGIN_STATE_SECRET = 'oidc-login-state';

/** One pending login, opened: what its flow needs to complete it. */
export interface OpenedLoginState<T> {
  state: T;
  expiresAt: number;
}

export interface LoginStatesOptions {
  /** Unexpired pending logins kept at most (default MAX_PENDING_LOGINS). */
  max?: number;
}

/**
 * The pending logins of the human trusts over a LoginStateRepository. `scope` (the trust's name)
 * and the flow are part of each row's key and of its seal's associated data, so a row never
 * answers for another trust, flow or handle.
 */
export class LoginStates {
  readonly #repository: LoginStateRepository;
  readonly #key: Uint8Array;
  readonly #max: number;

  /** `key`: 32 bytes (the keyring secret LOGIN_STATE_SECRET). */
  constructor(repository: LoginStateRepository, key: Uint8Array, options: LoginStatesOptions = {}) {
    if (key.length !== 32) throw new RangeError('the login state key must be 32 bytes');
    this.#repository = repository;
    this.#key = key;
    this.#max = options.max ?? MAX_PENDING_LOGINS;
  }

  /** Keeps a new login's state until `expiresAt`; Unavailable (503) when the bound is reached. */
  async put<T>(scope: string, kind: LoginStateKind, handle: string, state: T, expiresAt: number, now: number): Promise<void> {
    const id = digest(scope, kind, handle);
    const kept = await this.#repository.put({ handle: id, kind, data: this.#seal(id, kind, state), expiresAt }, now, this.#max);
    if (!kept) throw new Unavailable(`too many sign-ins in progress (the limit is ${this.#max} pending logins): try again in a few minutes`);
  }

  /** Consumes a login's state (single use across replicas); undefined if unknown or used. */
  async take<T>(scope: string, kind: LoginStateKind, handle: string): Promise<OpenedLoginState<T> | undefined> {
    const id = digest(scope, kind, handle);
    const row = await this.#repository.take(id, kind);
    return row && this.#open<T>(id, row);
  }

  /** Reads a login's state without consuming it; undefined if unknown or used. */
  async get<T>(scope: string, kind: LoginStateKind, handle: string): Promise<OpenedLoginState<T> | undefined> {
    const id = digest(scope, kind, handle);
    const row = await this.#repository.get(id, kind);
    return row && this.#open<T>(id, row);
  }

  /** Replaces a kept login's state (its expiry stays); false if it is gone. */
  update<T>(scope: string, kind: LoginStateKind, handle: string, state: T): Promise<boolean> {
    const id = digest(scope, kind, handle);
    return this.#repository.update(id, kind, this.#seal(id, kind, state));
  }

  /** Drops the expired logins; returns how many. */
  purgeExpired(now: number): Promise<number> {
    return this.#repository.purgeExpired(now);
  }

  #seal(id: string, kind: LoginStateKind, state: unknown): Uint8Array {
    return seal(this.#key, Buffer.from(JSON.stringify(state), 'utf8'), aad(id, kind));
  }

  #open<T>(id: string, row: PendingLoginState): OpenedLoginState<T> {
    let plain: Buffer;
    try {
      plain = open(this.#key, row.data, aad(id, row.kind));
    } catch (err) {
      // Altered, moved from another row, or sealed under another key: not a login to complete.
      if (err instanceof DecryptionFailed) throw new AuthenticationFailed('invalid_state', 'the login state could not be opened');
      throw err;
    }
    return { state: JSON.parse(plain.toString('utf8')) as T, expiresAt: row.expiresAt };
  }
}

function digest(scope: string, kind: LoginStateKind, handle: string): string {
  return createHash('sha256').update(scope).update('\0').update(kind).update('\0').update(handle).digest('base64url');
}

function aad(id: string, kind: LoginStateKind): string {
  return `identity_login_state:${kind}:${id}`;
}

/**
 * Pending logins in this process's memory: for a trust built without a store (tests, tools). A
 * broker always passes its store's repository, so that any replica can complete a login.
 */
export class MemoryLoginStateRepository implements LoginStateRepository {
  readonly #rows = new Map<string, PendingLoginState>();

  async put(entry: PendingLoginState, now: number, max: number): Promise<boolean> {
    await this.purgeExpired(now);
    if (this.#rows.size >= max) return false;
    this.#rows.set(`${entry.kind}:${entry.handle}`, { ...entry, data: new Uint8Array(entry.data) });
    return true;
  }

  async take(handle: string, kind: LoginStateKind): Promise<PendingLoginState | undefined> {
    const row = this.#rows.get(`${kind}:${handle}`);
    this.#rows.delete(`${kind}:${handle}`);
    return row;
  }

  async get(handle: string, kind: LoginStateKind): Promise<PendingLoginState | undefined> {
    return this.#rows.get(`${kind}:${handle}`);
  }

  async update(handle: string, kind: LoginStateKind, data: Uint8Array): Promise<boolean> {
    const row = this.#rows.get(`${kind}:${handle}`);
    if (row === undefined) return false;
    this.#rows.set(`${kind}:${handle}`, { ...row, data: new Uint8Array(data) });
    return true;
  }

  async purgeExpired(now: number): Promise<number> {
    let n = 0;
    for (const [k, v] of this.#rows) if (v.expiresAt <= now && this.#rows.delete(k)) n++;
    return n;
  }

  async count(): Promise<number> {
    return this.#rows.size;
  }
}

/** Pending logins in memory under a random key (a trust built without a store). */
export function memoryLoginStates(options: LoginStatesOptions = {}): LoginStates {
  return new LoginStates(new MemoryLoginStateRepository(), randomBytes(32), options);
}
