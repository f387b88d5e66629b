// The embedded store: two SQLite files in the data directory — portcullis.db for state and
// audit.db for the audit streams (their writer holds its file's lock through each group commit;
// see docs/storage.md) — and one repository object per domain over them.
import { join } from 'node:path';
import type { Store } from '../types.ts';
import { SqliteDb } from './db.ts';
import { SqliteIdentityStore } from './identity.ts';
import { SqliteInventoryStore } from './inventory.ts';
import { SqliteKeyStore } from './keys.ts';
import { SqliteBootstrapStore } from './bootstrap.ts';
import { SqlitePolicyStore } from './policy.ts';
import { SqliteCredentialStore } from './credentials.ts';
import type { SqliteLeaseOptions } from './credentials.ts';
import { SqliteAccessStore } from './access.ts';
import { SqliteAuditStore } from './audit/index.ts';
import { SqliteAgentStore } from './agents.ts';
import { LocalChangeFeed } from '../local-changes.ts';
import { SoleLeader } from '../local-leadership.ts';

/** The audit streams' file in the data directory. */
export const AUDIT_DB_FILE = 'audit.db';
const STATE_DB_FILE = 'portcullis.db';

export interface SqliteStoreOptions {
  /** Lease writes: group commit (default) or one transaction each (the benchmark's baseline). */
  leases?: SqliteLeaseOptions;
}

export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  /** State: identities, sessions, keys, policies, leases, access. */
  readonly main: SqliteDb;
  /** The audit streams. */
  readonly auditDb: SqliteDb;
  readonly identity: SqliteIdentityStore;
  readonly inventory: SqliteInventoryStore;
  readonly keys: SqliteKeyStore;
  readonly bootstrap: SqliteBootstrapStore;
  readonly policy: SqlitePolicyStore;
  readonly credentials: SqliteCredentialStore;
  readonly access: SqliteAccessStore;
  readonly audit: SqliteAuditStore;
  readonly agents: SqliteAgentStore;
  readonly changes = new LocalChangeFeed();
  readonly leader = new SoleLeader();

  constructor(main: SqliteDb, auditDb: SqliteDb, opts: SqliteStoreOptions = {}) {
    this.main = main;
    this.auditDb = auditDb;
    this.identity = new SqliteIdentityStore(this.main);
    this.inventory = new SqliteInventoryStore(this.main);
    this.keys = new SqliteKeyStore(this.main);
    this.bootstrap = new SqliteBootstrapStore(this.main);
    this.policy = new SqlitePolicyStore(this.main);
    this.credentials = new SqliteCredentialStore(this.main, opts.leases);
    this.access = new SqliteAccessStore(this.main);
    this.audit = new SqliteAuditStore(this.auditDb);
    this.agents = new SqliteAgentStore(this.main);
  }

  /** Opens (creating if need be) the data directory's two files. */
  static open(dataDir: string, opts: SqliteStoreOptions = {}): SqliteStore {
    const main = SqliteDb.open(join(dataDir, STATE_DB_FILE));
    let audit: SqliteDb | undefined;
    try {
      audit = SqliteDb.open(join(dataDir, AUDIT_DB_FILE));
      // The repositories run their domain's migrations as they are made.
      return new SqliteStore(main, audit, opts);
    } catch (err) {
      main.close();
      audit?.close();
      throw err;
    }
  }

  transaction<T>(fn: () => Promise<T>): Promise<T> {
    return this.main.transaction(fn);
  }

  lock(key: string): Promise<void> {
    return this.main.lock(key);
  }

  get isOpen(): boolean {
    return this.main.isOpen && this.auditDb.isOpen;
  }

  async close(): Promise<void> {
    try {
      await this.credentials.close();
    } finally {
      this.main.close();
      this.auditDb.close();
    }
  }
}
