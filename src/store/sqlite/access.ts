// SQLite implementation of the access domain's storage ports (src/access/ports.ts): its tables,
// migrations (domain `access`) and queries; the row ↔ domain mapping is shared with PostgreSQL
// (../rows/access.ts). Times are stored as ms since the epoch.
import type { SQLInputValue, StatementSync } from 'node:sqlite';
import type {
  AccessStore, BreakGlassReviewRepository, Delivery, DeliveryFilter, DueDelivery, GrantFilter, GrantRepository,
  ListFilter, NewGrant, NewRequest, NewReview, RequestRepository, WebhookOutbox,
} from '../../access/ports.ts';
import type { AccessRequest, BreakGlassReview, Grant, RequestStatus } from '../../access/types.ts';
import type { Db, Migration, SqliteDb } from './db.ts';
import { migrate, SQLITE_SQL } from './db.ts';
import { SqliteRepo, Statements } from './repo.ts';
import { bgReviewFromRow, commentFromRow, deliveryConditions, deliveryFromRow, grantConditions, grantFromRow, grantRow, requestConditions, requestFromRow, requestRow, reviewFromRow, type BoolColumn } from '../rows/access.ts';
import { insertRow, where } from '../rows/sql.ts';
import { ids, type Row } from '../rows/values.ts';

export const ACCESS_MIGRATIONS: readonly Migration[] = [
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

/** Creates or upgrades the access tables on a raw connection. */
function migrateAccess(db: Db): void {
  migrate(db, 'access', ACCESS_MIGRATIONS);
}

/** Booleans are INTEGER 0/1. */
const BOOL: BoolColumn = { read: (v) => Number(v) === 1, write: (b) => (b ? 1 : 0) };

/** Binds what the shared row modules built: SQLite takes these values as they are. */
const args = (values: unknown[]): SQLInputValue[] => values as SQLInputValue[];

// ── Requests ────────────────────────────────────────────────────────────────────────────────

class SqliteRequestRepository extends SqliteRepo implements RequestRepository {
  async create(r: NewRequest): Promise<void> {
    const { sql, values } = insertRow(SQLITE_SQL, 'access_requests', requestRow(r, BOOL));
    await this.run((s) => s(sql).run(...args(values)));
  }

  /** The request with its reviews and comments, read together (one consistent view). */
  #load(s: (sql: string) => StatementSync, id: string): AccessRequest | undefined {
    const row = s('SELECT * FROM access_requests WHERE id = ?').get(id);
    if (!row) return undefined;
    const reviews = s('SELECT * FROM access_reviews_cast WHERE request_id = ? ORDER BY at, reviewer').all(id).map(reviewFromRow);
    const comments = s('SELECT author, at, text FROM access_comments WHERE request_id = ? ORDER BY seq').all(id).map(commentFromRow);
    return requestFromRow(row, reviews, comments, BOOL);
  }

  get(id: string): Promise<AccessRequest | undefined> {
    return this.run((s) => this.#load(s, id));
  }

  list(f: ListFilter, limit: number): Promise<AccessRequest[]> {
    const vals: unknown[] = [];
    const sql = `SELECT id FROM access_requests ${where(SQLITE_SQL, vals, requestConditions(f))} ORDER BY created_at DESC, id DESC LIMIT ?`;
    return this.run((s) => (s(sql).all(...args(vals), limit) as { id: string }[]).map((r) => this.#load(s, r.id)!));
  }

  recordedHumans(id: string): Promise<{ subjectHumans: string[]; earlierHumans: string[] }> {
    return this.run((s) => {
      const row = s('SELECT accountable FROM access_requests WHERE id = ?').get(id) as { accountable: string | null } | undefined;
      const earlier = s("SELECT human FROM access_reviews_cast WHERE request_id = ? AND verdict = 'approve' AND human IS NOT NULL").all(id) as { human: string }[];
      return { subjectHumans: row?.accountable ? (JSON.parse(row.accountable) as string[]) : [], earlierHumans: earlier.map((e) => e.human) };
    });
  }

  addReview(requestId: string, v: NewReview): Promise<boolean> {
    return this.run(
      (s) =>
        Number(
          s('INSERT INTO access_reviews_cast (request_id, reviewer, verdict, decision_id, at, comment, human) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING')
            .run(requestId, v.reviewer, v.verdict, v.decision_id, v.at, v.comment, v.human).changes,
        ) === 1,
    );
  }

  approvals(requestId: string): Promise<number> {
    return this.run((s) => Number((s("SELECT COUNT(*) AS n FROM access_reviews_cast WHERE request_id = ? AND verdict = 'approve'").get(requestId) as { n: number }).n));
  }

  async setRequiredApprovals(id: string, n: number): Promise<void> {
    await this.run((s) => s('UPDATE access_requests SET required_approvals = ? WHERE id = ?').run(n, id));
  }

  conclude(id: string, status: Exclude<RequestStatus, 'pending'>, at: number, grantId: string | null): Promise<boolean> {
    return this.run(
      (s) => Number(s("UPDATE access_requests SET status = ?, decided_at = ?, grant_id = ? WHERE id = ? AND status = 'pending'").run(status, at, grantId, id).changes) === 1,
    );
  }

  async addComment(requestId: string, c: { author: string; at: number; text: string }): Promise<void> {
    // The next sequence number and the insert in one transaction: two comments never share one.
    await this.db.atomic(() => {
      const seq = Number((this.sql.get('SELECT COUNT(*) AS n FROM access_comments WHERE request_id = ?').get(requestId) as { n: number }).n) + 1;
      this.sql.get('INSERT INTO access_comments (request_id, seq, author, at, text) VALUES (?, ?, ?, ?, ?)').run(requestId, seq, c.author, c.at, c.text);
    });
  }

  overdue(now: number): Promise<string[]> {
    return this.run((s) => (s("SELECT id FROM access_requests WHERE status = 'pending' AND expires_at <= ?").all(now) as { id: string }[]).map((r) => r.id));
  }

  expiringUnnotified(from: number, to: number): Promise<string[]> {
    return this.run((s) =>
      (s("SELECT id FROM access_requests WHERE status = 'pending' AND expiring_notified = 0 AND expires_at > ? AND expires_at <= ?").all(from, to) as { id: string }[]).map(
        (r) => r.id,
      ),
    );
  }

  markExpiringNotified(id: string): Promise<boolean> {
    return this.run((s) => Number(s('UPDATE access_requests SET expiring_notified = 1 WHERE id = ? AND expiring_notified = 0').run(id).changes) === 1);
  }
}

// ── Grants ──────────────────────────────────────────────────────────────────────────────────

class SqliteGrantRepository extends SqliteRepo implements GrantRepository {
  async create(g: NewGrant): Promise<void> {
    const { sql, values } = insertRow(SQLITE_SQL, 'access_grants', grantRow(g, BOOL));
    await this.run((s) => s(sql).run(...args(values)));
  }

  get(id: string): Promise<Grant | undefined> {
    return this.run((s) => {
      const row = s('SELECT * FROM access_grants WHERE id = ?').get(id);
      return row ? grantFromRow(row, BOOL) : undefined;
    });
  }

  list(f: GrantFilter, limit: number): Promise<Grant[]> {
    const vals: unknown[] = [];
    const sql = `SELECT * FROM access_grants ${where(SQLITE_SQL, vals, grantConditions(f))} ORDER BY start_at DESC, id DESC LIMIT ?`;
    return this.run((s) => s(sql).all(...args(vals), limit).map((r) => grantFromRow(r, BOOL)));
  }

  holders(): Promise<string[]> {
    return this.run((s) => s("SELECT DISTINCT identity_id FROM access_grants WHERE status = 'active'").all().map((r) => String(r.identity_id)));
  }

  end(id: string, e: { at: number; by: string; reason: string }): Promise<boolean> {
    return this.run(
      (s) => Number(s("UPDATE access_grants SET status = 'ended', ended_at = ?, ended_by = ?, end_reason = ? WHERE id = ? AND status = 'active'").run(e.at, e.by, e.reason, id).changes) === 1,
    );
  }

  async markLeasesRevoked(id: string): Promise<void> {
    await this.run((s) => s('UPDATE access_grants SET leases_revoked = 1 WHERE id = ?').run(id));
  }

  activeSessionBound(identityId: string): Promise<string[]> {
    return this.run((s) => ids(s("SELECT id FROM access_grants WHERE identity_id = ? AND status = 'active' AND session_bound = 1").all(identityId)));
  }

  due(now: number): Promise<string[]> {
    return this.run((s) => ids(s("SELECT id FROM access_grants WHERE status = 'active' AND end_at <= ?").all(now)));
  }

  leasesToRevoke(): Promise<string[]> {
    return this.run((s) => ids(s("SELECT id FROM access_grants WHERE status = 'ended' AND leases_revoked = 0").all()));
  }
}

// ── Break-glass reviews ─────────────────────────────────────────────────────────────────────

class SqliteBreakGlassReviewRepository extends SqliteRepo implements BreakGlassReviewRepository {
  async open(r: { id: string; grantId: string; user: string; openedAt: number }): Promise<void> {
    await this.run((s) => s("INSERT INTO access_breakglass_reviews (id, grant_id, user_id, status, opened_at) VALUES (?, ?, ?, 'open', ?)").run(r.id, r.grantId, r.user, r.openedAt));
  }

  get(id: string): Promise<BreakGlassReview | undefined> {
    return this.run((s) => {
      const row = s('SELECT * FROM access_breakglass_reviews WHERE id = ?').get(id);
      return row ? bgReviewFromRow(row) : undefined;
    });
  }

  forGrant(grantId: string): Promise<BreakGlassReview | undefined> {
    return this.run((s) => {
      const row = s('SELECT * FROM access_breakglass_reviews WHERE grant_id = ?').get(grantId);
      return row ? bgReviewFromRow(row) : undefined;
    });
  }

  list(status?: 'open' | 'closed'): Promise<BreakGlassReview[]> {
    return this.run((s) =>
      (status
        ? s('SELECT * FROM access_breakglass_reviews WHERE status = ? ORDER BY opened_at').all(status)
        : s('SELECT * FROM access_breakglass_reviews ORDER BY opened_at').all()
      ).map(bgReviewFromRow),
    );
  }

  close(id: string, c: { reviewer: string; at: number; summary: string }): Promise<boolean> {
    return this.run(
      (s) =>
        Number(
          s("UPDATE access_breakglass_reviews SET status = 'closed', reviewer = ?, reviewed_at = ?, summary = ? WHERE id = ? AND status = 'open'").run(c.reviewer, c.at, c.summary, id)
            .changes,
        ) === 1,
    );
  }
}

// ── Webhook deliveries ──────────────────────────────────────────────────────────────────────

class SqliteWebhookOutbox extends SqliteRepo implements WebhookOutbox {
  async enqueue(deliveries: readonly { id: string; endpoint: string; eventType: string; body: string }[], at: number): Promise<void> {
    await this.db.atomic(() => {
      const ins = this.sql.get("INSERT INTO access_webhook_deliveries (id, endpoint, event_type, body, status, next_attempt_at, created_at) VALUES (?, ?, ?, ?, 'pending', ?, ?)");
      for (const d of deliveries) ins.run(d.id, d.endpoint, d.eventType, d.body, at, at);
    });
  }

  list(f: DeliveryFilter, limit: number): Promise<Delivery[]> {
    const vals: unknown[] = [];
    const sql = `SELECT * FROM access_webhook_deliveries ${where(SQLITE_SQL, vals, deliveryConditions(f))} ORDER BY created_at DESC, id LIMIT ?`;
    return this.run((s) => s(sql).all(...args(vals), limit).map(deliveryFromRow));
  }

  pendingCount(): Promise<number> {
    return this.run((s) => Number((s("SELECT COUNT(*) AS n FROM access_webhook_deliveries WHERE status = 'pending'").get() as { n: number }).n));
  }

  nextAttemptAt(exceptEndpoints: readonly string[]): Promise<number | undefined> {
    // One statement, not cached: the list of endpoints left out varies.
    const sql = `SELECT MIN(next_attempt_at) AS t FROM access_webhook_deliveries WHERE status = 'pending'${exceptEndpoints.length ? ` AND endpoint NOT IN (${exceptEndpoints.map(() => '?').join(', ')})` : ''}`;
    return this.db.run((raw) => {
      const row = raw.prepare(sql).get(...exceptEndpoints) as { t: number | null };
      return row.t === null ? undefined : Number(row.t);
    });
  }

  due(endpoint: string, now: number, limit: number): Promise<DueDelivery[]> {
    // #10: several replicas would claim rows (FOR UPDATE SKIP LOCKED) instead of only reading them.
    return this.run((s) =>
      (s("SELECT id, endpoint, body, attempts FROM access_webhook_deliveries WHERE status = 'pending' AND endpoint = ? AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?")
        .all(endpoint, now, limit) as Row[]).map((r) => ({ id: r.id as string, endpoint: r.endpoint as string, body: r.body as string, attempts: Number(r.attempts) })),
    );
  }

  async delivered(id: string, a: { attempts: number; status: number | null; at: number }): Promise<void> {
    await this.run((s) =>
      s("UPDATE access_webhook_deliveries SET status = 'delivered', attempts = ?, last_status = ?, last_error = NULL, delivered_at = ? WHERE id = ?").run(a.attempts, a.status, a.at, id),
    );
  }

  async attemptFailed(id: string, a: { status: 'pending' | 'failed'; attempts: number; lastStatus: number | null; error: string; nextAttemptAt: number }): Promise<void> {
    await this.run((s) =>
      s('UPDATE access_webhook_deliveries SET status = ?, attempts = ?, last_status = ?, last_error = ?, next_attempt_at = ? WHERE id = ?').run(
        a.status, a.attempts, a.lastStatus, a.error, a.nextAttemptAt, id,
      ),
    );
  }
}

/** The access repositories over one connection; opening it applies the access migrations. */
export class SqliteAccessStore implements AccessStore {
  readonly requests: SqliteRequestRepository;
  readonly grants: SqliteGrantRepository;
  readonly breakGlass: SqliteBreakGlassReviewRepository;
  readonly webhooks: SqliteWebhookOutbox;

  constructor(db: SqliteDb) {
    migrateAccess(db.raw);
    const sql = new Statements(db);
    this.requests = new SqliteRequestRepository(db, sql);
    this.grants = new SqliteGrantRepository(db, sql);
    this.breakGlass = new SqliteBreakGlassReviewRepository(db, sql);
    this.webhooks = new SqliteWebhookOutbox(db, sql);
  }
}
