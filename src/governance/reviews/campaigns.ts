// Access review campaigns: open one over a scope (by hand or on a schedule's cadence), let the
// owners (or named reviewers) keep / revoke / narrow each item, remind them through the webhooks,
// and at the deadline apply the configured default action (suspend or revoke — never keep) to
// whatever nobody answered. Every step is an `admin` audit event.
import { randomUUID } from 'node:crypto';
import type { Clock } from '../../common/clock.ts';
import { Conflict, Forbidden, InvalidInput, NotFound } from '../../common/errors.ts';
import type { AuditSink } from '../../audit/types.ts';
import type { NewItem, ReviewRepository } from './ports.ts';
import type { ReviewsConfig, ReviewSchedule } from './config.ts';
import { progressOf } from './types.ts';
import type { Campaign, CampaignWithItems, DefaultAction, ItemDraft, ReviewDecision, ReviewItem, ReviewScope } from './types.ts';

/** An identity as a campaign needs to see it. */
export interface ReviewedIdentity {
  id: string;
  kind: string;
  boundary: string;
  environment: string;
  owner: string | null;
  status: string;
}

/** Signed webhook notices (the access domain's dispatcher). */
export interface ReviewNotifier {
  notify(type: string, data: Record<string, unknown>): void;
}

/** What deciding does to the world; the broker implements it over the other domains. */
export interface ReviewEffects {
  /** Takes the identity out of service (sessions, leases, grants end). */
  suspend(identityId: string, by: string, reason: string): Promise<void>;
  /** Revokes what the item is about; returns the outcome (`revoked`, `suspended`, …). */
  revoke(item: ReviewItem, by: string, reason: string): Promise<string>;
  /** Applies (or records for approval) a narrowed policy; returns the outcome. */
  narrow(item: ReviewItem, by: string): Promise<string>;
}

export interface ReviewServiceOptions {
  repo: ReviewRepository;
  clock: Clock;
  audit: AuditSink;
  notifier: ReviewNotifier;
  config: ReviewsConfig;
  /** Every identity (the registry's view). */
  identities: () => readonly ReviewedIdentity[];
  /** The humans accountable for an identity (its owner, its owner team's members…). */
  accountable: (identityId: string) => readonly string[];
  /** The items to review for one identity, with their usage. */
  items: (identity: ReviewedIdentity) => Promise<ItemDraft[]>;
  effects: ReviewEffects;
}

export interface OpenInput {
  name: string;
  scope: ReviewScope;
  /** How long reviewers have (default `reviews.deadline`). */
  deadline_ms?: number;
  default_action?: DefaultAction;
  /** Reviewers for every item, besides each identity's owners. */
  reviewers?: string[];
}

export interface Reviewer {
  id: string;
  /** May decide any item (holds `review.manage`): recorded as an override when not a listed reviewer. */
  override: boolean;
}

const SYSTEM = 'system';

export class ReviewService {
  readonly #o: ReviewServiceOptions;

  constructor(o: ReviewServiceOptions) {
    this.#o = o;
  }

  get config(): ReviewsConfig {
    return this.#o.config;
  }

  /** The identities a scope covers: active ones matching every given field (users only when `kind: user`). */
  inScope(scope: ReviewScope): ReviewedIdentity[] {
    return this.#o
      .identities()
      .filter(
        (i) =>
          i.status === 'active' &&
          (scope.kind === undefined ? i.kind !== 'user' : i.kind === scope.kind) &&
          (scope.boundary === undefined || i.boundary === scope.boundary) &&
          (scope.environment === undefined || i.environment === scope.environment) &&
          (scope.owner === undefined || i.owner === scope.owner),
      )
      .sort((a, b) => a.id.localeCompare(b.id));
  }

  /** Opens a campaign: one item per identity's standing access and per grant / API key it holds. */
  async open(by: string, input: OpenInput, schedule: string | null = null): Promise<CampaignWithItems> {
    const now = this.#o.clock.now();
    const defaultAction = input.default_action ?? this.#o.config.default_action;
    if ((defaultAction as string) === 'keep') throw new InvalidInput('default_action: "keep" is not allowed; an unanswered review suspends or revokes', 'default_action');
    const deadlineMs = input.deadline_ms ?? this.#o.config.deadline_ms;
    const named = [...new Set(input.reviewers ?? [])].sort();
    const id = `rvw_${randomUUID()}`;
    const items: NewItem[] = [];
    for (const identity of this.inScope(input.scope)) {
      // Nobody reviews their own access: the identity (and a user's own accounts) are left out.
      const reviewers = [...new Set([...this.#o.accountable(identity.id), ...named])].filter((r) => r !== identity.id).sort();
      for (const d of await this.#o.items(identity)) items.push({ ...d, id: `rvi_${randomUUID()}`, campaign_id: id, reviewers });
    }
    const campaign = { id, name: input.name, schedule, scope: input.scope, default_action: defaultAction, named_reviewers: named, created_by: by, opened_at: now, deadline_at: now + deadlineMs };
    await this.#o.repo.create(campaign, items);
    const reviewers = [...new Set(items.flatMap((i) => i.reviewers))].sort();
    await this.#audit(by, 'review.opened', { campaign: id, name: input.name, schedule, scope: input.scope, items: items.length, identities: new Set(items.map((i) => i.identity_id)).size, reviewers, default_action: defaultAction, deadline_at: iso(now + deadlineMs) });
    this.#o.notifier.notify('review.opened', { campaign: id, name: input.name, deadline_at: iso(now + deadlineMs), reviewers, items: items.length });
    return this.get(id);
  }

  async get(id: string): Promise<CampaignWithItems> {
    const campaign = await this.#o.repo.get(id);
    if (!campaign) throw new NotFound(`review campaign ${id}`);
    return { campaign, items: await this.#o.repo.items(id) };
  }

  async list(f: { status?: 'open' | 'closed'; schedule?: string } = {}, limit = 200): Promise<(Campaign & { progress: ReturnType<typeof progressOf> })[]> {
    const out = [];
    for (const c of await this.#o.repo.list(f, limit)) out.push({ ...c, progress: progressOf(await this.#o.repo.items(c.id)) });
    return out;
  }

  /** Open items the reviewer is listed on (across open campaigns). */
  async pendingFor(reviewer: string): Promise<ReviewItem[]> {
    const out: ReviewItem[] = [];
    for (const c of await this.#o.repo.list({ status: 'open' }, 1000)) {
      for (const i of await this.#o.repo.items(c.id)) if (i.decision === null && i.reviewers.includes(reviewer)) out.push(i);
    }
    return out;
  }

  /** A reviewer's decision on one item, applied at once (narrow: as the effects say). */
  async decide(by: Reviewer, itemId: string, decision: ReviewDecision, comment: string | null): Promise<ReviewItem> {
    if (!['keep', 'revoke', 'narrow'].includes(decision)) throw new InvalidInput('decision must be keep, revoke or narrow', 'decision');
    const item = await this.#o.repo.item(itemId);
    if (!item) throw new NotFound(`review item ${itemId}`);
    const campaign = await this.#o.repo.get(item.campaign_id);
    if (!campaign || campaign.status !== 'open') throw new Conflict(`review campaign ${item.campaign_id} is closed; open a new campaign to review ${item.identity_id} again`);
    if (by.id === item.identity_id) throw new Forbidden(`${by.id} cannot review its own access`);
    const listed = item.reviewers.includes(by.id);
    if (!listed && !by.override) throw new Forbidden(`${by.id} is not a reviewer of item ${itemId} (reviewers: ${item.reviewers.join(', ') || 'none'})`);
    if (decision === 'keep' && this.#o.clock.now() >= Date.parse(campaign.deadline_at)) throw new Conflict(`the deadline of campaign ${campaign.id} has passed; its default action (${campaign.default_action}) applies`);
    const at = this.#o.clock.now();
    if (!(await this.#o.repo.decide(itemId, { decision, by: by.id, at, comment, byDefault: false }))) throw new Conflict(`review item ${itemId} is already decided`);
    const outcome = await this.#apply({ ...item, decision }, decision, by.id, `access review ${campaign.name}: ${decision}`);
    await this.#audit(by.id, 'review.decided', { campaign: campaign.id, item: itemId, kind: item.kind, ref: item.ref, decision, outcome, override: !listed, ...(comment !== null && { comment }) }, item.identity_id);
    return (await this.#o.repo.item(itemId))!;
  }

  /** Closes a campaign now: undecided items get its default action, as at the deadline. */
  async close(by: string, id: string, reason: string): Promise<CampaignWithItems> {
    const campaign = await this.#o.repo.get(id);
    if (!campaign) throw new NotFound(`review campaign ${id}`);
    if (campaign.status !== 'open') throw new Conflict(`review campaign ${id} is already closed`);
    await this.#finish(campaign, by, reason);
    return this.get(id);
  }

  async #finish(campaign: Campaign, by: string, reason: string): Promise<void> {
    const at = this.#o.clock.now();
    if (!(await this.#o.repo.close(campaign.id, { at, by, reason }))) return; // another replica finished it
    const defaulted: string[] = [];
    for (const item of await this.#o.repo.items(campaign.id)) {
      if (item.decision !== null) continue;
      const decision: ReviewDecision = 'revoke';
      if (!(await this.#o.repo.decide(item.id, { decision, by: SYSTEM, at, comment: `no answer by ${campaign.deadline_at}: ${campaign.default_action}`, byDefault: true }))) continue;
      const why = `access review ${campaign.name}: no answer by the deadline`;
      let outcome: string;
      if (campaign.default_action === 'suspend') outcome = await this.#effect(item.id, () => this.#o.effects.suspend(item.identity_id, SYSTEM, why).then(() => 'suspended'));
      else outcome = await this.#apply(item, 'revoke', SYSTEM, why);
      defaulted.push(item.id);
      await this.#audit(SYSTEM, 'review.defaulted', { campaign: campaign.id, item: item.id, kind: item.kind, ref: item.ref, default_action: campaign.default_action, outcome }, item.identity_id);
    }
    const progress = progressOf(await this.#o.repo.items(campaign.id));
    await this.#audit(by, 'review.closed', { campaign: campaign.id, name: campaign.name, reason, ...progress, defaulted: defaulted.length });
    this.#o.notifier.notify('review.closed', { campaign: campaign.id, name: campaign.name, reason, ...progress });
  }

  async #apply(item: ReviewItem, decision: ReviewDecision, by: string, reason: string): Promise<string> {
    const e = this.#o.effects;
    return this.#effect(item.id, () => (decision === 'keep' ? Promise.resolve('kept') : decision === 'revoke' ? e.revoke(item, by, reason) : e.narrow(item, by)));
  }

  /** Runs an effect and records what came of it (a failure is recorded, never lost). */
  async #effect(itemId: string, fn: () => Promise<string>): Promise<string> {
    let outcome: string;
    try {
      outcome = await fn();
    } catch (err) {
      outcome = `failed: ${(err as Error).message}`.slice(0, 300);
    }
    await this.#o.repo.setOutcome(itemId, outcome);
    return outcome;
  }

  /**
   * The periodic job (leader only): applies the default action of campaigns past their deadline,
   * sends one reminder per campaign `remind_before` its deadline, and opens each schedule's next
   * campaign once `every` has passed since its last one.
   */
  async sweep(now = this.#o.clock.now()): Promise<{ defaulted: string[]; reminded: string[]; opened: string[] }> {
    const defaulted: string[] = [];
    for (const id of await this.#o.repo.overdue(now)) {
      const c = await this.#o.repo.get(id);
      if (c?.status !== 'open') continue;
      await this.#finish(c, SYSTEM, 'deadline passed');
      defaulted.push(id);
    }
    const reminded: string[] = [];
    for (const id of await this.#o.repo.unreminded(now + this.#o.config.remind_before_ms)) {
      if (!(await this.#o.repo.markReminded(id, now))) continue;
      const { campaign, items } = await this.get(id);
      const open = items.filter((i) => i.decision === null);
      const reviewers = [...new Set(open.flatMap((i) => i.reviewers))].sort();
      this.#o.notifier.notify('review.reminder', { campaign: id, name: campaign.name, deadline_at: campaign.deadline_at, undecided: open.length, reviewers, default_action: campaign.default_action });
      await this.#audit(SYSTEM, 'review.reminded', { campaign: id, undecided: open.length, reviewers });
      reminded.push(id);
    }
    const opened: string[] = [];
    for (const s of this.#o.config.schedules) {
      const id = await this.#openIfDue(s, now);
      if (id) opened.push(id);
    }
    return { defaulted, reminded, opened };
  }

  async #openIfDue(s: ReviewSchedule, now: number): Promise<string | undefined> {
    const last = await this.#o.repo.lastOpened(s.name);
    if (last !== undefined && now - last < s.every_ms) return undefined;
    const stamp = new Date(now).toISOString().slice(0, 10);
    const { campaign } = await this.open(SYSTEM, { name: `${s.name} ${stamp}`, scope: s.scope, deadline_ms: s.deadline_ms ?? this.#o.config.deadline_ms, default_action: s.default_action ?? this.#o.config.default_action, reviewers: s.reviewers }, s.name);
    return campaign.id;
  }

  async #audit(actor: string, type: string, payload: Record<string, unknown>, subject?: string): Promise<void> {
    await this.#o.audit.append({ stream: 'admin', type, actor, payload, ...(subject !== undefined && { subject }) });
  }
}

const iso = (ms: number) => new Date(ms).toISOString();
