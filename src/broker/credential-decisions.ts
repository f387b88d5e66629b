// The decide adapters: how the credential and access services ask the decision point, each with
// the identity's current inventory row and its active grants.
import { Forbidden } from '../common/errors.ts';
import type { Metrics } from '../common/metrics.ts';
import type { AuthnFacts } from '../identity/types.ts';
import type { Identity, IdentityRegistry } from '../inventory/identities.ts';
import type { DecisionInput, DecisionPoint } from '../policy/decision-point.ts';
import type { Decide } from '../credentials/index.ts';
import type { AccessDecide, AccessDecisionRequest, AccessWouldDecide } from '../access/index.ts';
import { principalFacts, withGrantFacts } from './authorization.ts';
import type { GrantsFor } from './authorization.ts';

export interface DeciderDeps {
  identities: IdentityRegistry;
  decisions: DecisionPoint;
  metrics: Metrics;
  grantsFor: GrantsFor;
}

const NO_SESSION: AuthnFacts = { method: 'bootstrap', trust: 'none', mfa: false, assurance: 'low', auth_time: 0 };

/**
 * Decisions asked by the credential service: the identity's current inventory row, the facts of
 * the session that asked, its grants (as read by the caller for this request, else read now).
 */
export function credentialDecider({ identities, decisions, metrics, grantsFor }: DeciderDeps): Decide {
  return async (req) => {
    const identity = identities.get(req.identityId);
    const { session } = req;
    const facts = { authn: session.authn ?? NO_SESSION, sourceIp: session.sourceIp ?? '0.0.0.0', extra: { credential: req.credential } };
    if (!identity || identity.status !== 'active') {
      const d = await decisions.decide({
        principal: principalFacts(identity ?? { id: req.identityId, kind: 'workload', boundary: 'none', environment: 'none', owner: null, labels: {}, parents: [] } as unknown as Identity),
        claims: {}, ...facts, action: req.action, resource: req.resource, purpose: {}, resourceEntities: [],
      });
      return { decision: 'deny', decisionId: d.decision_id };
    }
    const { decision: d, recorded } = decisions.decideDeferred({
      ...(req.grants ? withGrantFacts(identity, req.grants) : await grantsFor(identity, req.resource, req.action)),
      ...facts,
      claims: session.claims ?? {},
      ...(session.sessionId !== undefined && { sessionId: session.sessionId }),
      action: req.action,
      resource: req.resource,
      purpose: { reason: req.purpose },
      ...(req.delegation && { delegation: req.delegation }),
    });
    metrics.decided(d.decision);
    return { decision: d.decision, decisionId: d.decision_id, recorded };
  };
}

/** The decision input of an access-domain question: the actor's facts, its grants read once. */
async function accessInput(grantsFor: GrantsFor, identity: Identity, r: AccessDecisionRequest): Promise<DecisionInput> {
  const withGrants = await grantsFor(identity, r.resource, r.action);
  return {
    ...withGrants,
    claims: {},
    authn: r.actor.authn,
    ...(r.actor.sessionId !== undefined && { sessionId: r.actor.sessionId }),
    sourceIp: r.actor.sourceIp ?? '0.0.0.0',
    action: r.action,
    resource: r.resource,
    purpose: r.purpose ?? {},
    breakGlass: r.breakGlass ?? withGrants.breakGlass,
    ...(r.resourceEntity && { resourceEntities: [r.resourceEntity] }),
  };
}

/** Decisions asked by the access service (access.request, access.approve, break-glass eligibility), live, with the actor's grants. */
export function accessDecider({ identities, decisions, metrics, grantsFor }: DeciderDeps): AccessDecide {
  return async (r) => {
    const identity = identities.get(r.actor.id);
    if (!identity || identity.status !== 'active') throw new Forbidden(`identity ${r.actor.id} is not active`);
    const d = await decisions.decide(await accessInput(grantsFor, identity, r));
    metrics.decided(d.decision);
    return { decision: d.decision, decisionId: d.decision_id };
  };
}

/**
 * The access decider's answer without an authz record (DecisionPoint.wouldDecide): only for the
 * access domain's read filter, inside a read that recorded its own decision (docs/access.md
 * "Who reads what"). An inactive identity is never an approver.
 */
export function accessWouldDecider({ identities, decisions, grantsFor }: DeciderDeps): AccessWouldDecide {
  return async (r) => {
    const identity = identities.get(r.actor.id);
    if (!identity || identity.status !== 'active') return 'deny';
    return decisions.wouldDecide(await accessInput(grantsFor, identity, r)).decision;
  };
}
