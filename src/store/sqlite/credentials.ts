// SQLite implementation of the credentials domain's storage ports (src/credentials/ports.ts): the
// lease table, its migrations, and the group commit that keeps issuance off the write path.
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { NotFound } from '../../common/errors.ts';
import type { CredentialStore, LeaseFilter, LeasePatch, LeaseRepository } from '../../credentials/ports.ts';
import type { Lease, LeaseStatus, TargetKind } from '../../credentials/types.ts';
import { migrate } from './db.ts';
import type { Migration, SqliteDb } from './db.ts';

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
];

type Row = Record<string, unknown>;

function toLease(r: Row): Lease {
  return {
    id: r.id as string,
    identityId: r.identity_id as string,
    target: r.target as string,
    kind: r.kind as TargetKind,
    permission: r.permission as string,
    handle: (r.handle as string | null) ?? null,
    params: JSON.parse(r.params as string) as Record<string, unknown>,
    fingerprint: (r.fingerprint as string | null) ?? null,
    status: r.status as LeaseStatus,
    purpose: r.purpose as string,
    decisionId: r.decision_id as string,
    grantId: (r.grant_id as string | null) ?? null,
    sessionId: (r.session_id as string | null) ?? null,
    trust: (r.trust as string | null) ?? null,
    issuedAt: Number(r.issued_at),
    expiresAt: Number(r.expires_at),
    maxExpiresAt: Number(r.max_expires_at),
    renewals: Number(r.renewals),
    revokeAttempts: Number(r.revoke_attempts),
    nextAttemptAt: r.next_attempt_at === null ? null : Number(r.next_attempt_at),
    lastError: (r.last_error as string | null) ?? null,
    revokedAt: r.revoked_at === null ? null : Number(r.revoked_at),
    revokedBy: (r.revoked_by as string | null) ?? null,
    revokeReason: (r.revoke_reason as string | null) ?? null,
  };
}

/** Lease fields that may change after the row is written, and their columns. */
const COLUMNS: Record<keyof LeasePatch, string> = {
  handle: 'handle', params: 'params', fingerprint: 'fingerprint', status: 'status', expiresAt: 'expires_at',
  renewals: 'renewals', revokeAttempts: 'revoke_attempts', nextAttemptAt: 'next_attempt_at', lastError: 'last_error',
  revokedAt: 'revoked_at', revokedBy: 'revoked_by', revokeReason: 'revoke_reason', decisionId: 'decision_id',
};

export interface SqliteLeaseOptions {
  /**
   * Group commit (default on): lease writes made during one turn of the event loop share one
   * transaction, committed at the start of the next turn; each caller's promise resolves after
   * that COMMIT. Off: every write is its own transaction at once (the behaviour before issue #9,
   * kept as the benchmark's baseline).
   */
  batchWrites?: boolean;
}

interface QueuedWrite {
  fn: (raw: DatabaseSync) => unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/**
 * The lease table. An issuance writes its lease twice (the `issuing` intent, then `active`), each
 * a handful of B-tree pages across the table and its seven indexes; committing each write alone
 * cost about 25 WAL page writes per issuance on the event loop. Writes from concurrent callers are
 * therefore queued and committed together (like the audit log's group commit): one transaction
 * per turn of the event loop, every caller answered only after its COMMIT. A write made inside a
 * unit of work (`store.transaction`) joins that transaction instead.
 */
export class SqliteLeaseRepository implements LeaseRepository {
  readonly #db: SqliteDb;
  readonly #batch: boolean;
  /** Issuance and revocation run these on every call: compile each statement once. */
  readonly #statements = new Map<string, StatementSync>();
  #queue: QueuedWrite[] = [];
  #scheduled = false;

  constructor(db: SqliteDb, opts: SqliteLeaseOptions = {}) {
    this.#db = db;
    this.#batch = opts.batchWrites ?? true;
  }

  #prepare(sql: string): StatementSync {
    let st = this.#statements.get(sql);
    if (!st) this.#statements.set(sql, (st = this.#db.raw.prepare(sql)));
    return st;
  }

  /** Runs one write (at most one modifying statement, so a failure undoes only itself). */
  #write<T>(fn: (raw: DatabaseSync) => T): Promise<T> {
    if (!this.#batch || this.#db.inTransaction) return this.#db.atomic(fn);
    const { promise, resolve, reject } = Promise.withResolvers<T>();
    this.#queue.push({ fn, resolve: resolve as (v: unknown) => void, reject });
    if (!this.#scheduled) {
      this.#scheduled = true;
      // setImmediate, not a microtask: every write made during this turn joins the batch.
      setImmediate(() => void this.#flush());
    }
    return promise;
  }

  async #flush(): Promise<void> {
    let batch: QueuedWrite[] = [];
    const results: { ok: boolean; value: unknown }[] = [];
    try {
      // run() first waits for another flow's open transaction to end; the batch is taken then, so
      // writes queued meanwhile join it.
      await this.#db.run((raw) => {
        this.#scheduled = false;
        batch = this.#queue;
        this.#queue = [];
        if (batch.length === 0) return;
        raw.exec('BEGIN IMMEDIATE');
        try {
          for (const w of batch) {
            try {
              results.push({ ok: true, value: w.fn(raw) });
            } catch (e) {
              // A failed statement is undone on its own and the transaction goes on, unless SQLite
              // rolled the whole transaction back (I/O error, disk full): then the batch fails.
              if (!raw.isOpen || !raw.isTransaction) throw e;
              results.push({ ok: false, value: e });
            }
          }
          raw.exec('COMMIT');
        } catch (e) {
          if (raw.isOpen && raw.isTransaction) raw.exec('ROLLBACK');
          throw e;
        }
      });
    } catch (e) {
      if (batch.length === 0) {
        // The connection failed before the batch was taken (closed store): fail what is queued.
        this.#scheduled = false;
        batch = this.#queue;
        this.#queue = [];
      }
      for (const w of batch) w.reject(e);
      return;
    }
    for (let i = 0; i < batch.length; i++) {
      const r = results[i]!;
      if (r.ok) batch[i]!.resolve(r.value);
      else batch[i]!.reject(r.value);
    }
  }

  insert(l: Lease): Promise<void> {
    return this.#write(() => {
      this.#prepare(
        `INSERT INTO credential_leases (id, identity_id, target, kind, permission, handle, params, fingerprint, status,
           purpose, decision_id, grant_id, session_id, trust, issued_at, expires_at, max_expires_at, renewals,
           revoke_attempts, next_attempt_at, last_error, revoked_at, revoked_by, revoke_reason)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(
        l.id, l.identityId, l.target, l.kind, l.permission, l.handle, JSON.stringify(l.params), l.fingerprint, l.status,
        l.purpose, l.decisionId, l.grantId, l.sessionId, l.trust, l.issuedAt, l.expiresAt, l.maxExpiresAt, l.renewals,
        l.revokeAttempts, l.nextAttemptAt, l.lastError, l.revokedAt, l.revokedBy, l.revokeReason,
      );
    });
  }

  #get(id: string): Lease | undefined {
    const r = this.#prepare('SELECT * FROM credential_leases WHERE id = ?').get(id) as Row | undefined;
    return r ? toLease(r) : undefined;
  }

  get(id: string): Promise<Lease | undefined> {
    return this.#db.run(() => this.#get(id));
  }

  #update(id: string, patch: LeasePatch): Lease {
    const sets: string[] = [];
    const vals: (string | number | null)[] = [];
    for (const [k, v] of Object.entries(patch)) {
      const col = COLUMNS[k as keyof LeasePatch];
      if (!col) throw new Error(`lease field ${k} is not updatable`);
      sets.push(`${col} = ?`);
      vals.push(k === 'params' ? JSON.stringify(v) : (v as string | number | null));
    }
    if (sets.length > 0) this.#prepare(`UPDATE credential_leases SET ${sets.join(', ')} WHERE id = ?`).run(...vals, id);
    const l = this.#get(id);
    if (!l) throw new NotFound(`lease ${id}`);
    return l;
  }

  update(id: string, patch: LeasePatch): Promise<Lease> {
    return this.#write(() => this.#update(id, patch));
  }

  transition(id: string, from: readonly LeaseStatus[], to: LeaseStatus, patch: Omit<LeasePatch, 'status'> = {}): Promise<Lease | undefined> {
    // Read, check and write in one synchronous step of one transaction: nothing interleaves.
    return this.#write(() => {
      const l = this.#get(id);
      if (!l || !from.includes(l.status)) return undefined;
      return this.#update(id, { ...patch, status: to });
    });
  }

  list(f: LeaseFilter = {}, limit = 1000): Promise<Lease[]> {
    const where: string[] = [];
    const vals: (string | number)[] = [];
    const inList = (col: string, v: string | readonly string[]) => {
      const arr = Array.isArray(v) ? v : [v as string];
      if (arr.length === 0) {
        where.push('0');
        return;
      }
      where.push(`${col} IN (${arr.map(() => '?').join(', ')})`);
      vals.push(...arr);
    };
    if (f.identityId !== undefined) inList('identity_id', f.identityId);
    if (f.status !== undefined) inList('status', f.status);
    if (f.target !== undefined) inList('target', f.target);
    if (f.sessionId !== undefined) inList('session_id', f.sessionId);
    if (f.decisionId !== undefined) inList('decision_id', f.decisionId);
    if (f.grantId !== undefined) inList('grant_id', f.grantId);
    if (f.trust !== undefined) inList('trust', f.trust);
    if (f.kind !== undefined) inList('kind', f.kind);
    const sql = `SELECT * FROM credential_leases ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
                 ORDER BY issued_at DESC, id LIMIT ?`;
    return this.#db.run(() => (this.#prepare(sql).all(...vals, limit) as Row[]).map(toLease));
  }

  byHandle(kind: TargetKind, handle: string): Promise<Lease | undefined> {
    return this.#db.run(() => {
      const r = this.#prepare('SELECT * FROM credential_leases WHERE kind = ? AND handle = ?').get(kind, handle) as Row | undefined;
      return r ? toLease(r) : undefined;
    });
  }

  children(parentId: string): Promise<Lease[]> {
    return this.#db.run(() =>
      (
        this.#prepare(`SELECT * FROM credential_leases WHERE json_extract(params, '$.parent') = ? AND status IN ('issuing', 'active', 'revoke_failed')`)
          .all(parentId) as Row[]
      ).map(toLease),
    );
  }

  due(now: number, limit = 100): Promise<Lease[]> {
    return this.#db.run(() =>
      (
        this.#prepare(
          `SELECT * FROM credential_leases
           WHERE (status = 'active' AND expires_at <= ?)
              OR (status = 'revoke_failed' AND (next_attempt_at IS NULL OR next_attempt_at <= ?))
           ORDER BY expires_at LIMIT ?`,
        ).all(now, now, limit) as Row[]
      ).map(toLease),
    );
  }
}

export class SqliteCredentialStore implements CredentialStore {
  readonly leases: SqliteLeaseRepository;

  constructor(db: SqliteDb, opts: SqliteLeaseOptions = {}) {
    migrate(db.raw, 'credentials', MIGRATIONS);
    this.leases = new SqliteLeaseRepository(db, opts);
  }
}
