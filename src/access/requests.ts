// Access requests and approvals. Rules that hold whatever policy says: nobody reviews their own
// request; a reviewer must be allowed `access.approve` at the moment of reviewing (a live Cedar
// decision); a pending request expires; the approval threshold comes from config rules.
import { randomUUID } from 'node:crypto';
import type { AuditSink } from '../audit/types.ts';
import type { Clock } from '../common/clock.ts';
import { Conflict, Forbidden, InvalidInput, NotFound } from '../common/errors.ts';
import type { PortcullisError } from '../common/errors.ts';
import type { Entity, EntityUid } from '../policy/engine/types.ts';
import type { UnitOfWork } from '../store/ports.ts';
import type { AccessConfig } from './config.ts';
import { ApproverNotAllowed, RequestNotAllowed, RequestNotPending, SelfApproval } from './errors.ts';
import type { Grants } from './grants.ts';
import { summary } from './grants.ts';
import { KeyedLock } from '../common/keyed-lock.ts';
import { describeTarget, reachedBy, requirementsFor, targetResource } from './rules.ts';
import type { Requirements, ResourceChildren, ResourceLookup } from './rules.ts';
import { checkSeparation } from './duties.ts';
import type { Accountable } from './duties.ts';
import { meaningful } from '../policy/purpose.ts';
import { requestStatusLine } from './status.ts';
import type { AccessStore, ListFilter } from './ports.ts';
import type { AccessDecide, AccessRequest, AccessTarget, Actor, Comment, Notifier, RequestStatus } from './types.ts';

export interface CreateRequestInput {
  target: AccessTarget;
  duration_ms: number;
  reason: string;
  ticket?: string;
  /** ms since the epoch; default: when approved. */
  start_at?: number;
  /** End the grant when the requester logs out. */
  session_bound?: boolean;
}

/** What the request and break-glass workflows both need. */
export interface WorkflowDeps {
  store: AccessStore;
  /** Transactions and record locks over `store`. */
  unitOfWork: UnitOfWork;
  clock: Clock;
  audit: AuditSink;
  decide: AccessDecide;
  config: AccessConfig;
  grants: Grants;
  notifier: Notifier;
}

export interface RequestsDeps extends WorkflowDeps {
  /** Boundary/environment/parents of a declared resource (for rules and the `AccessRequest` entity). */
  resourceInfo?: ResourceLookup;
  /** Declared resources directly inside a resource (rules see what a grant reaches through `in`). */
  resourceChildren?: ResourceChildren;
  /** The Cedar resource a credential target guards (`Database::"orders-db"`); undefined: no such target. */
  credentialResource?: (target: string) => EntityUid | undefined;
  /** The humans accountable for an identity (separation of duties); default: the id itself. */
  accountable?: Accountable;
  /** Is this identity active (not suspended/offboarded)? A request of an inactive one is not approved. */
  isActive?: (identityId: string) => boolean;
}

const MAX_REASON = 1024;
const MAX_TICKET = 128;
const MAX_COMMENT = 2000;
const MAX_START_AHEAD_MS = 30 * 86_400_000;

export class AccessRequests {
  readonly #d: RequestsDeps;
  readonly #lock = new KeyedLock();

  constructor(deps: RequestsDeps) {
    this.#d = deps;
  }

  /** The resource `access.request`/`access.approve` are decided on (see docs/access.md). */
  decisionResource(target: AccessTarget): { resource: EntityUid; resourceEntity?: Entity } {
    const r = targetResource(target);
    if (r) return { resource: r };
    const id = target.kind === 'role' ? `role:${target.role}` : `credential:${(target as { target: string }).target}`;
    const uid = { type: 'AccessRequest', id };
    return { resource: uid, resourceEntity: { uid, attrs: { boundary: 'platform', environment: 'control-plane' }, parents: [] } };
  }

  /** The strictest settings of every rule matching what the target reaches (docs/access.md "Rules"). */
  requirements(t: AccessTarget): Requirements {
    return requirementsFor(this.#d.config, t, reachedBy(t, this.#d.resourceInfo, this.#d.credentialResource, this.#d.resourceChildren));
  }

  /**
   * A credential request is about the resource its target guards: that resource is filled in, and
   * a resource named with it must be that one or inside it (so neither the rules nor the approvers
   * can be chosen by naming another resource).
   */
  #normalise(t: AccessTarget): AccessTarget {
    if (t.kind !== 'credential' || !this.#d.credentialResource) return t;
    const guarded = this.#d.credentialResource(t.target);
    if (!guarded) throw new InvalidInput(`credential.target: no credential target named ${t.target}`, 'credential.target');
    if (!t.resource) return { ...t, resource: guarded };
    const inside = reachedBy({ kind: 'resource', resource: t.resource, actions: [] }, this.#d.resourceInfo).some((e) => e.uid.type === guarded.type && e.uid.id === guarded.id);
    if (!inside) {
      throw new InvalidInput(`credential.resource: must be ${guarded.type}::"${guarded.id}" (what target ${t.target} guards) or a resource inside it`, 'credential.resource');
    }
    return t;
  }

  async create(actor: Actor, raw: CreateRequestInput): Promise<AccessRequest> {
    const now = this.#d.clock.now();
    const input: CreateRequestInput = { ...raw, target: this.#normalise(raw.target) };
    const req = this.requirements(input.target);
    const reason = meaningful(input.reason) ?? '';
    if (reason === '') throw new InvalidInput('reason is required (blank or invisible text is no reason)', 'reason');
    if (reason.length > MAX_REASON) throw new InvalidInput(`reason is too long (at most ${MAX_REASON} characters)`, 'reason');
    const ticket = meaningful(input.ticket);
    if (ticket !== undefined && ticket.length > MAX_TICKET) throw new InvalidInput('ticket is too long', 'ticket');
    if (req.require_ticket && ticket === undefined) {
      throw new InvalidInput(`a ticket reference is required for this request${req.rules.length ? ` (rule ${req.rules.join(', ')})` : ''}`, 'ticket');
    }
    if (!Number.isInteger(input.duration_ms) || input.duration_ms < 60_000) throw new InvalidInput('duration must be at least 1m', 'duration');
    if (input.duration_ms > req.max_duration_ms) {
      throw new InvalidInput(`duration exceeds the cap of ${req.max_duration_ms / 60_000} min for this request type`, 'duration', { max_duration_ms: req.max_duration_ms });
    }
    if (input.start_at !== undefined && (input.start_at < now - 60_000 || input.start_at > now + MAX_START_AHEAD_MS)) {
      throw new InvalidInput('start_at must be between now and 30 days ahead', 'start_at');
    }
    const what = describeTarget(input.target);
    const { resource, resourceEntity } = this.decisionResource(input.target);
    const d = await this.#d.decide({
      actor,
      action: 'access.request',
      resource,
      ...(resourceEntity && { resourceEntity }),
      purpose: { reason, ...(ticket !== undefined && { ticket }) },
    });
    if (d.decision !== 'allow') throw new RequestNotAllowed(what, d.decisionId);
    const id = `req_${randomUUID()}`;
    const expiresAt = now + this.#d.config.pending_ttl_ms;
    await this.#d.audit.append({
      stream: 'admin',
      type: 'access.requested',
      actor: actor.id,
      payload: {
        request_id: id, what, reason, ticket: ticket ?? null, duration_ms: input.duration_ms,
        start_at: input.start_at !== undefined ? new Date(input.start_at).toISOString() : null,
        session_bound: input.session_bound ?? false, required_approvals: req.approvals, rules: req.rules,
        decision_id: d.decisionId, expires_at: new Date(expiresAt).toISOString(),
      },
    });
    await this.#d.store.requests.create({
      id, requester: actor.id, target: input.target, what, reason, ticket: ticket ?? null, duration_ms: input.duration_ms, start_at: input.start_at ?? null,
      session_bound: input.session_bound ?? false, required_approvals: req.approvals, rules: req.rules, reviewers: req.reviewers.filter((r) => r !== actor.id),
      created_at: now, expires_at: expiresAt, accountable: this.#d.accountable?.(actor.id) ?? [],
    });
    const created = await this.get(id);
    await this.#notify('request.created', created);
    return created;
  }

  async get(id: string): Promise<AccessRequest> {
    const r = await this.#d.store.requests.get(id);
    if (!r) throw new NotFound(`access request ${id}`);
    return r;
  }

  list(f: ListFilter = {}, limit = 200): Promise<AccessRequest[]> {
    return this.#d.store.requests.list(f, Math.min(limit, 1000));
  }

  async statusLine(r: AccessRequest): Promise<string> {
    const g = r.grant_id ? await this.#d.grants.get(r.grant_id) : undefined;
    return requestStatusLine(r, this.#d.clock.now(), g);
  }

  approve(actor: Actor, id: string, comment?: string): Promise<AccessRequest> {
    return this.#review(actor, id, 'approve', comment);
  }

  deny(actor: Actor, id: string, comment?: string): Promise<AccessRequest> {
    return this.#review(actor, id, 'deny', comment);
  }

  #review(actor: Actor, id: string, verdict: 'approve' | 'deny', comment?: string): Promise<AccessRequest> {
    const text = checkComment(comment, false);
    return this.#lock.run(id, async () => {
      const r = await this.#pending(id);
      if (actor.id === r.requester) {
        await this.#refused(actor, r, verdict, 'self_approval');
        throw new SelfApproval();
      }
      if (r.reviews.some((v) => v.reviewer === actor.id)) throw new Conflict(`you have already reviewed access request ${id}`);
      if (verdict === 'approve' && this.#d.isActive && !this.#d.isActive(r.requester)) {
        await this.#refused(actor, r, verdict, 'requester_inactive');
        throw new Conflict(`the requester ${r.requester} is not active (suspended or offboarded): access request ${id} cannot be approved`);
      }
      let human: string | null = null;
      if (this.#d.accountable) {
        const approvedBy = r.reviews.filter((v) => v.verdict === 'approve').map((v) => v.reviewer);
        const recorded = await this.#d.store.requests.recordedHumans(id);
        try {
          human = checkSeparation(this.#d.accountable, actor.id, r.requester, approvedBy, recorded);
        } catch (err) {
          await this.#refused(actor, r, verdict, (err as PortcullisError).extra.why as string);
          throw err;
        }
      }
      const { resource, resourceEntity } = this.decisionResource(r.target);
      const d = await this.#d.decide({
        actor,
        action: 'access.approve',
        resource,
        ...(resourceEntity && { resourceEntity }),
        purpose: { reason: r.reason, ...(r.ticket !== null && { ticket: r.ticket }) },
      });
      if (d.decision !== 'allow') {
        await this.#refused(actor, r, verdict, 'not_allowed', d.decisionId);
        throw new ApproverNotAllowed(id, d.decisionId);
      }
      const now = this.#d.clock.now();
      // The rules as they are now also bind (a restart with stricter rules applies to pending requests).
      const current = this.requirements(r.target);
      const required = Math.max(r.required_approvals, current.approvals);
      const durationMs = Math.min(r.duration_ms, current.max_duration_ms);
      const approvals = r.reviews.filter((v) => v.verdict === 'approve').length + (verdict === 'approve' ? 1 : 0);
      const final: RequestStatus | undefined = verdict === 'deny' ? 'denied' : approvals >= required ? 'approved' : undefined;
      await this.#d.audit.append({
        stream: 'admin',
        type: verdict === 'approve' ? 'access.approval' : 'access.denial',
        actor: actor.id,
        subject: r.requester,
        payload: { request_id: id, what: r.what, decision_id: d.decisionId, comment: text ?? null, approvals, required, outcome: final ?? 'pending' },
      });
      const { requests } = this.#d.store;
      const uow = this.#d.unitOfWork;
      const grantId = await uow.transaction(async () => {
        await uow.lock(`request:${id}`);
        // What was checked above still holds (another replica may have reviewed meanwhile).
        const cur = await requests.get(id);
        if (cur?.status !== 'pending') throw new RequestNotPending(id, cur?.status ?? 'gone');
        if (cur.reviews.length !== r.reviews.length) throw new Conflict(`access request ${id} was reviewed meanwhile; review it again`);
        if (!(await requests.addReview(id, { reviewer: actor.id, verdict, decision_id: d.decisionId, at: now, comment: text ?? null, human }))) {
          throw new Conflict(`you have already reviewed access request ${id}`);
        }
        let made: string | null = null;
        if (final === 'approved') {
          const start = Math.max(now, r.start_at !== null ? Date.parse(r.start_at) : now);
          made = (await this.#d.grants.insert({
            kind: 'request', identityId: r.requester, requestId: id, target: r.target, what: r.what,
            startAt: start, endAt: start + durationMs, sessionBound: r.session_bound, reason: r.reason,
          })).id;
        }
        if (required !== r.required_approvals) await requests.setRequiredApprovals(id, required);
        if (final) await requests.conclude(id, final, now, made);
        return made;
      });
      const after = await this.get(id);
      if (grantId !== null) {
        const g = await this.#d.grants.get(grantId);
        await this.#d.audit.append({
          stream: 'admin', type: 'grant.created', actor: actor.id, subject: r.requester,
          payload: { grant_id: g.id, request_id: id, what: g.what, grants: g.grants, start_at: g.start_at, end_at: g.end_at, session_bound: g.session_bound },
        });
        await this.#notify('request.approved', after, { grant: summary(g) });
      } else if (final === 'denied') {
        await this.#notify('request.denied', after);
      }
      return after;
    });
  }

  async #refused(actor: Actor, r: AccessRequest, verdict: string, why: string, decisionId?: string): Promise<void> {
    await this.#d.audit.append({
      stream: 'admin', type: 'access.review_refused', actor: actor.id, subject: r.requester,
      payload: { request_id: r.id, verdict, why, ...(decisionId !== undefined && { decision_id: decisionId }) },
    });
  }

  /** Loads a request that must be pending; a request past its expiry is expired on the spot. */
  async #pending(id: string): Promise<AccessRequest> {
    const r = await this.get(id);
    if (r.status === 'pending' && Date.parse(r.expires_at) <= this.#d.clock.now()) {
      await this.#expire(r);
      throw new RequestNotPending(id, 'expired');
    }
    if (r.status !== 'pending') throw new RequestNotPending(id, r.status);
    return r;
  }

  cancel(actor: Actor, id: string, reason?: string): Promise<AccessRequest> {
    const text = checkComment(reason, false);
    return this.#lock.run(id, async () => {
      const r = await this.#pending(id);
      if (actor.id !== r.requester) throw new Forbidden('only the requester can cancel an access request');
      await this.#d.audit.append({ stream: 'admin', type: 'access.cancelled', actor: actor.id, payload: { request_id: id, what: r.what, reason: text ?? null } });
      if (!(await this.#d.store.requests.conclude(id, 'cancelled', this.#d.clock.now(), null))) throw new RequestNotPending(id, (await this.get(id)).status);
      const after = await this.get(id);
      await this.#notify('request.cancelled', after);
      return after;
    });
  }

  /** The requester, or anyone allowed to review it, may comment (any status). */
  comment(actor: Actor, id: string, text: string): Promise<AccessRequest> {
    const body = checkComment(text, true)!;
    return this.#lock.run(id, async () => {
      const r = await this.get(id);
      if (actor.id !== r.requester) {
        const { resource, resourceEntity } = this.decisionResource(r.target);
        const d = await this.#d.decide({ actor, action: 'access.approve', resource, ...(resourceEntity && { resourceEntity }) });
        if (d.decision !== 'allow') throw new Forbidden(`not allowed to comment on access request ${id}`, { decision_id: d.decisionId });
      }
      await this.#d.audit.append({ stream: 'admin', type: 'access.comment', actor: actor.id, subject: r.requester, payload: { request_id: id, text: body } });
      await this.#d.store.requests.addComment(id, { author: actor.id, at: this.#d.clock.now(), text: body });
      return this.get(id);
    });
  }

  async #expire(r: AccessRequest): Promise<void> {
    await this.#d.audit.append({
      stream: 'admin', type: 'access.expired', actor: 'system:expiry', subject: r.requester,
      payload: { request_id: r.id, what: r.what, approvals: r.reviews.filter((v) => v.verdict === 'approve').length, required: r.required_approvals },
    });
    await this.#d.store.requests.conclude(r.id, 'expired', this.#d.clock.now(), null);
    await this.#notify('request.expired', await this.get(r.id));
  }

  /** Expires overdue pending requests and sends one `request.expiring` notice per request. */
  async sweep(now = this.#d.clock.now()): Promise<{ expired: string[]; expiring: string[] }> {
    const { requests } = this.#d.store;
    const expired: string[] = [];
    for (const id of await requests.overdue(now)) {
      await this.#lock.run(id, async () => {
        const r = await this.get(id);
        if (r.status === 'pending') {
          await this.#expire(r);
          expired.push(id);
        }
      });
    }
    const expiring: string[] = [];
    for (const id of await requests.expiringUnnotified(now, now + this.#d.config.expiring_notice_ms)) {
      // Whoever marks it sends the one notice.
      if (!(await requests.markExpiringNotified(id))) continue;
      expiring.push(id);
      await this.#notify('request.expiring', await this.get(id));
    }
    return { expired, expiring };
  }

  async #notify(type: string, r: AccessRequest, extra: Record<string, unknown> = {}): Promise<void> {
    this.#d.notifier.notify(type, { request: requestView(r), status: await this.statusLine(r), ...extra });
  }
}

/** The non-secret view of a request for notifications (reason and ticket are not secrets). */
export function requestView(r: AccessRequest): Record<string, unknown> {
  return {
    id: r.id, requester: r.requester, what: r.what, reason: r.reason, ticket: r.ticket, status: r.status,
    required_approvals: r.required_approvals, approvals: r.reviews.filter((v) => v.verdict === 'approve').map((v) => v.reviewer),
    reviewers: r.reviewers, duration_ms: r.duration_ms, expires_at: r.expires_at, rules: r.rules,
  };
}

function checkComment(text: string | undefined, required: boolean): string | undefined {
  const t = meaningful(text);
  if (!t) {
    if (required) throw new InvalidInput('text is required', 'text');
    return undefined;
  }
  if (t.length > MAX_COMMENT) throw new InvalidInput(`comment is too long (at most ${MAX_COMMENT} characters)`, 'text');
  return t;
}

export type { Comment };
