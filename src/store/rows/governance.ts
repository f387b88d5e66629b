// The governance tables (review campaigns, review items, identity flags) as both stores keep them:
// one schema and one implementation of the ports over a small SQL executor each store provides.
// Times are ISO-8601 text (they sort as they compare), JSON documents and booleans plain TEXT/INTEGER.
import type { CampaignFilter, NewCampaign, NewItem, ReviewRepository } from '../../governance/reviews/ports.ts';
import type { Campaign, ReviewDecision, ReviewItem } from '../../governance/reviews/types.ts';
import type { FlagCode, FlagRepository, IdentityFlag } from '../../governance/lifecycle/ports.ts';
import type { GovernanceStore } from '../../governance/ports.ts';
import { where } from './sql.ts';
import type { Condition, SqlDialect } from './sql.ts';

/** `?` placeholders throughout: the executor of each store binds them (PostgreSQL renumbers them). */
const QMARKS: SqlDialect = { placeholder: () => '?', jsonPlaceholder: () => '?', oneOf: () => '0' };

/** Statements with `?` placeholders (the PostgreSQL store rewrites them to `$n`). */
export interface SqlExecutor {
  all(sql: string, values?: readonly unknown[]): Promise<Record<string, unknown>[]>;
  /** Rows changed. */
  run(sql: string, values?: readonly unknown[]): Promise<number>;
}

/** Version 1 of the `governance` domain, the same SQL on both stores. */
export const GOVERNANCE_MIGRATIONS = [
  {
    version: 1,
    up: `CREATE TABLE gov_campaigns (
  id TEXT PRIMARY KEY, name TEXT NOT NULL, schedule TEXT, scope TEXT NOT NULL, status TEXT NOT NULL,
  default_action TEXT NOT NULL, named_reviewers TEXT NOT NULL, created_by TEXT NOT NULL,
  opened_at TEXT NOT NULL, deadline_at TEXT NOT NULL, reminded_at TEXT,
  closed_at TEXT, closed_by TEXT, close_reason TEXT);
CREATE INDEX gov_campaigns_open ON gov_campaigns (status, deadline_at);
CREATE INDEX gov_campaigns_schedule ON gov_campaigns (schedule, opened_at);
CREATE TABLE gov_review_items (
  id TEXT PRIMARY KEY, campaign_id TEXT NOT NULL REFERENCES gov_campaigns (id), seq INTEGER NOT NULL,
  identity_id TEXT NOT NULL, kind TEXT NOT NULL, ref TEXT NOT NULL, summary TEXT NOT NULL, usage TEXT NOT NULL,
  reviewers TEXT NOT NULL, decision TEXT, decided_by TEXT, decided_at TEXT, comment TEXT, outcome TEXT,
  by_default INTEGER NOT NULL DEFAULT 0);
CREATE INDEX gov_review_items_campaign ON gov_review_items (campaign_id, seq);
CREATE TABLE gov_flags (
  identity_id TEXT NOT NULL, code TEXT NOT NULL, detail TEXT NOT NULL, raised_at TEXT NOT NULL,
  cleared_at TEXT, resolution TEXT);
CREATE UNIQUE INDEX gov_flags_open ON gov_flags (identity_id, code) WHERE cleared_at IS NULL;`,
  },
] as const;

const iso = (ms: number) => new Date(ms).toISOString();
const s = (v: unknown) => (v === null || v === undefined ? null : String(v));

function campaignFromRow(r: Record<string, unknown>): Campaign {
  return {
    id: String(r.id), name: String(r.name), schedule: s(r.schedule), scope: JSON.parse(String(r.scope)) as Campaign['scope'],
    status: r.status as Campaign['status'], default_action: r.default_action as Campaign['default_action'],
    named_reviewers: JSON.parse(String(r.named_reviewers)) as string[], created_by: String(r.created_by),
    opened_at: String(r.opened_at), deadline_at: String(r.deadline_at), reminded_at: s(r.reminded_at),
    closed_at: s(r.closed_at), closed_by: s(r.closed_by), close_reason: s(r.close_reason),
  };
}

function itemFromRow(r: Record<string, unknown>): ReviewItem {
  return {
    id: String(r.id), campaign_id: String(r.campaign_id), identity_id: String(r.identity_id), kind: r.kind as ReviewItem['kind'],
    ref: String(r.ref), summary: String(r.summary), usage: JSON.parse(String(r.usage)) as Record<string, unknown>,
    reviewers: JSON.parse(String(r.reviewers)) as string[], decision: s(r.decision) as ReviewDecision | null,
    decided_by: s(r.decided_by), decided_at: s(r.decided_at), comment: s(r.comment), outcome: s(r.outcome), by_default: Number(r.by_default) === 1,
  };
}

function flagFromRow(r: Record<string, unknown>): IdentityFlag {
  return { identity_id: String(r.identity_id), code: r.code as FlagCode, detail: JSON.parse(String(r.detail)) as Record<string, unknown>, raised_at: String(r.raised_at), cleared_at: s(r.cleared_at), resolution: s(r.resolution) };
}

class SqlReviews implements ReviewRepository {
  readonly #x: SqlExecutor;
  constructor(x: SqlExecutor) {
    this.#x = x;
  }

  async create(c: NewCampaign, items: readonly NewItem[]): Promise<void> {
    await this.#x.run(
      'INSERT INTO gov_campaigns (id, name, schedule, scope, status, default_action, named_reviewers, created_by, opened_at, deadline_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      [c.id, c.name, c.schedule, JSON.stringify(c.scope), 'open', c.default_action, JSON.stringify(c.named_reviewers), c.created_by, iso(c.opened_at), iso(c.deadline_at)],
    );
    let seq = 0;
    for (const i of items) {
      await this.#x.run('INSERT INTO gov_review_items (id, campaign_id, seq, identity_id, kind, ref, summary, usage, reviewers) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)', [
        i.id, c.id, seq++, i.identity_id, i.kind, i.ref, i.summary, JSON.stringify(i.usage), JSON.stringify(i.reviewers),
      ]);
    }
  }

  async get(id: string): Promise<Campaign | undefined> {
    const [r] = await this.#x.all('SELECT * FROM gov_campaigns WHERE id = ?', [id]);
    return r && campaignFromRow(r);
  }

  async items(campaignId: string): Promise<ReviewItem[]> {
    return (await this.#x.all('SELECT * FROM gov_review_items WHERE campaign_id = ? ORDER BY seq', [campaignId])).map(itemFromRow);
  }

  async item(itemId: string): Promise<ReviewItem | undefined> {
    const [r] = await this.#x.all('SELECT * FROM gov_review_items WHERE id = ?', [itemId]);
    return r && itemFromRow(r);
  }

  async list(f: CampaignFilter, limit: number): Promise<Campaign[]> {
    const conds: Condition[] = [];
    if (f.status !== undefined) conds.push(['status = ?', f.status]);
    if (f.schedule !== undefined) conds.push(['schedule = ?', f.schedule]);
    const values: unknown[] = [];
    const sql = `SELECT * FROM gov_campaigns ${where(QMARKS, values, conds)} ORDER BY opened_at DESC, id DESC LIMIT ?`;
    return (await this.#x.all(sql, [...values, limit])).map(campaignFromRow);
  }

  async decide(itemId: string, d: { decision: ReviewDecision; by: string; at: number; comment: string | null; byDefault: boolean }): Promise<boolean> {
    return (await this.#x.run('UPDATE gov_review_items SET decision = ?, decided_by = ?, decided_at = ?, comment = ?, by_default = ? WHERE id = ? AND decision IS NULL', [d.decision, d.by, iso(d.at), d.comment, d.byDefault ? 1 : 0, itemId])) > 0;
  }

  async setOutcome(itemId: string, outcome: string): Promise<void> {
    await this.#x.run('UPDATE gov_review_items SET outcome = ? WHERE id = ?', [outcome, itemId]);
  }

  async close(id: string, c: { at: number; by: string; reason: string }): Promise<boolean> {
    return (await this.#x.run("UPDATE gov_campaigns SET status = 'closed', closed_at = ?, closed_by = ?, close_reason = ? WHERE id = ? AND status = 'open'", [iso(c.at), c.by, c.reason, id])) > 0;
  }

  async overdue(now: number): Promise<string[]> {
    return (await this.#x.all("SELECT id FROM gov_campaigns WHERE status = 'open' AND deadline_at <= ? ORDER BY deadline_at", [iso(now)])).map((r) => String(r.id));
  }

  async unreminded(by: number): Promise<string[]> {
    return (await this.#x.all("SELECT id FROM gov_campaigns WHERE status = 'open' AND reminded_at IS NULL AND deadline_at <= ? ORDER BY deadline_at", [iso(by)])).map((r) => String(r.id));
  }

  async markReminded(id: string, at: number): Promise<boolean> {
    return (await this.#x.run('UPDATE gov_campaigns SET reminded_at = ? WHERE id = ? AND reminded_at IS NULL', [iso(at), id])) > 0;
  }

  async lastOpened(schedule: string): Promise<number | undefined> {
    const [r] = await this.#x.all('SELECT MAX(opened_at) AS at FROM gov_campaigns WHERE schedule = ?', [schedule]);
    return r?.at === null || r?.at === undefined ? undefined : Date.parse(String(r.at));
  }
}

class SqlFlags implements FlagRepository {
  readonly #x: SqlExecutor;
  constructor(x: SqlExecutor) {
    this.#x = x;
  }

  async raise(f: { identity_id: string; code: FlagCode; detail: Record<string, unknown>; at: number }): Promise<boolean> {
    // The partial unique index keeps one open flag per identity and code (ON CONFLICT on both stores).
    return (await this.#x.run('INSERT INTO gov_flags (identity_id, code, detail, raised_at) VALUES (?, ?, ?, ?) ON CONFLICT (identity_id, code) WHERE cleared_at IS NULL DO NOTHING', [f.identity_id, f.code, JSON.stringify(f.detail), iso(f.at)])) > 0;
  }

  async clear(identityId: string, code: FlagCode, c: { at: number; resolution: string }): Promise<boolean> {
    return (await this.#x.run('UPDATE gov_flags SET cleared_at = ?, resolution = ? WHERE identity_id = ? AND code = ? AND cleared_at IS NULL', [iso(c.at), c.resolution, identityId, code])) > 0;
  }

  async open(code?: FlagCode): Promise<IdentityFlag[]> {
    const rows = code === undefined ? await this.#x.all('SELECT * FROM gov_flags WHERE cleared_at IS NULL ORDER BY raised_at, identity_id') : await this.#x.all('SELECT * FROM gov_flags WHERE cleared_at IS NULL AND code = ? ORDER BY raised_at, identity_id', [code]);
    return rows.map(flagFromRow);
  }

  async of(identityId: string): Promise<IdentityFlag[]> {
    return (await this.#x.all('SELECT * FROM gov_flags WHERE identity_id = ? ORDER BY raised_at DESC', [identityId])).map(flagFromRow);
  }
}

export function sqlGovernanceStore(x: SqlExecutor): GovernanceStore {
  return { reviews: new SqlReviews(x), flags: new SqlFlags(x) };
}
