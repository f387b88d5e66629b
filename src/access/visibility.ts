// Who may see an access request, grant or break-glass review besides its own subject, and which
// pending requests a caller could act on (docs/access.md "Who reads what"). The access domain
// knows who may approve: the policy's `access.approve` on what a request reaches, asked without a
// record (AccessWouldDecide), once per distinct question within one read.
import type { Accountable } from './duties.ts';
import { checkSeparation } from './duties.ts';
import type { RequestRepository } from './ports.ts';
import type { AccessRequest, AccessTarget, AccessWouldDecide, Actor, BreakGlassReview, Grant } from './types.ts';
import type { EntityUid, Entity } from '../policy/engine/types.ts';

export interface VisibilityDeps {
  /** Unrecorded `access.approve` answers; absent: nobody is an approver by policy (fail closed). */
  wouldDecide?: AccessWouldDecide;
  decisionResource: (t: AccessTarget) => { resource: EntityUid; resourceEntity?: Entity };
  accountable?: Accountable;
  requests: Pick<RequestRepository, 'recordedHumans'>;
  now: () => number;
  /** May this identity end this break-glass (its user or a named revoker)? */
  canEnd: (identityId: string, g: Grant) => boolean;
  grant: (id: string) => Promise<Grant | undefined>;
}

/**
 * One reader's view, for ONE read call (its answers are remembered for the call only: policy and
 * state may change before the next). Every method is about someone else's record: the caller's
 * own requests, grants and reviews are the broker's to show without asking.
 */
export class ReaderView {
  readonly #d: VisibilityDeps;
  readonly #actor: Actor;
  readonly #approve = new Map<string, Promise<boolean>>();
  readonly #grants = new Map<string, Promise<Grant | undefined>>();

  constructor(deps: VisibilityDeps, actor: Actor) {
    this.#d = deps;
    this.#actor = actor;
  }

  /** Would policy let the reader approve a request for `target` (with this purpose) now? */
  mayApprove(target: AccessTarget, purpose: { reason?: string; ticket?: string } = {}): Promise<boolean> {
    const decide = this.#d.wouldDecide;
    if (!decide) return Promise.resolve(false);
    const { resource, resourceEntity } = this.#d.decisionResource(target);
    const key = JSON.stringify([resource.type, resource.id, purpose.reason ?? null, purpose.ticket ?? null]);
    let p = this.#approve.get(key);
    if (!p) {
      p = decide({ actor: this.#actor, action: 'access.approve', resource, ...(resourceEntity && { resourceEntity }), purpose }).then(
        (d) => d === 'allow',
        () => false,
      );
      this.#approve.set(key, p);
    }
    return p;
  }

  /**
   * May the reader see another's request: it reviewed it, a matching rule lists it as a reviewer,
   * or policy lets it approve what the request asks for.
   */
  async seesRequest(r: AccessRequest): Promise<boolean> {
    const me = this.#actor.id;
    if (r.requester === me) return true;
    if (r.reviews.some((v) => v.reviewer === me) || r.reviewers.includes(me)) return true;
    return this.mayApprove(r.target, purposeOf(r));
  }

  /**
   * Could the reader approve or deny this request now: pending and not expired, not its own, not
   * reviewed by it yet, separation of duties holds, and policy lets it approve. The access domain
   * decides again, recorded, when it does.
   */
  async couldReview(r: AccessRequest): Promise<boolean> {
    const me = this.#actor.id;
    if (r.status !== 'pending' || Date.parse(r.expires_at) <= this.#d.now()) return false;
    if (r.requester === me || r.reviews.some((v) => v.reviewer === me)) return false;
    if (!(await this.mayApprove(r.target, purposeOf(r)))) return false;
    if (this.#d.accountable) {
      const approvedBy = r.reviews.filter((v) => v.verdict === 'approve').map((v) => v.reviewer);
      try {
        checkSeparation(this.#d.accountable, me, r.requester, approvedBy, await this.#d.requests.recordedHumans(r.id));
      } catch {
        return false;
      }
    }
    return true;
  }

  /** May the reader see another's grant: a break-glass it may end, or one policy lets it approve (and so revoke). */
  async seesGrant(g: Grant): Promise<boolean> {
    if (g.identity_id === this.#actor.id) return true;
    if (g.kind === 'break-glass' && this.#d.canEnd(this.#actor.id, g)) return true;
    return this.mayApprove(g.target, { reason: g.reason });
  }

  /** May the reader see another's break-glass review: it may see the break-glass itself, or it recorded the review. */
  async seesReview(rv: BreakGlassReview): Promise<boolean> {
    if (rv.user === this.#actor.id || rv.reviewer === this.#actor.id) return true;
    let p = this.#grants.get(rv.grant_id);
    if (!p) {
      p = this.#d.grant(rv.grant_id);
      this.#grants.set(rv.grant_id, p);
    }
    const g = await p;
    return g !== undefined && this.seesGrant(g);
  }
}

function purposeOf(r: AccessRequest): { reason: string; ticket?: string } {
  return { reason: r.reason, ...(r.ticket !== null && { ticket: r.ticket }) };
}
