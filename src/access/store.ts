// SQLite tables of the access domain (migrate(db, 'access', …)). Times are ms since the epoch.
import type { Db } from '../store/sqlite/db.ts';
import { migrate } from '../store/sqlite/db.ts';
import type { AccessRequest, AccessTarget, BreakGlassReview, Comment, Grant, Review } from './types.ts';

export const ACCESS_MIGRATIONS = [
  {
    version: 1,
    up: `
CREATE TABLE access_requests (
  id TEXT PRIMARY KEY, requester TEXT NOT NULL, target TEXT NOT NULL, what TEXT NOT NULL,
  reason TEXT NOT NULL, ticket TEXT, duration_ms INTEGER NOT NULL, start_at INTEGER,
  session_bound INTEGER NOT NULL, status TEXT NOT NULL, required_approvals INTEGER NOT NULL,
  rules TEXT NOT NULL, reviewers TEXT NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
  decided_at INTEGER, grant_id TEXT, expiring_notified INTEGER NOT NULL DEFAULT 0);
CREATE INDEX access_requests_status ON access_requests (status, expires_at);
CREATE INDEX access_requests_requester ON access_requests (requester);
CREATE TABLE access_reviews_cast (
  request_id TEXT NOT NULL REFERENCES access_requests(id), reviewer TEXT NOT NULL,
  verdict TEXT NOT NULL, decision_id TEXT NOT NULL, at INTEGER NOT NULL, comment TEXT,
  PRIMARY KEY (request_id, reviewer));
CREATE TABLE access_comments (
  request_id TEXT NOT NULL REFERENCES access_requests(id), seq INTEGER NOT NULL,
  author TEXT NOT NULL, at INTEGER NOT NULL, text TEXT NOT NULL, PRIMARY KEY (request_id, seq));
CREATE TABLE access_grants (
  id TEXT PRIMARY KEY, kind TEXT NOT NULL, identity_id TEXT NOT NULL, request_id TEXT,
  target TEXT NOT NULL, what TEXT NOT NULL, grants TEXT NOT NULL, roles TEXT NOT NULL,
  start_at INTEGER NOT NULL, end_at INTEGER NOT NULL, status TEXT NOT NULL,
  ended_at INTEGER, ended_by TEXT, end_reason TEXT, session_bound INTEGER NOT NULL,
  reason TEXT NOT NULL, revokers TEXT NOT NULL, leases_revoked INTEGER NOT NULL DEFAULT 0);
CREATE INDEX access_grants_identity ON access_grants (identity_id, status, end_at);
CREATE INDEX access_grants_status ON access_grants (status, end_at);
CREATE TABLE access_breakglass_reviews (
  id TEXT PRIMARY KEY, grant_id TEXT NOT NULL UNIQUE REFERENCES access_grants(id), user_id TEXT NOT NULL,
  status TEXT NOT NULL, opened_at INTEGER NOT NULL, reviewer TEXT, reviewed_at INTEGER, summary TEXT);
CREATE TABLE access_webhook_deliveries (
  id TEXT PRIMARY KEY, endpoint TEXT NOT NULL, event_type TEXT NOT NULL, body TEXT NOT NULL,
  status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at INTEGER NOT NULL,
  last_error TEXT, last_status INTEGER, created_at INTEGER NOT NULL, delivered_at INTEGER);
CREATE INDEX access_webhook_due ON access_webhook_deliveries (status, next_attempt_at);`,
  },
  {
    // Separation of duties is judged on who was accountable when it happened, not only now: the
    // requester's accountable humans at request time, each reviewer's human at review time (so an
    // owner change between request and approval never lets one person count twice).
    version: 2,
    up: `
ALTER TABLE access_requests ADD COLUMN accountable TEXT;
ALTER TABLE access_reviews_cast ADD COLUMN human TEXT;`,
  },
];

export function migrateAccess(db: Db): void {
  migrate(db, 'access', ACCESS_MIGRATIONS);
}

type Row = Record<string, unknown>;
const iso = (ms: unknown): string => new Date(Number(ms)).toISOString();
const isoOrNull = (ms: unknown): string | null => (ms === null || ms === undefined ? null : iso(ms));

export function requestFromRow(r: Row, reviews: Review[], comments: Comment[]): AccessRequest {
  return {
    id: r.id as string,
    requester: r.requester as string,
    target: JSON.parse(r.target as string) as AccessTarget,
    what: r.what as string,
    reason: r.reason as string,
    ticket: (r.ticket as string | null) ?? null,
    duration_ms: Number(r.duration_ms),
    start_at: isoOrNull(r.start_at),
    session_bound: Number(r.session_bound) === 1,
    status: r.status as AccessRequest['status'],
    required_approvals: Number(r.required_approvals),
    rules: JSON.parse(r.rules as string) as string[],
    reviewers: JSON.parse(r.reviewers as string) as string[],
    created_at: iso(r.created_at),
    expires_at: iso(r.expires_at),
    decided_at: isoOrNull(r.decided_at),
    grant_id: (r.grant_id as string | null) ?? null,
    reviews,
    comments,
  };
}

export function reviewFromRow(r: Row): Review {
  return {
    reviewer: r.reviewer as string,
    verdict: r.verdict as Review['verdict'],
    decision_id: r.decision_id as string,
    at: iso(r.at),
    comment: (r.comment as string | null) ?? null,
  };
}

export function grantFromRow(r: Row): Grant {
  return {
    id: r.id as string,
    kind: r.kind as Grant['kind'],
    identity_id: r.identity_id as string,
    request_id: (r.request_id as string | null) ?? null,
    target: JSON.parse(r.target as string) as AccessTarget,
    what: r.what as string,
    grants: JSON.parse(r.grants as string) as string[],
    roles: JSON.parse(r.roles as string) as Grant['roles'],
    start_at: iso(r.start_at),
    end_at: iso(r.end_at),
    status: r.status as Grant['status'],
    ended_at: isoOrNull(r.ended_at),
    ended_by: (r.ended_by as string | null) ?? null,
    end_reason: (r.end_reason as string | null) ?? null,
    session_bound: Number(r.session_bound) === 1,
    reason: r.reason as string,
    revokers: JSON.parse(r.revokers as string) as string[],
  };
}

export function bgReviewFromRow(r: Row): BreakGlassReview {
  return {
    id: r.id as string,
    grant_id: r.grant_id as string,
    user: r.user_id as string,
    status: r.status as BreakGlassReview['status'],
    opened_at: iso(r.opened_at),
    reviewer: (r.reviewer as string | null) ?? null,
    reviewed_at: isoOrNull(r.reviewed_at),
    summary: (r.summary as string | null) ?? null,
  };
}
