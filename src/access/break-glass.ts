// Break-glass: access without approval, but only where policy marks the identity and target
// eligible (a Cedar decision on `break_glass.action`, default `breakglass.use`), with a reason, a
// hard time cap and no renewal, named revokers notified at once and able to end it, and an
// after-action review that stays open until someone other than the user records it.
import { randomUUID } from 'node:crypto';
import { Conflict, InvalidInput, NotFound } from '../common/errors.ts';
import type { EntityUid } from '../policy/engine/types.ts';
import { BreakGlassNotEligible, NotARevoker, ReviewNotAllowed } from './errors.ts';
import { coversResource, summary } from './grants.ts';
import type { BreakGlassInput } from './input.ts';
import { KeyedLock } from '../common/keyed-lock.ts';
import type { AccessTarget, Actor, BreakGlassReview, Grant } from './types.ts';
import type { Requirements } from './rules.ts';
import { checkSeparation } from './duties.ts';
import type { Accountable } from './duties.ts';
import { meaningful } from '../policy/purpose.ts';
import type { WorkflowDeps } from './requests.ts';

export interface BreakGlassDeps extends WorkflowDeps {
  /** Team names an identity belongs to, for `team:<name>` revokers. */
  teamsOf?: (identityId: string) => string[];
  /** The strictest request rules for a target: a break-glass never outlasts their max_duration. */
  requirements?: (t: AccessTarget) => Requirements;
  /** The humans accountable for an identity (separation of duties for the after-action review). */
  accountable?: Accountable;
}

const MAX_SUMMARY = 4000;

export class BreakGlass {
  readonly #d: BreakGlassDeps;
  readonly #lock = new KeyedLock();

  constructor(deps: BreakGlassDeps) {
    this.#d = deps;
  }

  async start(actor: Actor, input: BreakGlassInput): Promise<{ grant: Grant; review: BreakGlassReview }> {
    const cfg = this.#d.config.break_glass;
    const reason = meaningful(input.reason) ?? '';
    if (reason === '') throw new InvalidInput('reason is required for break-glass (blank or invisible text is no reason)', 'reason');
    if (reason.length > 1024) throw new InvalidInput('reason is too long', 'reason');
    // Never longer than break_glass.max_duration nor than any request rule matching the target.
    const rules = this.#d.requirements?.({ kind: 'resource', resource: input.resource, actions: [] });
    const cap = Math.min(cfg.max_duration_ms, rules?.max_duration_ms ?? Infinity);
    const duration = input.duration_ms ?? cap;
    if (!Number.isInteger(duration) || duration < 60_000) throw new InvalidInput('duration must be at least 1m', 'duration');
    if (duration > cap) {
      const by = cap < cfg.max_duration_ms ? ` by rule ${rules!.rules.join(', ')}` : '';
      throw new InvalidInput(`break-glass is capped at ${cap / 60_000} min${by}`, 'duration', { max_duration_ms: cap });
    }
    const key = `${actor.id}|${input.resource.type}::${input.resource.id}`;
    const live = async (now: number) => {
      const g = (await this.#d.grants.list({ identityId: actor.id, kind: 'break-glass', activeAt: now })).find((x) => coversResource(x.target, input.resource));
      if (g) throw new Conflict(`break-glass ${g.id} is already active for this target until ${g.end_at}; it cannot be renewed — end it first`);
    };
    return this.#lock.run(key, async () => {
      const now = this.#d.clock.now();
      await live(now);
      const target = `${input.resource.type}::"${input.resource.id}"`;
      const d = await this.#d.decide({ actor, action: cfg.action, resource: input.resource, breakGlass: true, purpose: { reason } });
      if (d.decision !== 'allow') {
        await this.#d.audit.append({ stream: 'admin', type: 'breakglass.refused', actor: actor.id, payload: { target, reason, decision_id: d.decisionId } });
        throw new BreakGlassNotEligible(target, d.decisionId);
      }
      const endAt = now + duration;
      const revokers = cfg.revokers.filter((r) => r !== actor.id);
      await this.#d.audit.append({
        stream: 'admin', type: 'breakglass.started', actor: actor.id,
        payload: { target, reason, decision_id: d.decisionId, end_at: new Date(endAt).toISOString(), revokers, session: actor.sessionId ?? null },
      });
      const reviewId = `bgr_${randomUUID()}`;
      const uow = this.#d.unitOfWork;
      const grant = await uow.transaction(async () => {
        await uow.lock(`breakglass:${key}`);
        // Still none active (another replica may have started one meanwhile).
        await live(now);
        const g = await this.#d.grants.insert({
          kind: 'break-glass', identityId: actor.id, requestId: null, target: { kind: 'resource', resource: input.resource, actions: [] },
          what: `break-glass on ${target}`, startAt: now, endAt, sessionBound: false, reason, revokers,
        });
        await this.#d.store.breakGlass.open({ id: reviewId, grantId: g.id, user: actor.id, openedAt: now });
        return g;
      });
      this.#d.notifier.notify('breakglass.started', { grant: summary(grant), user: actor.id, target, reason, revokers, review_id: reviewId });
      return { grant, review: await this.review(reviewId) };
    });
  }

  async get(grantId: string): Promise<Grant> {
    const g = await this.#d.grants.get(grantId);
    if (g.kind !== 'break-glass') throw new NotFound(`break-glass ${grantId}`);
    return g;
  }

  list(f: { identityId?: string; activeAt?: number } = {}): Promise<Grant[]> {
    return this.#d.grants.list({ ...f, kind: 'break-glass' });
  }

  /** True when `identityId` may end this break-glass: the user themselves or a named revoker. */
  canEnd(identityId: string, g: Grant): boolean {
    if (identityId === g.identity_id) return true;
    const teams = this.#d.teamsOf?.(identityId) ?? [];
    return g.revokers.some((r) => r === identityId || (r.startsWith('team:') && teams.includes(r.slice(5))));
  }

  async end(actor: Actor, grantId: string, reason: string): Promise<Grant> {
    const g = await this.get(grantId);
    if (!this.canEnd(actor.id, g)) {
      await this.#d.audit.append({ stream: 'admin', type: 'breakglass.revoke_refused', actor: actor.id, subject: g.identity_id, payload: { grant_id: g.id } });
      throw new NotARevoker(grantId);
    }
    const why = reason?.trim() || (actor.id === g.identity_id ? 'ended by the user' : 'revoked');
    return this.#d.grants.end(grantId, { by: actor.id, reason: why, type: actor.id === g.identity_id ? 'breakglass.ended' : 'breakglass.revoked' });
  }

  async review(id: string): Promise<BreakGlassReview> {
    const rv = await this.#d.store.breakGlass.get(id);
    if (!rv) throw new NotFound(`break-glass review ${id}`);
    return rv;
  }

  async reviewForGrant(grantId: string): Promise<BreakGlassReview> {
    const rv = await this.#d.store.breakGlass.forGrant(grantId);
    if (!rv) throw new NotFound(`break-glass review for ${grantId}`);
    return rv;
  }

  reviews(status?: 'open' | 'closed'): Promise<BreakGlassReview[]> {
    return this.#d.store.breakGlass.list(status);
  }

  /** Records the after-action review; only someone other than the user, only after it ended. */
  recordReview(actor: Actor, grantId: string, summaryText: string): Promise<BreakGlassReview> {
    const text = meaningful(summaryText) ?? '';
    if (text === '') throw new InvalidInput('summary is required', 'summary');
    if (text.length > MAX_SUMMARY) throw new InvalidInput(`summary is too long (at most ${MAX_SUMMARY} characters)`, 'summary');
    return this.#lock.run(`review|${grantId}`, async () => {
      const g = await this.get(grantId);
      const rv = await this.reviewForGrant(grantId);
      if (actor.id === g.identity_id) throw new ReviewNotAllowed('the after-action review must be recorded by someone other than the break-glass user');
      if (this.#d.accountable) checkSeparation(this.#d.accountable, actor.id, g.identity_id);
      if (rv.status === 'closed') throw new Conflict(`the review of ${grantId} was already recorded by ${rv.reviewer}`);
      const now = this.#d.clock.now();
      if (g.status === 'active' && Date.parse(g.end_at) > now) throw new ReviewNotAllowed('the break-glass is still active; end it before the after-action review');
      await this.#d.audit.append({ stream: 'admin', type: 'breakglass.reviewed', actor: actor.id, subject: g.identity_id, payload: { grant_id: grantId, review_id: rv.id, summary: text } });
      if (!(await this.#d.store.breakGlass.close(rv.id, { reviewer: actor.id, at: now, summary: text }))) {
        throw new Conflict(`the review of ${grantId} was already recorded by ${(await this.review(rv.id)).reviewer}`);
      }
      const after = await this.review(rv.id);
      this.#d.notifier.notify('breakglass.reviewed', { grant: summary(g), review_id: rv.id, reviewer: actor.id });
      return after;
    });
  }

  /** Is this resource under an active break-glass for this identity right now? */
  async activeFor(identityId: string, resource: EntityUid, now = this.#d.clock.now()): Promise<Grant | undefined> {
    return (await this.list({ identityId, activeAt: now })).find((g) => coversResource(g.target, resource));
  }
}
