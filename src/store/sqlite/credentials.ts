// SQLite implementation of the credentials domain's storage ports (src/credentials/ports.ts): the
// lease table and its migrations; its statements are in lease-rows.ts, its group commit in
// lease-writer.ts.
import { NotFound } from '../../common/errors.ts';
import type { CredentialStore, LeaseFilter, LeaseRepository } from '../../credentials/ports.ts';
import type { Lease, TargetKind } from '../../credentials/types.ts';
import { migrate } from './db.ts';
import type { Migration, SqliteDb } from './db.ts';
import { LeaseRowMissing, LeaseRows } from './lease-rows.ts';
import type { LeaseWrite } from './lease-rows.ts';
import { LeaseWriteMethods } from '../rows/leases.ts';
import { InlineLeaseWriter, WorkerLeaseWriter } from './lease-writer.ts';
import type { LeaseWriter } from './lease-writer.ts';

const MIGRATIONS: Migration[] = [
  {
    version: 1,
    up: `CREATE TABLE credential_leases (
           id TEXT PRIMARY KEY,
           identity_id TEXT NOT NULL,
           target TEXT NOT NULL,
           kind TEXT NOT NULL,
           permission TEXT NOT NULL,
           handle TEXT,
           params TEXT NOT NULL DEFAULT '{}',
           fingerprint TEXT,
           status TEXT NOT NULL,
           purpose TEXT NOT NULL,
           decision_id TEXT NOT NULL,
           grant_id TEXT,
           session_id TEXT,
           trust TEXT,
           issued_at INTEGER NOT NULL,
           expires_at INTEGER NOT NULL,
           max_expires_at INTEGER NOT NULL,
           renewals INTEGER NOT NULL DEFAULT 0,
           revoke_attempts INTEGER NOT NULL DEFAULT 0,
           next_attempt_at INTEGER,
           last_error TEXT,
           revoked_at INTEGER,
           revoked_by TEXT,
           revoke_reason TEXT);
         CREATE INDEX credential_leases_identity ON credential_leases (identity_id);
         CREATE INDEX credential_leases_target ON credential_leases (target);
         CREATE INDEX credential_leases_status ON credential_leases (status, expires_at);
         CREATE INDEX credential_leases_session ON credential_leases (session_id);
         CREATE INDEX credential_leases_decision ON credential_leases (decision_id);`,
  },
  // Ending an access grant revokes the leases issued under it.
  { version: 2, up: 'CREATE INDEX credential_leases_grant ON credential_leases (grant_id);' },
  // Revoking a lease revokes the tokens exchanged from it (children): no table scan for that.
  { version: 3, up: "CREATE INDEX credential_leases_parent ON credential_leases (json_extract(params, '$.parent'));" },
  // An SVID login and a token exchange find their lease by (kind, handle): an index, not a scan.
  { version: 4, up: 'CREATE INDEX credential_leases_handle ON credential_leases (kind, handle);' },
  // Most leases have no grant and no parent: index only those that do (partial indexes answer
  // `grant_id = ?` and `json_extract(params, '$.parent') = ?` alike) — two B-tree inserts fewer
  // per issuance.
  {
    version: 5,
    up: `DROP INDEX credential_leases_grant;
         CREATE INDEX credential_leases_grant ON credential_leases (grant_id) WHERE grant_id IS NOT NULL;
         DROP INDEX credential_leases_parent;
         CREATE INDEX credential_leases_parent ON credential_leases (json_extract(params, '$.parent')) WHERE json_extract(params, '$.parent') IS NOT NULL;`,
  },
];

export interface SqliteLeaseOptions {
  /**
   * Group commit (default on): lease writes made during one turn of the event loop share one
   * transaction, and each caller is answered after that COMMIT. Off: every write is its own
   * transaction on the store's connection, at once (the behaviour before issue #9, kept as the
   * benchmark's baseline).
   */
  batchWrites?: boolean;
  /**
   * Where batches are committed: `inline` (default) — on the store's connection, one transaction
   * per batch; `worker` (file stores) — by a worker thread with its own connection (same
   * `synchronous` setting), which takes the SQLite work off the event loop but makes every main
   * connection write wait in the busy handler while it commits, empties the main connection's
   * page cache at each commit, and adds a thread hop to each write's latency (docs/storage.md).
   */
  writer?: 'inline' | 'worker';
}

/**
 * The lease table. An issuance writes its lease twice (the `issuing` intent, then `active`); each
 * write touches the table and its seven indexes, and committing each alone on the event loop cost
 * about a millisecond of synchronous SQLite work per issuance (some 25 WAL page writes). Writes
 * from concurrent callers are therefore committed in groups (lease-writer.ts): one transaction,
 * and its page writes, per batch. A write made inside a unit of work (`store.transaction`) joins
 * that transaction instead.
 */
export class SqliteLeaseRepository extends LeaseWriteMethods implements LeaseRepository {
  readonly #db: SqliteDb;
  readonly #rows: LeaseRows;
  readonly #writer: LeaseWriter | undefined;

  constructor(db: SqliteDb, opts: SqliteLeaseOptions = {}) {
    super();
    this.#db = db;
    this.#rows = new LeaseRows(db.raw);
    if (opts.batchWrites ?? true) {
      const path = db.raw.location();
      this.#writer =
        path !== null && opts.writer === 'worker'
          ? new WorkerLeaseWriter({ path, synchronous: (db.raw.prepare('PRAGMA synchronous').get() as { synchronous: number }).synchronous })
          : new InlineLeaseWriter(db, this.#rows);
    }
  }

  /**
   * Answers once the write is committed. A transition's status check is the UPDATE's own WHERE:
   * a compare-and-set nothing can interleave with.
   */
  protected async write(w: LeaseWrite): Promise<Lease | undefined> {
    if (this.#writer && !this.#db.inTransaction) return this.#writer.write(w);
    try {
      return await this.#db.atomic(() => this.#rows.apply(w));
    } catch (e) {
      throw e instanceof LeaseRowMissing && w.op !== 'insert' ? new NotFound(`lease ${w.id}`) : e;
    }
  }

  get(id: string): Promise<Lease | undefined> {
    return this.#db.run(() => this.#rows.get(id));
  }

  list(filter: LeaseFilter = {}, limit = 1000): Promise<Lease[]> {
    return this.#db.run(() => this.#rows.list(filter, limit));
  }

  byHandle(kind: TargetKind, handle: string): Promise<Lease | undefined> {
    return this.#db.run(() => this.#rows.byHandle(kind, handle));
  }

  children(parentId: string): Promise<Lease[]> {
    return this.#db.run(() => this.#rows.children(parentId));
  }

  due(now: number, limit = 100): Promise<Lease[]> {
    return this.#db.run(() => this.#rows.due(now, limit));
  }

  /** Stops the lease writer (its worker, if any) after the writes it has. */
  close(): Promise<void> {
    return this.#writer?.close() ?? Promise.resolve();
  }
}

export class SqliteCredentialStore implements CredentialStore {
  readonly leases: SqliteLeaseRepository;

  constructor(db: SqliteDb, opts: SqliteLeaseOptions = {}) {
    migrate(db.raw, 'credentials', MIGRATIONS);
    this.leases = new SqliteLeaseRepository(db, opts);
  }

  close(): Promise<void> {
    return this.leases.close();
  }
}
