// The PostgreSQL store: every domain's repositories over one database that any number of
// replicas share (docs/storage.md). Opening it connects, runs pending migrations once under an
// advisory lock (or, with `migrate: false`, only checks none is pending) and builds the repositories.
import type { Store } from '../types.ts';
import { PgDb, StoreUnavailable } from './db.ts';
import type { PgDbOptions, PgDomainMigrations } from './db.ts';
import * as identity from './identity.ts';
import * as inventory from './inventory.ts';
import * as keys from './keys.ts';
import * as bootstrap from './bootstrap.ts';
import * as policy from './policy.ts';
import * as credentials from './credentials.ts';
import * as access from './access.ts';
import * as audit from './audit.ts';
import { PgChangeFeed } from './changes.ts';
import * as cluster from './leadership.ts';
import * as agents from './agents.ts';

/** Every domain's migrations, in the order they are applied. */
export const PG_MIGRATIONS: readonly PgDomainMigrations[] = [
  identity.MIGRATIONS, inventory.MIGRATIONS, keys.MIGRATIONS, bootstrap.MIGRATIONS,
  policy.MIGRATIONS, credentials.MIGRATIONS, access.MIGRATIONS, audit.MIGRATIONS, cluster.MIGRATIONS,
  agents.MIGRATIONS,
];

export interface PostgresStoreOptions extends PgDbOptions {
  /** Run pending migrations (default) or refuse to open while any is pending (`portcullis migrate` runs them). */
  migrate?: boolean;
  /** A change notice could not be received or applied, or leadership was lost (log it). */
  onChangeError?: (err: unknown) => void;
  /** How often leadership of the cluster jobs is tried and checked (default 1 s). */
  leaderPollMs?: number;
}

export class PostgresStore implements Store {
  readonly kind = 'postgres' as const;
  readonly db: PgDb;
  readonly identity;
  readonly inventory;
  readonly keys;
  readonly bootstrap;
  readonly policy;
  readonly credentials;
  readonly access;
  readonly audit;
  readonly agents;
  readonly changes: PgChangeFeed;
  readonly leader: cluster.PgLeadership;

  private constructor(db: PgDb, changes: PgChangeFeed, opts: PostgresStoreOptions) {
    this.db = db;
    this.changes = changes;
    this.leader = new cluster.PgLeadership(db, { ...(opts.onChangeError && { onError: opts.onChangeError }), ...(opts.leaderPollMs !== undefined && { pollMs: opts.leaderPollMs }) });
    this.identity = identity.pgIdentityStore(db);
    this.inventory = inventory.pgInventoryStore(db);
    this.keys = keys.pgKeyStore(db);
    this.bootstrap = bootstrap.pgBootstrapStore(db);
    this.policy = policy.pgPolicyStore(db);
    this.credentials = credentials.pgCredentialStore(db);
    this.access = access.pgAccessStore(db);
    this.audit = audit.pgAuditStore(db);
    this.agents = agents.pgAgentStore(db);
  }

  static async open(url: string, opts: PostgresStoreOptions = {}): Promise<PostgresStore> {
    const db = await PgDb.open(url, opts);
    try {
      if (opts.migrate === false) {
        if (await db.pending(PG_MIGRATIONS)) throw new StoreUnavailable('its schema has pending migrations: run `portcullis migrate --config FILE` first');
      } else {
        await db.migrate(PG_MIGRATIONS);
      }
      const changes = new PgChangeFeed(db, opts.onChangeError ? { onError: opts.onChangeError } : {});
      try {
        await changes.ready;
        return new PostgresStore(db, changes, opts);
      } catch (err) {
        await changes.close();
        throw err;
      }
    } catch (err) {
      await db.close();
      throw err;
    }
  }

  /** Applies pending migrations and returns what was applied (`portcullis migrate`). */
  static async migrate(url: string): Promise<{ domain: string; version: number }[]> {
    const db = await PgDb.open(url, { pool: 1 });
    try {
      return (await db.migrate(PG_MIGRATIONS)).applied;
    } finally {
      await db.close();
    }
  }

  transaction<T>(fn: () => Promise<T>): Promise<T> {
    return this.db.transaction(fn);
  }

  lock(key: string): Promise<void> {
    return this.db.lock(key);
  }

  get isOpen(): boolean {
    return this.db.isOpen;
  }

  async close(): Promise<void> {
    await this.leader.close();
    await this.changes.close();
    await this.credentials.close(); // lease writes queued for a group commit
    await this.audit.close();
    await this.db.close();
  }
}
