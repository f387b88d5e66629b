// The lease table: every credential ever handed out, its state, and what revoking it took.
// Rows are never deleted, so a failed revocation cannot be forgotten.
import { randomBytes } from 'node:crypto';
import type { StatementSync } from 'node:sqlite';
import { migrate, transaction } from '../store/sqlite/db.ts';
import type { Db } from '../store/sqlite/db.ts';
import type { Lease, LeaseStatus, TargetKind } from './types.ts';

const MIGRATIONS = [
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

export function newLeaseId(): string {
  return `lse_${randomBytes(12).toString('base64url').replace(/[-_]/g, 'x').toLowerCase()}`;
}

export interface LeaseFilter {
  identityId?: string | string[];
  target?: string;
  status?: LeaseStatus | LeaseStatus[];
  sessionId?: string;
  decisionId?: string;
  grantId?: string;
  trust?: string;
  kind?: TargetKind;
}

/** Leases that still hold a credential somewhere and so can be revoked. */
export const LIVE_STATUSES: readonly LeaseStatus[] = ['active', 'revoking', 'revoke_failed'];

export class LeaseStore {
  readonly #db: Db;
  /** Issuance and revocation run these on every call: compile each statement once. */
  readonly #statements = new Map<string, StatementSync>();

  constructor(db: Db) {
    this.#db = db;
    migrate(db, 'credentials', MIGRATIONS);
  }

  #prepare(sql: string): StatementSync {
    let st = this.#statements.get(sql);
    if (!st) this.#statements.set(sql, (st = this.#db.prepare(sql)));
    return st;
  }

  insert(l: Lease): void {
    this.#prepare(
        `INSERT INTO credential_leases (id, identity_id, target, kind, permission, handle, params, fingerprint, status,
           purpose, decision_id, grant_id, session_id, trust, issued_at, expires_at, max_expires_at, renewals,
           revoke_attempts, next_attempt_at, last_error, revoked_at, revoked_by, revoke_reason)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        l.id, l.identityId, l.target, l.kind, l.permission, l.handle, JSON.stringify(l.params), l.fingerprint, l.status,
        l.purpose, l.decisionId, l.grantId, l.sessionId, l.trust, l.issuedAt, l.expiresAt, l.maxExpiresAt, l.renewals,
        l.revokeAttempts, l.nextAttemptAt, l.lastError, l.revokedAt, l.revokedBy, l.revokeReason,
      );
  }

  get(id: string): Lease | undefined {
    const r = this.#prepare('SELECT * FROM credential_leases WHERE id = ?').get(id) as Row | undefined;
    return r ? toLease(r) : undefined;
  }

  /** Applies a partial update; returns the updated lease. */
  update(id: string, patch: Partial<Omit<Lease, 'id'>>): Lease {
    const cols: Record<string, string> = {
      handle: 'handle', params: 'params', fingerprint: 'fingerprint', status: 'status', expiresAt: 'expires_at',
      renewals: 'renewals', revokeAttempts: 'revoke_attempts', nextAttemptAt: 'next_attempt_at', lastError: 'last_error',
      revokedAt: 'revoked_at', revokedBy: 'revoked_by', revokeReason: 'revoke_reason', decisionId: 'decision_id',
    };
    const sets: string[] = [];
    const vals: (string | number | null)[] = [];
    for (const [k, v] of Object.entries(patch)) {
      const col = cols[k];
      if (!col) throw new Error(`lease field ${k} is not updatable`);
      sets.push(`${col} = ?`);
      vals.push(k === 'params' ? JSON.stringify(v) : (v as string | number | null));
    }
    if (sets.length > 0) this.#prepare(`UPDATE credential_leases SET ${sets.join(', ')} WHERE id = ?`).run(...vals, id);
    const l = this.get(id);
    if (!l) throw new Error(`lease ${id} vanished`);
    return l;
  }

  /**
   * Moves a lease from one of `from` to `to` atomically; returns undefined when the lease was not in
   * one of those states (someone else got there first).
   */
  transition(id: string, from: readonly LeaseStatus[], to: LeaseStatus, patch: Partial<Omit<Lease, 'id' | 'status'>> = {}): Lease | undefined {
    return transaction(this.#db, () => {
      const l = this.get(id);
      if (!l || !from.includes(l.status)) return undefined;
      return this.update(id, { ...patch, status: to });
    });
  }

  list(f: LeaseFilter = {}, limit = 1000): Lease[] {
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
    return (this.#prepare(sql).all(...vals, limit) as Row[]).map(toLease);
  }

  byHandle(kind: TargetKind, handle: string): Lease | undefined {
    const r = this.#prepare('SELECT * FROM credential_leases WHERE kind = ? AND handle = ?').get(kind, handle) as Row | undefined;
    return r ? toLease(r) : undefined;
  }

  /** Leases derived from this one (token exchange), still holding a credential. */
  children(parentId: string): Lease[] {
    return (
      this.#prepare(`SELECT * FROM credential_leases WHERE json_extract(params, '$.parent') = ? AND status IN ('issuing', 'active', 'revoke_failed')`)
        .all(parentId) as Row[]
    ).map(toLease);
  }

  /** Active leases past their end, and failed revocations due for another attempt. */
  due(now: number, limit = 100): Lease[] {
    return (
      this.#prepare(
          `SELECT * FROM credential_leases
           WHERE (status = 'active' AND expires_at <= ?)
              OR (status = 'revoke_failed' AND (next_attempt_at IS NULL OR next_attempt_at <= ?))
           ORDER BY expires_at LIMIT ?`,
        )
        .all(now, now, limit) as Row[]
    ).map(toLease);
  }
}
