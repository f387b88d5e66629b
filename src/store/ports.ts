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
