// The access tables (requests, reviews, comments, grants, break-glass reviews, webhook deliveries) as both stores read and write them: rows → domain values, the INSERT rows and the list filters.
import type { Delivery, DeliveryFilter, DeliveryStatus, GrantFilter, ListFilter, NewGrant, NewRequest } from '../../access/ports.ts';
import type { AccessRequest, AccessTarget, BreakGlassReview, Comment, Grant, Review } from '../../access/types.ts';
import type { Condition } from './sql.ts';
import { iso, isoOrNull, numOrNull, strOrNull, type Row } from './values.ts';

/** How a store keeps a boolean column: INTEGER 0/1 on SQLite, BOOLEAN on PostgreSQL. */
export interface BoolColumn {
  read(v: unknown): boolean;
  write(b: boolean): unknown;
}

// ── Requests ────────────────────────────────────────────────────────────────────────────────

export function reviewFromRow(r: Row): Review {
  return {
    reviewer: r.reviewer as string,
    verdict: r.verdict as Review['verdict'],
    decision_id: r.decision_id as string,
    at: iso(r.at),
    comment: strOrNull(r.comment),
  };
}

export function commentFromRow(c: Row): Comment {
  return { author: c.author as string, at: iso(c.at), text: c.text as string };
}

/** A request from its row, with its reviews and comments (read by the store as it reads them). */
export function requestFromRow(r: Row, reviews: Review[], comments: Comment[], bool: BoolColumn): AccessRequest {
  return {
    id: r.id as string,
    requester: r.requester as string,
    target: JSON.parse(r.target as string) as AccessTarget,
    what: r.what as string,
    reason: r.reason as string,
    ticket: strOrNull(r.ticket),
    duration_ms: Number(r.duration_ms),
    start_at: isoOrNull(r.start_at),
    session_bound: bool.read(r.session_bound),
    status: r.status as AccessRequest['status'],
    required_approvals: Number(r.required_approvals),
    rules: JSON.parse(r.rules as string) as string[],
    reviewers: JSON.parse(r.reviewers as string) as string[],
    created_at: iso(r.created_at),
    expires_at: iso(r.expires_at),
    decided_at: isoOrNull(r.decided_at),
    grant_id: strOrNull(r.grant_id),
    reviews,
    comments,
  };
}

/** A new request's row (column → value; JSON values as text), pending. */
export function requestRow(r: NewRequest, bool: BoolColumn): Row {
  return {
    id: r.id, requester: r.requester, target: JSON.stringify(r.target), what: r.what, reason: r.reason, ticket: r.ticket,
    duration_ms: r.duration_ms, start_at: r.start_at, session_bound: bool.write(r.session_bound), status: 'pending',
    required_approvals: r.required_approvals, rules: JSON.stringify(r.rules), reviewers: JSON.stringify(r.reviewers),
    created_at: r.created_at, expires_at: r.expires_at, accountable: JSON.stringify(r.accountable),
  };
}

/** list()'s conditions; `p` prefixes the columns (a table alias), `collate` follows the id in a comparison (PostgreSQL: ` COLLATE "C"`, as its ORDER BY). */
export function requestConditions(f: ListFilter, p = '', collate = ''): Condition[] {
  const conds: Condition[] = [];
  if (f.status !== undefined) conds.push([`${p}status = ?`, f.status]);
  if (f.requester !== undefined) conds.push([`${p}requester = ?`, f.requester]);
  if (f.reviewableBy !== undefined) conds.push([`${p}status = 'pending' AND ${p}requester <> ?`, f.reviewableBy]);
  if (f.before !== undefined) conds.push([`(${p}created_at < ? OR (${p}created_at = ? AND ${p}id${collate} < ?))`, f.before.at, f.before.at, f.before.id]);
  return conds;
}

// ── Grants ──────────────────────────────────────────────────────────────────────────────────

export function grantFromRow(r: Row, bool: BoolColumn): Grant {
  return {
    id: r.id as string,
    kind: r.kind as Grant['kind'],
    identity_id: r.identity_id as string,
    request_id: strOrNull(r.request_id),
    target: JSON.parse(r.target as string) as AccessTarget,
    what: r.what as string,
    grants: JSON.parse(r.grants as string) as string[],
    roles: JSON.parse(r.roles as string) as Grant['roles'],
    start_at: iso(r.start_at),
    end_at: iso(r.end_at),
    status: r.status as Grant['status'],
    ended_at: isoOrNull(r.ended_at),
    ended_by: strOrNull(r.ended_by),
    end_reason: strOrNull(r.end_reason),
    session_bound: bool.read(r.session_bound),
    reason: r.reason as string,
    revokers: JSON.parse(r.revokers as string) as string[],
  };
}

/** A new grant's row (column → value; JSON values as text), active. */
export function grantRow(g: NewGrant, bool: BoolColumn): Row {
  return {
    id: g.id, kind: g.kind, identity_id: g.identity_id, request_id: g.request_id, target: JSON.stringify(g.target), what: g.what,
    grants: JSON.stringify(g.grants), roles: JSON.stringify(g.roles), start_at: g.start_at, end_at: g.end_at, status: 'active',
    session_bound: bool.write(g.session_bound), reason: g.reason, revokers: JSON.stringify(g.revokers),
  };
}

/** list()'s conditions (`collate` as for requests). (identity_id, status, end_at) is indexed: the per-decision read is an index range. */
export function grantConditions(f: GrantFilter, collate = ''): Condition[] {
  const conds: Condition[] = [];
  if (f.identityId !== undefined) conds.push(['identity_id = ?', f.identityId]);
  if (f.kind !== undefined) conds.push(['kind = ?', f.kind]);
  if (f.activeAt !== undefined) conds.push(["status = 'active' AND end_at > ?", f.activeAt], ['start_at <= ?', f.activeAt]);
  if (f.before !== undefined) conds.push([`(start_at < ? OR (start_at = ? AND id${collate} < ?))`, f.before.at, f.before.at, f.before.id]);
  return conds;
}

// ── Break-glass reviews ─────────────────────────────────────────────────────────────────────

export function bgReviewFromRow(r: Row): BreakGlassReview {
  return {
    id: r.id as string,
    grant_id: r.grant_id as string,
    user: r.user_id as string,
    status: r.status as BreakGlassReview['status'],
    opened_at: iso(r.opened_at),
    reviewer: strOrNull(r.reviewer),
    reviewed_at: isoOrNull(r.reviewed_at),
    summary: strOrNull(r.summary),
  };
}

// ── Webhook deliveries ──────────────────────────────────────────────────────────────────────

export function deliveryFromRow(r: Row): Delivery {
  return {
    id: r.id as string,
    endpoint: r.endpoint as string,
    event_type: r.event_type as string,
    status: r.status as DeliveryStatus,
    attempts: Number(r.attempts),
    next_attempt_at: iso(r.next_attempt_at),
    last_status: numOrNull(r.last_status),
    last_error: strOrNull(r.last_error),
    created_at: iso(r.created_at),
    delivered_at: isoOrNull(r.delivered_at),
  };
}

/** list()'s conditions. */
export function deliveryConditions(f: DeliveryFilter): Condition[] {
  const conds: Condition[] = [];
  if (f.status) conds.push(['status = ?', f.status]);
  if (f.endpoint) conds.push(['endpoint = ?', f.endpoint]);
  if (f.eventType) conds.push(['event_type = ?', f.eventType]);
  return conds;
}
