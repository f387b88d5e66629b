// Access-domain errors with stable codes (mapped once to problem documents by server/).
import { PortcullisError } from '../common/errors.ts';

/** Nobody approves (or denies) their own request, whatever policy says. */
export class SelfApproval extends PortcullisError {
  constructor() {
    super('self_approval', 403, 'you cannot approve or deny your own access request');
  }
}

/** The reviewer is not allowed `access.approve` on this request right now (a Cedar deny). */
export class ApproverNotAllowed extends PortcullisError {
  constructor(requestId: string, decisionId: string) {
    super('approver_not_allowed', 403, `not allowed to review access request ${requestId}`, { decision_id: decisionId });
  }
}

/** The request was already decided, cancelled or expired. */
export class RequestNotPending extends PortcullisError {
  constructor(requestId: string, status: string) {
    super('request_not_pending', 409, `access request ${requestId} is ${status}, not pending`, { state: status });
  }
}

/** Policy refuses to let this identity ask for this access (`access.request` deny). */
export class RequestNotAllowed extends PortcullisError {
  constructor(what: string, decisionId: string) {
    super('request_not_allowed', 403, `not allowed to request ${what}`, { decision_id: decisionId });
  }
}

/** Policy does not mark this identity/target as break-glass eligible. */
export class BreakGlassNotEligible extends PortcullisError {
  constructor(target: string, decisionId: string) {
    super('break_glass_not_eligible', 403, `not break-glass eligible for ${target}`, { decision_id: decisionId });
  }
}

/** Only the user and the named revokers may end a break-glass; only others may review it. */
export class NotARevoker extends PortcullisError {
  constructor(id: string) {
    super('not_a_revoker', 403, `not a named revoker of break-glass ${id}`);
  }
}

export class ReviewNotAllowed extends PortcullisError {
  constructor(message: string) {
    super('review_not_allowed', 403, message);
  }
}

/**
 * Separation of duties counts accountable humans, not identity ids: a review by someone the
 * requester is accountable for (or who is accountable for the requester), by an identity with no
 * single accountable human, or a second approval by the same human under another identity.
 */
export class SeparationOfDuties extends PortcullisError {
  constructor(why: 'same_accountable_human' | 'no_accountable_human' | 'already_approved_by_this_human', message: string) {
    super('separation_of_duties', 403, message, { why });
  }
}
