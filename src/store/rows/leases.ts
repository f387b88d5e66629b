// The lease table (credential_leases) as both stores read and write it: row → Lease, the columns, the writes, and the list and update statements built for either engine.
import type { LeaseFilter, LeasePatch } from '../../credentials/ports.ts';
import type { Lease, LeaseStatus, TargetKind } from '../../credentials/types.ts';
import { bind, type SqlDialect } from './sql.ts';
import { numOrNull, strOrNull, type Row } from './values.ts';

/**
 * A lease from its row. `params` reads the params column: JSON text on SQLite, already parsed
 * JSONB on PostgreSQL.
 */
export function leaseFromRow(r: Row, params: (v: unknown) => Record<string, unknown>): Lease {
  return {
    id: r.id as string,
    identityId: r.identity_id as string,
    target: r.target as string,
    kind: r.kind as TargetKind,
    permission: r.permission as string,
    handle: strOrNull(r.handle),
    params: params(r.params),
    fingerprint: strOrNull(r.fingerprint),
    status: r.status as LeaseStatus,
    purpose: r.purpose as string,
    decisionId: r.decision_id as string,
    grantId: strOrNull(r.grant_id),
    sessionId: strOrNull(r.session_id),
    trust: strOrNull(r.trust),
    issuedAt: Number(r.issued_at),
    expiresAt: Number(r.expires_at),
    maxExpiresAt: Number(r.max_expires_at),
    renewals: Number(r.renewals),
    revokeAttempts: Number(r.revoke_attempts),
    nextAttemptAt: numOrNull(r.next_attempt_at),
    lastError: strOrNull(r.last_error),
    revokedAt: numOrNull(r.revoked_at),
    revokedBy: strOrNull(r.revoked_by),
    revokeReason: strOrNull(r.revoke_reason),
  };
}

/** Every column, in the order of leaseValues. */
export const LEASE_COLUMNS = [
  'id', 'identity_id', 'target', 'kind', 'permission', 'handle', 'params', 'fingerprint', 'status',
  'purpose', 'decision_id', 'grant_id', 'session_id', 'trust', 'issued_at', 'expires_at', 'max_expires_at', 'renewals',
  'revoke_attempts', 'next_attempt_at', 'last_error', 'revoked_at', 'revoked_by', 'revoke_reason',
] as const;

/** A lease as an INSERT's values, in LEASE_COLUMNS order (params as JSON text). */
export function leaseValues(l: Lease): (string | number | null)[] {
  return [
    l.id, l.identityId, l.target, l.kind, l.permission, l.handle, JSON.stringify(l.params), l.fingerprint, l.status,
    l.purpose, l.decisionId, l.grantId, l.sessionId, l.trust, l.issuedAt, l.expiresAt, l.maxExpiresAt, l.renewals,
    l.revokeAttempts, l.nextAttemptAt, l.lastError, l.revokedAt, l.revokedBy, l.revokeReason,
  ];
}

/** Lease fields that may change after the row is written, and their columns. */
export const PATCH_COLUMNS: Record<keyof LeasePatch, string> = {
  handle: 'handle', params: 'params', fingerprint: 'fingerprint', status: 'status', expiresAt: 'expires_at',
  renewals: 'renewals', revokeAttempts: 'revoke_attempts', nextAttemptAt: 'next_attempt_at', lastError: 'last_error',
  revokedAt: 'revoked_at', revokedBy: 'revoked_by', revokeReason: 'revoke_reason', decisionId: 'decision_id',
};

/** The column of an updatable field; throws for any other field. */
export function patchColumn(field: string): string {
  const col = PATCH_COLUMNS[field as keyof LeasePatch];
  if (!col) throw new Error(`lease field ${field} is not updatable`);
  return col;
}

/** A patched field's value as bound (params as JSON text). */
export function patchValue(field: string, v: unknown): unknown {
  return field === 'params' ? JSON.stringify(v) : v;
}

/**
 * One write to the lease table. Each is at most one modifying statement, so a write that fails
 * undoes only itself.
 * - insert: a new lease.
 * - update: `patch` on the lease; answers the lease as it is now, or not_found.
 * - transition: `patch` only while the lease's status is one of `from` (compare-and-set); answers
 *   the lease as it is now, or nothing when its status was not one of `from`.
 */
export type LeaseWrite =
  | { op: 'insert'; lease: Lease }
  | { op: 'update'; id: string; patch: LeasePatch }
  | { op: 'transition'; id: string; from: readonly LeaseStatus[]; patch: LeasePatch };

/**
 * The lease repository's writes (src/credentials/ports.ts) as LeaseWrites, for a store that applies
 * each one (`write`: answers the lease as it is now after an update or transition).
 */
export abstract class LeaseWriteMethods {
  protected abstract write(w: LeaseWrite): Promise<Lease | undefined>;

  async insert(lease: Lease): Promise<void> {
    await this.write({ op: 'insert', lease });
  }

  async update(id: string, patch: LeasePatch): Promise<Lease> {
    return (await this.write({ op: 'update', id, patch }))!;
  }

  /** The status check is the UPDATE's own WHERE (leaseUpdate): a compare-and-set. */
  transition(id: string, from: readonly LeaseStatus[], to: LeaseStatus, patch: Omit<LeasePatch, 'status'> = {}): Promise<Lease | undefined> {
    return this.write({ op: 'transition', id, from, patch: { ...patch, status: to } });
  }
}

/**
 * One UPDATE … RETURNING *: sets `patch` on the lease when its status is one of `from` (any status
 * when `from` is undefined). The caller answers "not moved" itself when `from` is empty.
 */
export function leaseUpdate(d: SqlDialect, id: string, patch: LeasePatch, from?: readonly LeaseStatus[]): { sql: string; values: unknown[] } {
  const values: unknown[] = [];
  const sets = Object.entries(patch).map(([k, v]) => {
    const col = patchColumn(k);
    const value = patchValue(k, v);
    return `${col} = ${k === 'params' ? d.jsonPlaceholder(values.push(value)) : bind(d, values, value)}`;
  });
  if (sets.length === 0) sets.push('id = id');
  let cond = `id = ${bind(d, values, id)}`;
  if (from !== undefined) cond += ` AND ${d.oneOf('status', from, values)}`;
  return { sql: `UPDATE credential_leases SET ${sets.join(', ')} WHERE ${cond} RETURNING *`, values };
}

/** The filter's fields and their columns. */
const FILTER_COLUMNS: readonly [keyof LeaseFilter, string][] = [
  ['identityId', 'identity_id'], ['status', 'status'], ['target', 'target'], ['sessionId', 'session_id'],
  ['decisionId', 'decision_id'], ['grantId', 'grant_id'], ['trust', 'trust'], ['kind', 'kind'],
];

/** `list()`: the leases matching the filter (a field given as a list matches any of it), newest first. */
export function leaseList(d: SqlDialect, f: LeaseFilter, limit: number): { sql: string; values: unknown[] } {
  const values: unknown[] = [];
  const conds: string[] = [];
  for (const [field, col] of FILTER_COLUMNS) {
    const v = f[field];
    if (v !== undefined) conds.push(Array.isArray(v) ? d.oneOf(col, v, values) : `${col} = ${bind(d, values, v)}`);
  }
  const clause = conds.length ? `WHERE ${conds.join(' AND ')}` : '';
  return { sql: `SELECT * FROM credential_leases ${clause} ORDER BY issued_at DESC, id LIMIT ${bind(d, values, limit)}`, values };
}
