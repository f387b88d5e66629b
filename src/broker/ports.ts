// The broker domain's storage ports: what it needs from a store, implemented in src/store/.
// The first administrator's one-time bootstrap secret.

/** The one bootstrap secret, by its hash (times in ms since the epoch). */
export interface BootstrapSecret {
  /** SHA-256 of the secret, hex. */
  hash: string;
  createdAt: number;
  /** Set once the secret was exchanged for a session. */
  usedAt?: number;
}

export interface BootstrapStore {
  get(): Promise<BootstrapSecret | undefined>;
  /** Stores the first secret unless there is one already; true if this call stored it. */
  create(hash: string, createdAt: number): Promise<boolean>;
  /** Replaces the secret (or stores the first), unspent: any earlier one is void. */
  replace(hash: string, createdAt: number): Promise<void>;
  /**
   * Marks the secret whose hash is `hash` spent at `usedAt`, if it still is the stored one and
   * unspent; true if this call spent it (of two logins racing with one secret, one wins).
   */
  spend(hash: string, usedAt: number): Promise<boolean>;
}
