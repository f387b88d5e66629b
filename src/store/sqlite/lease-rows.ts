// The lease table's statements on one SQLite connection: row mapping, reads, and the writes as
// plain data (LeaseWrite) so the lease writer worker can apply them on its own connection.
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import type { LeaseFilter, LeasePatch } from '../../credentials/ports.ts';
import type { Lease, LeaseStatus, TargetKind } from '../../credentials/types.ts';

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

/**
 * One write to the lease table. Each is at most one modifying statement, so a write that fails
 * undoes only itself and the transaction it is part of goes on.
 * - insert: a new lease.
 * - update: `patch` on the lease; answers the lease as it is now, or not_found.
 * - transition: `patch` only while the lease's status is one of `from` (compare-and-set); answers
 *   the lease as it is now, or nothing when its status was not one of `from`.
 */
export type LeaseWrite =
  | { op: 'insert'; lease: Lease }
  | { op: 'update'; id: string; patch: LeasePatch }
  | { op: 'transition'; id: string; from: readonly LeaseStatus[]; patch: LeasePatch };

export type LeaseWriteResult =
  | { ok: true; lease: Lease | undefined }
  | { ok: false; notFound: boolean; message: string };

/** An update of a lease id that does not exist. */
export class LeaseRowMissing extends Error {}

export class LeaseRows {
  readonly #raw: DatabaseSync;
  /** Issuance and revocation run these on every call: compile each statement once. */
  readonly #statements = new Map<string, StatementSync>();

  constructor(raw: DatabaseSync) {
    this.#raw = raw;
  }

  #prepare(sql: string): StatementSync {
    let st = this.#statements.get(sql);
    if (!st) this.#statements.set(sql, (st = this.#raw.prepare(sql)));
    return st;
  }

  /** Applies one write; throws LeaseRowMissing (update of an unknown id) or SQLite's error. */
  apply(w: LeaseWrite): Lease | undefined {
    if (w.op === 'insert') {
      const l = w.lease;
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
      return undefined;
    }
    const l = this.#update(w.id, w.patch, w.op === 'transition' ? w.from : undefined);
    if (!l && w.op === 'update') throw new LeaseRowMissing(`lease ${w.id} not found`);
    return l;
  }

  /**
   * Applies writes in one transaction of their own (the caller's connection must not be in one);
   * each gets its own result. Throws — nothing committed — when the transaction itself fails.
   */
  applyBatch(writes: readonly LeaseWrite[]): LeaseWriteResult[] {
    const raw = this.#raw;
    const results: LeaseWriteResult[] = [];
    raw.exec('BEGIN IMMEDIATE');
    try {
      for (const w of writes) {
        try {
          results.push({ ok: true, lease: this.apply(w) });
        } catch (e) {
          // A failed statement is undone on its own and the transaction goes on, unless SQLite
          // rolled the whole transaction back (I/O error, disk full): then the batch fails.
          if (!raw.isOpen || !raw.isTransaction) throw e;
          results.push({ ok: false, notFound: e instanceof LeaseRowMissing, message: (e as Error).message });
        }
      }
      raw.exec('COMMIT');
    } catch (e) {
      if (raw.isOpen && raw.isTransaction) raw.exec('ROLLBACK');
      throw e;
    }
    return results;
  }

  /**
   * One UPDATE … RETURNING: sets `patch` on the lease when its status is one of `from` (any
   * status when `from` is undefined) and returns the row as it is now, or undefined.
   */
  #update(id: string, patch: LeasePatch, from?: readonly LeaseStatus[]): Lease | undefined {
    const sets: string[] = [];
    const vals: (string | number | null)[] = [];
    for (const [k, v] of Object.entries(patch)) {
      const col = COLUMNS[k as keyof LeasePatch];
      if (!col) throw new Error(`lease field ${k} is not updatable`);
      sets.push(`${col} = ?`);
      vals.push(k === 'params' ? JSON.stringify(v) : (v as string | number | null));
    }
    if (sets.length === 0) sets.push('id = id');
    vals.push(id);
    let where = 'id = ?';
    if (from !== undefined) {
      if (from.length === 0) return undefined;
      where += ` AND status IN (${from.map(() => '?').join(', ')})`;
      vals.push(...from);
    }
    const r = this.#prepare(`UPDATE credential_leases SET ${sets.join(', ')} WHERE ${where} RETURNING *`).get(...vals) as Row | undefined;
    return r ? toLease(r) : undefined;
  }

  get(id: string): Lease | undefined {
    const r = this.#prepare('SELECT * FROM credential_leases WHERE id = ?').get(id) as Row | undefined;
    return r ? toLease(r) : undefined;
  }

  list(f: LeaseFilter, limit: number): Lease[] {
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

  children(parentId: string): Lease[] {
    return (
      this.#prepare(`SELECT * FROM credential_leases WHERE json_extract(params, '$.parent') = ? AND status IN ('issuing', 'active', 'revoke_failed')`)
        .all(parentId) as Row[]
    ).map(toLease);
  }

  due(now: number, limit: number): Lease[] {
    return (
      this.#prepare(
        `SELECT * FROM credential_leases
         WHERE (status = 'active' AND expires_at <= ?)
            OR (status = 'revoke_failed' AND (next_attempt_at IS NULL OR next_attempt_at <= ?))
         ORDER BY expires_at LIMIT ?`,
      ).all(now, now, limit) as Row[]
    ).map(toLease);
  }
}
