// The facade server/ and cli/ call: requests, approvals, grants, break-glass, webhooks, sweeping.
import type { OutboundFetch } from '../common/outbound.ts';
import type { AuditSink } from '../audit/types.ts';
import type { Clock } from '../common/clock.ts';
import { systemClock } from '../common/clock.ts';
import { Forbidden } from '../common/errors.ts';
import type { EntityUid } from '../policy/engine/types.ts';
import type { ChangeFeed, UnitOfWork } from '../store/ports.ts';
import { BreakGlass } from './break-glass.ts';
import type { AccessConfig } from './config.ts';
import { Grants, grantContext } from './grants.ts';
import type { BreakGlassInput } from './input.ts';
import type { CreateRequestInput } from './requests.ts';
import { AccessRequests } from './requests.ts';
import { grantStatusLine } from './status.ts';
import type { AccessStore, Keyset, ListFilter } from './ports.ts';
import type { AccessDecide, AccessRequest, AccessWouldDecide, Actor, BreakGlassReview, Grant, GrantContext, Notifier, RevokeLeases } from './types.ts';
import { ReaderView } from './visibility.ts';
import { WebhookDispatcher } from './webhooks.ts';
import type { ResourceChildren, ResourceLookup } from './rules.ts';
import type { Accountable } from './duties.ts';

export interface AccessServiceOptions {
  /** The access repositories (`store.access`). */
  store: AccessStore;
  /** Transactions and record locks over them (the store itself). */
  unitOfWork: UnitOfWork;
  /** Grants made by other replicas (and made here, announced to them). */
  changes?: ChangeFeed;
  /** The sweep runs only while this replica leads the cluster jobs (default: always). */
  leads?: () => boolean;
  clock?: Clock;
  audit: AuditSink;
  decide: AccessDecide;
  /** The same answers unrecorded, only to filter what a reader may see (docs/access.md "Who reads what"); absent: no one sees others' records by being an approver. */
  wouldDecide?: AccessWouldDecide;
  revokeLeases: RevokeLeases;
  config: AccessConfig;
  /** Notifier to use; default a WebhookDispatcher over `config.webhooks` (exposed as `webhooks`). */
  webhooks?: Notifier;
  resourceInfo?: ResourceLookup;
  /** Declared resources directly inside a resource. */
  resourceChildren?: ResourceChildren;
  /** The Cedar resource a credential target guards; undefined when there is no such target. */
  credentialResource?: (target: string) => EntityUid | undefined;
  /** The humans accountable for an identity (separation of duties); default: ids compared as they are. */
  accountable?: Accountable;
  /** Is this identity active? Requests of suspended/offboarded identities are not approved. */
  isActive?: (identityId: string) => boolean;
  teamsOf?: (identityId: string) => string[];
  /** Background sweep interval (expiry of requests and grants); default 15 s. */
  sweepIntervalMs?: number;
  onError?: (err: unknown) => void;
  /** Each webhook delivery attempt's result (metrics). */
  onDelivery?: (result: 'delivered' | 'retry' | 'failed') => void;
  /** How webhooks are called (default outboundFetch(): no private destinations). */
  fetch?: OutboundFetch;
}

export class AccessService {
  readonly requests: AccessRequests;
  readonly grants: Grants;
  readonly breakGlass: BreakGlass;
  readonly notifier: Notifier;
  /** The built-in dispatcher, when no notifier was passed in. */
  readonly webhooks: WebhookDispatcher | undefined;
  readonly #o: AccessServiceOptions;
  readonly #clock: Clock;
  #timer: NodeJS.Timeout | undefined;
  #sweeping: Promise<unknown> | undefined;

  constructor(o: AccessServiceOptions) {
    this.#o = o;
    this.#clock = o.clock ?? systemClock;
    this.webhooks = o.webhooks ? undefined : new WebhookDispatcher({ outbox: o.store.webhooks, config: o.config.webhooks, ...(o.onError && { onError: o.onError }), ...(o.fetch && { fetch: o.fetch }), ...(o.onDelivery && { onDelivery: o.onDelivery }) });
    this.notifier = o.webhooks ?? this.webhooks!;
    const common = { store: o.store, clock: this.#clock, audit: o.audit, notifier: this.notifier };
    this.grants = new Grants({ ...common, unitOfWork: o.unitOfWork, revokeLeases: o.revokeLeases, ...(o.changes && { changes: o.changes }), ...(o.onError && { onError: o.onError }) });
    this.requests = new AccessRequests({
      ...common, unitOfWork: o.unitOfWork, decide: o.decide, config: o.config, grants: this.grants,
      ...(o.resourceInfo && { resourceInfo: o.resourceInfo }),
      ...(o.resourceChildren && { resourceChildren: o.resourceChildren }),
      ...(o.credentialResource && { credentialResource: o.credentialResource }),
      ...(o.accountable && { accountable: o.accountable }),
      ...(o.isActive && { isActive: o.isActive }),
    });
    this.breakGlass = new BreakGlass({
      ...common, unitOfWork: o.unitOfWork, decide: o.decide, config: o.config, grants: this.grants,
      requirements: (t) => this.requests.requirements(t),
      ...(o.teamsOf && { teamsOf: o.teamsOf }),
      ...(o.accountable && { accountable: o.accountable }),
    });
  }

  // ── Requests ──────────────────────────────────────────────────────────────────────────────
  createRequest(actor: Actor, input: CreateRequestInput): Promise<AccessRequest> {
    return this.requests.create(actor, input);
  }
  async getRequest(id: string): Promise<{ request: AccessRequest; status: string; grant: Grant | null }> {
    const request = await this.requests.get(id);
    return { request, status: await this.requests.statusLine(request), grant: request.grant_id ? await this.grants.get(request.grant_id) : null };
  }
  async listRequests(filter: ListFilter = {}, limit?: number): Promise<{ request: AccessRequest; status: string }[]> {
    const out: { request: AccessRequest; status: string }[] = [];
    for (const request of await this.requests.list(filter, limit)) out.push({ request, status: await this.requests.statusLine(request) });
    return out;
  }
  approve(actor: Actor, id: string, comment?: string): Promise<AccessRequest> {
    return this.requests.approve(actor, id, comment);
  }
  deny(actor: Actor, id: string, comment?: string): Promise<AccessRequest> {
    return this.requests.deny(actor, id, comment);
  }
  cancel(actor: Actor, id: string, reason?: string): Promise<AccessRequest> {
    return this.requests.cancel(actor, id, reason);
  }
  comment(actor: Actor, id: string, text: string): Promise<AccessRequest> {
    return this.requests.comment(actor, id, text);
  }

  /**
   * What `actor` may see of others' requests, grants and reviews, and which requests it could act
   * on — for ONE read (answers are remembered for that read only). See docs/access.md "Who reads what".
   */
  readerView(actor: Actor): ReaderView {
    return new ReaderView({
      ...(this.#o.wouldDecide && { wouldDecide: this.#o.wouldDecide }),
      decisionResource: (t) => this.requests.decisionResource(t),
      ...(this.#o.accountable && { accountable: this.#o.accountable }),
      requests: this.#o.store.requests,
      now: () => this.#clock.now(),
      canEnd: (id, g) => this.breakGlass.canEnd(id, g),
      grant: (id) => this.#o.store.grants.get(id),
    }, actor);
  }

  // ── Grants ────────────────────────────────────────────────────────────────────────────────
  /** What to merge into a decision for this identity: `context.grants`, extra parents, `breakGlass`. */
  activeGrants(identityId: string, now?: number, resource?: EntityUid, action?: string): Promise<GrantContext> {
    return this.grants.contextFor(identityId, {
      ...(now !== undefined && { now }),
      ...(resource && { resource, qualifies: this.qualifier(resource, action) }),
    });
  }
  /** The same from grants the caller already read (one identity's, active now): grants are read once per decision. */
  grantContextOf(active: readonly Grant[], resource?: EntityUid, action?: string): Promise<GrantContext> {
    return grantContext(active, { ...(resource && { resource, qualifies: this.qualifier(resource, action) }) });
  }
  /**
   * Which grants may count in a decision on `resource`: only those meeting the strictest rule
   * matching it now — at least its approvals (a break-glass is eligible by policy instead) and no
   * longer than its max_duration. So a grant obtained under a laxer rule (a role whose policy
   * reaches a prod database, a grant on another resource, a rule made stricter since) never opens
   * what a stricter rule governs (docs/access.md "Rules"). `credential.issue` (or no action) is
   * matched as any action: a credential carries every action on what it reaches.
   */
  qualifier(resource: EntityUid, action?: string): (g: Grant) => Promise<boolean> {
    let req: ReturnType<AccessRequests['requirements']> | undefined;
    return async (g) => {
      req ??= this.requests.requirements({ kind: 'resource', resource, actions: action === undefined || action === 'credential.issue' ? [] : [action] });
      if (Date.parse(g.end_at) - Date.parse(g.start_at) > req.max_duration_ms) return false;
      return g.kind === 'break-glass' || (await this.grants.approvals(g)) >= req.approvals;
    };
  }
  /** Latest start first (then id), `limit` of them (default 500) after `before`. */
  async listGrants(f: { identityId?: string; activeAt?: number; before?: Keyset } = {}, limit = 500): Promise<{ grant: Grant; status: string }[]> {
    const now = this.#clock.now();
    // One identity's grants in force (each issuance asks): no query for an identity holding none.
    const grants = f.identityId !== undefined && f.activeAt !== undefined && f.before === undefined
      ? (await this.grants.activeFor(f.identityId, f.activeAt)).slice(0, limit)
      : await this.grants.list(f, limit);
    return grants.map((grant) => ({ grant, status: grantStatusLine(grant, now) }));
  }
  /**
   * Ends every active grant an identity holds (it was suspended, offboarded or lost its
   * authorization upstream): all of them, page by page — not only the newest page.
   */
  async endAllGrantsOf(identityId: string, by: string, reason: string): Promise<number> {
    let ended = 0;
    let before: Keyset | undefined;
    for (;;) {
      const page = await this.grants.list({ identityId, ...(before && { before }) }, 500);
      for (const g of page) {
        if (g.status !== 'active') continue;
        await this.grants.end(g.id, { by, reason });
        ended++;
      }
      if (page.length < 500) return ended;
      const last = page[page.length - 1]!;
      before = { at: Date.parse(last.start_at), id: last.id };
    }
  }

  /**
   * Ends a request grant early: the holder may give it up; otherwise the caller must be allowed
   * `access.approve` on what it grants. Break-glass grants end through `endBreakGlass`.
   */
  async revokeGrant(actor: Actor, grantId: string, reason: string): Promise<Grant> {
    const g = await this.grants.get(grantId);
    if (g.kind === 'break-glass') return this.breakGlass.end(actor, grantId, reason);
    if (actor.id !== g.identity_id) {
      const { resource, resourceEntity } = this.requests.decisionResource(g.target);
      const d = await this.#o.decide({ actor, action: 'access.approve', resource, ...(resourceEntity && { resourceEntity }) });
      if (d.decision !== 'allow') throw new Forbidden(`not allowed to revoke grant ${grantId}`, { decision_id: d.decisionId });
    }
    return this.grants.end(grantId, { by: actor.id, reason: reason?.trim() || 'revoked', type: 'grant.revoked' });
  }
  /** Call on logout: ends the identity's session-bound grants (and their leases). */
  onLogout(identityId: string): Promise<Grant[]> {
    return this.grants.endSessionBound(identityId, identityId);
  }

  // ── Break-glass ───────────────────────────────────────────────────────────────────────────
  startBreakGlass(actor: Actor, input: BreakGlassInput): Promise<{ grant: Grant; review: BreakGlassReview }> {
    return this.breakGlass.start(actor, input);
  }
  endBreakGlass(actor: Actor, grantId: string, reason: string): Promise<Grant> {
    return this.breakGlass.end(actor, grantId, reason);
  }
  recordBreakGlassReview(actor: Actor, grantId: string, summary: string): Promise<BreakGlassReview> {
    return this.breakGlass.recordReview(actor, grantId, summary);
  }
  breakGlassReviews(status?: 'open' | 'closed'): Promise<BreakGlassReview[]> {
    return this.breakGlass.reviews(status);
  }

  // ── Background work ───────────────────────────────────────────────────────────────────────
  /** Expires pending requests, sends expiring notices, ends grants past their end. */
  async sweep(now = this.#clock.now()) {
    const requests = await this.requests.sweep(now);
    const grants = await this.grants.sweep(now);
    return { ...requests, endedGrants: grants.ended, retriedLeaseRevocations: grants.retried };
  }

  start(): void {
    this.webhooks?.start();
    if (this.#timer) return;
    this.#timer = setInterval(() => {
      if (this.#sweeping || this.#o.leads?.() === false) return;
      this.#sweeping = this.sweep()
        .catch((err) => this.#o.onError?.(err))
        .finally(() => (this.#sweeping = undefined));
    }, this.#o.sweepIntervalMs ?? 15_000);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#sweeping;
    await this.webhooks?.stop();
  }
}

export function createAccessService(o: AccessServiceOptions): AccessService {
  return new AccessService(o);
}
