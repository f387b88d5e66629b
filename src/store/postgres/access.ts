// PostgreSQL implementation of the access domain's storage ports (src/access/ports.ts): its tables, migrations and queries,
// safe with several replicas on one database (every guarded transition is one conditional statement or runs under a lock).
import type {
  AccessStore, BreakGlassReviewRepository, Delivery, DeliveryFilter, DueDelivery, GrantFilter, GrantRepository,
  ListFilter, NewGrant, NewRequest, NewReview, RequestRepository, WebhookOutbox,
} from '../../access/ports.ts';
import type { AccessRequest, BreakGlassReview, Grant, RequestStatus } from '../../access/types.ts';
import { KeyedLock } from '../../common/keyed-lock.ts';
import { PG_SQL, type PgDb, type PgDomainMigrations } from './db.ts';
import { bgReviewFromRow, commentFromRow, deliveryConditions, deliveryFromRow, grantConditions, grantFromRow, grantRow, requestConditions, requestFromRow, requestRow, reviewFromRow, type BoolColumn } from '../rows/access.ts';
import { insertRow, where } from '../rows/sql.ts';
import { ids, type Row } from '../rows/values.ts';

// Times are ms since the epoch (BIGINT), JSON values are TEXT (stored and read back verbatim, as on
// SQLite: nothing queries inside them). Text that is sorted on is compared bytewise (COLLATE "C"),
// as SQLite does, whatever the database's collation.
export const MIGRATIONS: PgDomainMigrations = {
  domain: 'access',
  migrations: [
    {
      version: 1,
      up: `
CREATE TABLE access_requests (
  id TEXT PRIMARY KEY, requester TEXT NOT NULL, target TEXT NOT NULL, what TEXT NOT NULL,
  reason TEXT NOT NULL, ticket TEXT, duration_ms BIGINT NOT NULL, start_at BIGINT,
  session_bound BOOLEAN NOT NULL, status TEXT NOT NULL, required_approvals BIGINT NOT NULL,
  rules TEXT NOT NULL, reviewers TEXT NOT NULL, created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL,
  decided_at BIGINT, grant_id TEXT, expiring_notified BOOLEAN NOT NULL DEFAULT false,
  accountable TEXT);
CREATE INDEX access_requests_status ON access_requests (status, expires_at);
CREATE INDEX access_requests_status_created ON access_requests (status, created_at);
CREATE INDEX access_requests_requester ON access_requests (requester, created_at);
CREATE INDEX access_requests_created ON access_requests (created_at);
CREATE TABLE access_reviews_cast (
  request_id TEXT NOT NULL REFERENCES access_requests(id), reviewer TEXT NOT NULL,
  verdict TEXT NOT NULL, decision_id TEXT NOT NULL, at BIGINT NOT NULL, comment TEXT, human TEXT,
  PRIMARY KEY (request_id, reviewer));
-- Separation of duties counts people: one approval per accountable human, whatever replica casts it.
CREATE UNIQUE INDEX access_reviews_one_human ON access_reviews_cast (request_id, human) WHERE verdict = 'approve' AND human IS NOT NULL;
CREATE TABLE access_comments (
  request_id TEXT NOT NULL REFERENCES access_requests(id), seq BIGINT NOT NULL,
  author TEXT NOT NULL, at BIGINT NOT NULL, text TEXT NOT NULL, PRIMARY KEY (request_id, seq));
CREATE TABLE access_grants (
  id TEXT PRIMARY KEY, kind TEXT NOT NULL, identity_id TEXT NOT NULL, request_id TEXT,
  target TEXT NOT NULL, what TEXT NOT NULL, grants TEXT NOT NULL, roles TEXT NOT NULL,
  start_at BIGINT NOT NULL, end_at BIGINT NOT NULL, status TEXT NOT NULL,
  ended_at BIGINT, ended_by TEXT, end_reason TEXT, session_bound BOOLEAN NOT NULL,
  reason TEXT NOT NULL, revokers TEXT NOT NULL, leases_revoked BOOLEAN NOT NULL DEFAULT false);
CREATE INDEX access_grants_identity ON access_grants (identity_id, status, end_at);
CREATE INDEX access_grants_due ON access_grants (end_at) WHERE status = 'active';
CREATE INDEX access_grants_holders ON access_grants (identity_id) WHERE status = 'active';
CREATE INDEX access_grants_leases ON access_grants (id) WHERE status = 'ended' AND NOT leases_revoked;
CREATE INDEX access_grants_kind ON access_grants (kind, start_at);
CREATE INDEX access_grants_start ON access_grants (start_at);
CREATE TABLE access_breakglass_reviews (
  id TEXT PRIMARY KEY, grant_id TEXT NOT NULL UNIQUE REFERENCES access_grants(id), user_id TEXT NOT NULL,
  status TEXT NOT NULL, opened_at BIGINT NOT NULL, reviewer TEXT, reviewed_at BIGINT, summary TEXT);
CREATE INDEX access_breakglass_status ON access_breakglass_reviews (status, opened_at);
CREATE TABLE access_webhook_deliveries (
  id TEXT PRIMARY KEY, endpoint TEXT NOT NULL, event_type TEXT NOT NULL, body TEXT NOT NULL,
  status TEXT NOT NULL, attempts BIGINT NOT NULL DEFAULT 0, next_attempt_at BIGINT NOT NULL,
  last_error TEXT, last_status BIGINT, created_at BIGINT NOT NULL, delivered_at BIGINT);
CREATE INDEX access_webhook_due ON access_webhook_deliveries (endpoint, next_attempt_at) WHERE status = 'pending';
CREATE INDEX access_webhook_next ON access_webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX access_webhook_created ON access_webhook_deliveries (created_at);
CREATE INDEX access_webhook_status ON access_webhook_deliveries (status, created_at);
CREATE INDEX access_webhook_endpoint ON access_webhook_deliveries (endpoint, created_at);`,
    },
  ],
};

/**
 * How long a delivery returned by `due` stays claimed by the replica that got it: longer than one
 * attempt can take (the webhook timeout is at most 60 s) plus recording it. A replica that dies
 * mid-attempt leaves its claim to expire; the delivery is then due again, for any replica.
 */
export const DELIVERY_CLAIM_MS = 120_000;

/** Booleans are BOOLEAN. */
const BOOL: BoolColumn = { read: (v) => v === true, write: (b) => b };

// ── Requests ────────────────────────────────────────────────────────────────────────────────

/** A request with its reviews and comments in one statement (one snapshot: a consistent view). */
const REQUEST_SELECT = `
SELECT r.*,
  COALESCE((SELECT json_agg(json_build_object('reviewer', v.reviewer, 'verdict', v.verdict, 'decision_id', v.decision_id, 'at', v.at, 'comment', v.comment)
                            ORDER BY v.at, v.reviewer COLLATE "C")
            FROM access_reviews_cast v WHERE v.request_id = r.id), '[]'::json) AS reviews_json,
  COALESCE((SELECT json_agg(json_build_object('author', c.author, 'at', c.at, 'text', c.text) ORDER BY c.seq)
            FROM access_comments c WHERE c.request_id = r.id), '[]'::json) AS comments_json
FROM access_requests r`;

/** A request read with REQUEST_SELECT: its reviews and comments come as JSON arrays. */
function requestFromJoinedRow(r: Row): AccessRequest {
  return requestFromRow(r, (r.reviews_json as Row[]).map(reviewFromRow), (r.comments_json as Row[]).map(commentFromRow), BOOL);
}

class PgRequestRepository implements RequestRepository {
  readonly #db: PgDb;
  /** Comments of one request written by this replica go in in call order. */
  readonly #comments = new KeyedLock();

  constructor(db: PgDb) {
    this.#db = db;
  }

  async create(r: NewRequest): Promise<void> {
    const { sql, values } = insertRow(PG_SQL, 'access_requests', requestRow(r, BOOL));
    await this.#db.execute(sql, values);
  }

  async get(id: string): Promise<AccessRequest | undefined> {
    const row = await this.#db.one(`${REQUEST_SELECT} WHERE r.id = $1`, [id]);
    return row ? requestFromJoinedRow(row) : undefined;
  }

  async list(f: ListFilter, limit: number): Promise<AccessRequest[]> {
    const vals: unknown[] = [];
    const clause = where(PG_SQL, vals, requestConditions(f, 'r.', ' COLLATE "C"'));
    const rows = await this.#db.query(`${REQUEST_SELECT} ${clause} ORDER BY r.created_at DESC, r.id COLLATE "C" DESC LIMIT $${vals.length + 1}`, [...vals, limit]);
    return rows.map(requestFromJoinedRow);
  }

  async recordedHumans(id: string): Promise<{ subjectHumans: string[]; earlierHumans: string[] }> {
    const row = await this.#db.one<{ accountable: string | null; humans: string[] }>(
      `SELECT r.accountable, ARRAY(SELECT v.human FROM access_reviews_cast v
                                  WHERE v.request_id = r.id AND v.verdict = 'approve' AND v.human IS NOT NULL ORDER BY v.at, v.reviewer COLLATE "C") AS humans
       FROM access_requests r WHERE r.id = $1`,
      [id],
    );
    if (!row) return { subjectHumans: [], earlierHumans: [] };
    return { subjectHumans: row.accountable ? (JSON.parse(row.accountable) as string[]) : [], earlierHumans: row.humans };
  }

  async addReview(requestId: string, v: NewReview): Promise<boolean> {
    // The primary key (one review per reviewer) and the one-approval-per-human index decide,
    // atomically across replicas: a second one inserts nothing.
    const n = await this.#db.execute(
      `INSERT INTO access_reviews_cast (request_id, reviewer, verdict, decision_id, at, comment, human)
       VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
      [requestId, v.reviewer, v.verdict, v.decision_id, v.at, v.comment, v.human],
    );
    return n === 1;
  }

  async approvals(requestId: string): Promise<number> {
    const row = await this.#db.one<{ n: number }>("SELECT COUNT(*) AS n FROM access_reviews_cast WHERE request_id = $1 AND verdict = 'approve'", [requestId]);
    return Number(row?.n ?? 0);
  }

  async setRequiredApprovals(id: string, n: number): Promise<void> {
    await this.#db.execute('UPDATE access_requests SET required_approvals = $1 WHERE id = $2', [n, id]);
  }

  async conclude(id: string, status: Exclude<RequestStatus, 'pending'>, at: number, grantId: string | null): Promise<boolean> {
    // A concurrent conclusion holds the row; this one then re-reads it, finds it no longer pending, changes nothing.
    const n = await this.#db.execute("UPDATE access_requests SET status = $1, decided_at = $2, grant_id = $3 WHERE id = $4 AND status = 'pending'", [status, at, grantId, id]);
    return n === 1;
  }

  async addComment(requestId: string, c: { author: string; at: number; text: string }): Promise<void> {
    // The next number is read and used under a lock on the request's comments, across replicas.
    const write = (): Promise<void> =>
      this.#db.transaction(async () => {
        await this.#db.lock(`access.comments:${requestId}`);
        await this.#db.execute(
          `INSERT INTO access_comments (request_id, seq, author, at, text)
           SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4 FROM access_comments WHERE request_id = $1`,
          [requestId, c.author, c.at, c.text],
        );
      });
    // Inside a caller's transaction the lock is held until it ends: queueing behind another flow could deadlock.
    if (this.#db.inTransaction) return write();
    return this.#comments.run(requestId, write);
  }

  async overdue(now: number): Promise<string[]> {
    return ids(await this.#db.query<{ id: string }>("SELECT id FROM access_requests WHERE status = 'pending' AND expires_at <= $1", [now]));
  }

  async expiringUnnotified(from: number, to: number): Promise<string[]> {
    return ids(
      await this.#db.query<{ id: string }>(
        "SELECT id FROM access_requests WHERE status = 'pending' AND NOT expiring_notified AND expires_at > $1 AND expires_at <= $2",
        [from, to],
      ),
    );
  }

  async markExpiringNotified(id: string): Promise<boolean> {
    return (await this.#db.execute('UPDATE access_requests SET expiring_notified = true WHERE id = $1 AND NOT expiring_notified', [id])) === 1;
  }
}

// ── Grants ──────────────────────────────────────────────────────────────────────────────────

class PgGrantRepository implements GrantRepository {
  readonly #db: PgDb;

  constructor(db: PgDb) {
    this.#db = db;
  }

  async create(g: NewGrant): Promise<void> {
    const { sql, values } = insertRow(PG_SQL, 'access_grants', grantRow(g, BOOL));
    await this.#db.execute(sql, values);
  }

  async get(id: string): Promise<Grant | undefined> {
    const row = await this.#db.one('SELECT * FROM access_grants WHERE id = $1', [id]);
    return row ? grantFromRow(row, BOOL) : undefined;
  }

  async list(f: GrantFilter, limit: number): Promise<Grant[]> {
    const vals: unknown[] = [];
    const clause = where(PG_SQL, vals, grantConditions(f, ' COLLATE "C"'));
    const rows = await this.#db.query(`SELECT * FROM access_grants ${clause} ORDER BY start_at DESC, id COLLATE "C" DESC LIMIT $${vals.length + 1}`, [...vals, limit]);
    return rows.map((r) => grantFromRow(r, BOOL));
  }

  async holders(): Promise<string[]> {
    const rows = await this.#db.query<{ identity_id: string }>("SELECT DISTINCT identity_id FROM access_grants WHERE status = 'active'");
    return rows.map((r) => r.identity_id);
  }

  async end(id: string, e: { at: number; by: string; reason: string }): Promise<boolean> {
    const n = await this.#db.execute(
      "UPDATE access_grants SET status = 'ended', ended_at = $1, ended_by = $2, end_reason = $3 WHERE id = $4 AND status = 'active'",
      [e.at, e.by, e.reason, id],
    );
    return n === 1;
  }

  async markLeasesRevoked(id: string): Promise<void> {
    await this.#db.execute('UPDATE access_grants SET leases_revoked = true WHERE id = $1', [id]);
  }

  async activeSessionBound(identityId: string): Promise<string[]> {
    return ids(await this.#db.query<{ id: string }>("SELECT id FROM access_grants WHERE identity_id = $1 AND status = 'active' AND session_bound", [identityId]));
  }

  async due(now: number): Promise<string[]> {
    return ids(await this.#db.query<{ id: string }>("SELECT id FROM access_grants WHERE status = 'active' AND end_at <= $1", [now]));
  }

  async leasesToRevoke(): Promise<string[]> {
    return ids(await this.#db.query<{ id: string }>("SELECT id FROM access_grants WHERE status = 'ended' AND NOT leases_revoked"));
  }
}

// ── Break-glass reviews ─────────────────────────────────────────────────────────────────────

class PgBreakGlassReviewRepository implements BreakGlassReviewRepository {
  readonly #db: PgDb;

  constructor(db: PgDb) {
    this.#db = db;
  }

  async open(r: { id: string; grantId: string; user: string; openedAt: number }): Promise<void> {
    await this.#db.execute("INSERT INTO access_breakglass_reviews (id, grant_id, user_id, status, opened_at) VALUES ($1, $2, $3, 'open', $4)", [r.id, r.grantId, r.user, r.openedAt]);
  }

  async get(id: string): Promise<BreakGlassReview | undefined> {
    const row = await this.#db.one('SELECT * FROM access_breakglass_reviews WHERE id = $1', [id]);
    return row ? bgReviewFromRow(row) : undefined;
  }

  async forGrant(grantId: string): Promise<BreakGlassReview | undefined> {
    const row = await this.#db.one('SELECT * FROM access_breakglass_reviews WHERE grant_id = $1', [grantId]);
    return row ? bgReviewFromRow(row) : undefined;
  }

  async list(status?: 'open' | 'closed'): Promise<BreakGlassReview[]> {
    const rows = status
      ? await this.#db.query('SELECT * FROM access_breakglass_reviews WHERE status = $1 ORDER BY opened_at, id COLLATE "C"', [status])
      : await this.#db.query('SELECT * FROM access_breakglass_reviews ORDER BY opened_at, id COLLATE "C"');
    return rows.map(bgReviewFromRow);
  }

  async close(id: string, c: { reviewer: string; at: number; summary: string }): Promise<boolean> {
    const n = await this.#db.execute(
      "UPDATE access_breakglass_reviews SET status = 'closed', reviewer = $1, reviewed_at = $2, summary = $3 WHERE id = $4 AND status = 'open'",
      [c.reviewer, c.at, c.summary, id],
    );
    return n === 1;
  }
}

// ── Webhook deliveries ──────────────────────────────────────────────────────────────────────

/**
 * The outbox shared by every replica's dispatcher. `due` claims what it returns: the rows are
 * locked while claimed (`FOR UPDATE SKIP LOCKED`, so two replicas never get the same one) and their
 * next attempt moves to the end of the claim, so no other replica finds them due until the
 * claimer has recorded the attempt — or died, and the claim ran out. An attempt's result is
 * recorded only over the attempt it followed (still pending, attempts one less): a claimer that
 * outlived its claim cannot undo or double-count what another replica recorded since.
 */
class PgWebhookOutbox implements WebhookOutbox {
  readonly #db: PgDb;

  constructor(db: PgDb) {
    this.#db = db;
  }

  async enqueue(deliveries: readonly { id: string; endpoint: string; eventType: string; body: string }[], at: number): Promise<void> {
    if (deliveries.length === 0) return;
    await this.#db.execute(
      `INSERT INTO access_webhook_deliveries (id, endpoint, event_type, body, status, next_attempt_at, created_at)
       SELECT d.id, d.endpoint, d.event_type, d.body, 'pending', $5, $5 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS d (id, endpoint, event_type, body)`,
      [deliveries.map((d) => d.id), deliveries.map((d) => d.endpoint), deliveries.map((d) => d.eventType), deliveries.map((d) => d.body), at],
    );
  }

  async list(f: DeliveryFilter, limit: number): Promise<Delivery[]> {
    const vals: unknown[] = [];
    const clause = where(PG_SQL, vals, deliveryConditions(f));
    const rows = await this.#db.query(`SELECT * FROM access_webhook_deliveries ${clause} ORDER BY created_at DESC, id COLLATE "C" LIMIT $${vals.length + 1}`, [...vals, limit]);
    return rows.map(deliveryFromRow);
  }

  async pendingCount(): Promise<number> {
    const row = await this.#db.one<{ n: number }>("SELECT COUNT(*) AS n FROM access_webhook_deliveries WHERE status = 'pending'");
    return Number(row?.n ?? 0);
  }

  async nextAttemptAt(exceptEndpoints: readonly string[]): Promise<number | undefined> {
    const row = await this.#db.one<{ t: number | null }>(
      "SELECT MIN(next_attempt_at) AS t FROM access_webhook_deliveries WHERE status = 'pending' AND NOT (endpoint = ANY($1::text[]))",
      [exceptEndpoints],
    );
    return row?.t === null || row?.t === undefined ? undefined : Number(row.t);
  }

  async due(endpoint: string, now: number, limit: number): Promise<DueDelivery[]> {
    const rows = await this.#db.query<{ id: string; endpoint: string; body: string; attempts: number }>(
      `WITH claim AS (
         SELECT id, next_attempt_at AS was FROM access_webhook_deliveries
         WHERE status = 'pending' AND endpoint = $1 AND next_attempt_at <= $2
         ORDER BY next_attempt_at, id COLLATE "C" LIMIT $3 FOR UPDATE SKIP LOCKED),
       claimed AS (
         UPDATE access_webhook_deliveries d SET next_attempt_at = $4 FROM claim WHERE d.id = claim.id
         RETURNING d.id, d.endpoint, d.body, d.attempts, claim.was)
       SELECT id, endpoint, body, attempts FROM claimed ORDER BY was, id COLLATE "C"`,
      [endpoint, now, limit, now + DELIVERY_CLAIM_MS],
    );
    return rows.map((r) => ({ id: r.id, endpoint: r.endpoint, body: r.body, attempts: Number(r.attempts) }));
  }

  async delivered(id: string, a: { attempts: number; status: number | null; at: number }): Promise<void> {
    await this.#db.execute(
      `UPDATE access_webhook_deliveries SET status = 'delivered', attempts = $2, last_status = $3, last_error = NULL, delivered_at = $4
       WHERE id = $1 AND status = 'pending' AND attempts = $5`,
      [id, a.attempts, a.status, a.at, a.attempts - 1],
    );
  }

  async attemptFailed(id: string, a: { status: 'pending' | 'failed'; attempts: number; lastStatus: number | null; error: string; nextAttemptAt: number }): Promise<void> {
    await this.#db.execute(
      `UPDATE access_webhook_deliveries SET status = $2, attempts = $3, last_status = $4, last_error = $5, next_attempt_at = $6
       WHERE id = $1 AND status = 'pending' AND attempts = $7`,
      [id, a.status, a.attempts, a.lastStatus, a.error, a.nextAttemptAt, a.attempts - 1],
    );
  }
}

/** The access repositories over one pool (the migrations are run by `PostgresStore.open`). */
export function pgAccessStore(db: PgDb): AccessStore {
  return {
    requests: new PgRequestRepository(db),
    grants: new PgGrantRepository(db),
    breakGlass: new PgBreakGlassReviewRepository(db),
    webhooks: new PgWebhookOutbox(db),
  };
}
