// The storage seam shared by every domain: a unit of work that the SQLite store implements today
// and the PostgreSQL store will implement next. Each domain declares its own repository
// interfaces (`src/<domain>/ports.ts`); this file holds only what they all share.

/**
 * A transaction over the store. Repository calls made inside `fn` — anywhere in its async
 * context, through any repository of the same store — join the transaction; a nested
 * `transaction` joins the outer one. Calls from other flows wait until it ends (SQLite) or see
 * only committed state (PostgreSQL). `fn` must not do network I/O or wait on anything but the
 * store: the transaction holds the store's write lock on SQLite for as long as it runs.
 */
export interface UnitOfWork {
  transaction<T>(fn: () => Promise<T>): Promise<T>;
  /**
   * Inside a transaction: holds a lock named `key` until the transaction ends, so a read, a
   * check and a write on one record cannot interleave with another replica's (PostgreSQL:
   * `pg_advisory_xact_lock`; SQLite: writers are already serialised, so it only checks that a
   * transaction is open).
   */
  lock(key: string): Promise<void>;
}

/** What changed, for the in-memory views other replicas keep (the key names the record). */
export type ChangeTopic = 'identity' | 'session' | 'keys' | 'policy' | 'grant' | 'lease' | 'signal';

/**
 * Tells the other replicas sharing a store that a record changed, so they refresh what they keep
 * in memory (identities, session revocations, keys, the active policy, grant holders, leases).
 * Publish inside the transaction that makes the change: the notice then goes out at commit, or
 * not at all. A replica that may have missed notices (a lost connection) is told to `resync`:
 * every view reloads in full. The embedded store has one process, so it delivers nothing.
 */
export interface ChangeFeed {
  /** False while notices cannot be received (the replica is not ready: it could miss a revocation). */
  readonly listening: boolean;
  publish(topic: ChangeTopic, key: string): Promise<void>;
  /** Calls `fn` for each change another replica publishes on `topic`; returns an unsubscribe. */
  subscribe(topic: ChangeTopic, fn: (key: string) => void | Promise<void>): () => void;
  /** Calls `fn` after notices may have been missed (a reconnect); returns an unsubscribe. */
  onResync(fn: () => void | Promise<void>): () => void;
}

/**
 * Which replica runs the cluster's jobs (the reaper, expiry sweeps, reconcile). One leads at a
 * time; if it dies another takes over within seconds. Two may briefly both believe they lead (a
 * leader cut off from the store), so a job's writes call `fence()` inside their transaction: it
 * fails once another replica has taken over (a fencing epoch), and holds off a take-over until
 * the transaction ends. With one process (SQLite) it always leads.
 */
export interface Leadership {
  readonly leading: boolean;
  /** Calls `fn` whenever this replica starts or stops leading; returns an unsubscribe. */
  onChange(fn: (leading: boolean) => void): () => void;
  /** Inside a transaction: throws NotLeader unless this replica still leads. */
  fence(): Promise<void>;
  /**
   * Marks work this replica has begun at a target (a lease intent) as alive for as long as this
   * replica is: held on the same connection as the leadership, so a replica that dies (kill -9)
   * loses its holds and its lead at the same instant. Take it before the intent is on record;
   * the returned function releases it once the intent is settled.
   */
  hold(key: string): Promise<() => Promise<void>>;
  /**
   * Runs `fn` only if no live replica holds `key` — the intent's replica is gone or done — keeping
   * every other replica off `key` while it runs; resolves undefined (without running it) if held.
   */
  ifAbandoned<T>(key: string, fn: () => Promise<T>): Promise<T | undefined>;
}
