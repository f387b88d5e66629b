// RFC 8693 token exchange glue: verifies both tokens against the broker's own keys and leases,
// hands the exchange to the api issuer (over the credential service), and maps its refusals to RFC 6749 error codes;
// and the assignment-scoped tokens of AI agents (an agent acting for a user under an assignment).
import { createLocalJWKSet } from 'jose';
import type { JWK } from 'jose';
import type { PortcullisConfig } from '../config/types.ts';
import type { Clock } from '../common/clock.ts';
import { AuthenticationFailed, Forbidden, InvalidInput } from '../common/errors.ts';
import type { IdentityRegistry } from '../inventory/identities.ts';
import { actorsOf, exchange, parseScopes, storedFacts, TokenExchangeRefused, verifyAccessToken } from '../credentials/index.ts';
import type { ActClaim, ApiTarget, CredentialService, Issued, SessionFacts } from '../credentials/index.ts';
import type { AgentService } from '../agents/service.ts';
import type { Assignment } from '../agents/types.ts';
import type { SessionContext } from './types.ts';

export interface DelegationRequest {
  subjectToken: string;
  actorToken: string;
  audience?: string;
  resource?: string;
  scope?: string;
}

export interface DelegationDeps {
  config: Pick<PortcullisConfig, 'targets'>;
  /** `iss` of the access tokens exchanged. */
  issuer: string;
  clock: Clock;
  publicJwks(): { keys: unknown[] };
  credentials: CredentialService;
  identities: IdentityRegistry;
}

/**
 * RFC 8693 delegation: the actor presents the subject's Portcullis access token and its own
 * access token for the same API; what the actor may do is its own token's scope (decided by
 * policy when it was issued). The new token's scope is at most the intersection, its `act`
 * records the chain, and Cedar decides it with `context.delegation`. Errors are RFC 6749 codes.
 */
export async function exchangeDelegated(d: DelegationDeps, req: DelegationRequest, sourceIp: string): Promise<Issued> {
  const target = apiTargetFor(d.config.targets, req.audience, req.resource);
  const keys = createLocalJWKSet(d.publicJwks() as { keys: JWK[] });
  const verify = async (token: string, which: string) => {
    try {
      const v = await verifyAccessToken(token, keys, { issuer: d.issuer, audience: target.audience, currentDate: new Date(d.clock.now()) });
      const lease = await d.credentials.introspect('api', v.jti);
      if (!lease.active || !lease.lease) throw new TokenExchangeRefused('invalid_grant', `${which} has been revoked or has expired`);
      const identity = d.identities.get(v.sub);
      if (!identity || identity.status !== 'active') throw new TokenExchangeRefused('invalid_grant', `${which}: its identity is not active`);
      return { v, lease: lease.lease };
    } catch (err) {
      if (err instanceof AuthenticationFailed) throw new TokenExchangeRefused('invalid_grant', `${which} is not a valid access token for ${target.name}`);
      throw err;
    }
  };
  const subject = await verify(req.subjectToken, 'subject_token');
  const actor = await verify(req.actorToken, 'actor_token');
  if (actor.v.act) throw new TokenExchangeRefused('invalid_grant', "actor_token must be the actor's own token, not a delegated one");
  let scopes: string[] | undefined;
  if (req.scope !== undefined) {
    try {
      scopes = parseScopes(req.scope, 'scope');
    } catch {
      throw new TokenExchangeRefused('invalid_scope', 'scope: expected space-separated scope tokens');
    }
  }
  // The subject's original session facts are what policy sees; the chain goes in context.delegation.
  const { session } = storedFacts(subject.lease);
  try {
    return await exchange(d.credentials, {
      target: target.name,
      subject: { identityId: subject.v.sub, scopes: subject.v.scopes, jti: subject.v.jti, ...(subject.v.act && { act: subject.v.act }) },
      actor: { identityId: actor.v.sub, scopes: actor.v.scopes },
      ...(scopes && { scopes }),
      purpose: `token exchange: ${actor.v.sub} acting for ${subject.v.sub}`,
      session: { ...session, sourceIp },
      ...(subject.lease.sessionId !== null && { sessionId: subject.lease.sessionId }),
      ...(subject.lease.trust !== null && { trust: subject.lease.trust }),
    });
  } catch (err) {
    if (err instanceof Forbidden) {
      if (Array.isArray(err.extra.scopes)) throw new TokenExchangeRefused('invalid_scope', err.message);
      throw new TokenExchangeRefused('invalid_grant', err.message, err.extra.decision_id !== undefined ? { decision_id: err.extra.decision_id } : {});
    }
    if (err instanceof InvalidInput) throw new TokenExchangeRefused('invalid_request', err.message);
    throw err;
  }
}

/** `audience` (target name or its audience) and/or `resource` (its audience URI) name one api target. */
function apiTargetFor(targets: PortcullisConfig['targets'], audience: string | undefined, resource: string | undefined): ApiTarget {
  if (audience === undefined && resource === undefined) throw new TokenExchangeRefused('invalid_request', 'audience or resource is required: it names the API the token is for');
  const apis = targets.filter((t): t is ApiTarget => t.kind === 'api');
  const byAudience = audience === undefined ? undefined : apis.find((t) => t.name === audience || t.audience === audience);
  const byResource = resource === undefined ? undefined : apis.find((t) => t.audience === resource);
  const t = byAudience ?? byResource;
  if (!t || (audience !== undefined && resource !== undefined && byAudience !== byResource)) {
    throw new TokenExchangeRefused('invalid_target', 'audience/resource does not name one API target of this server');
  }
  return t;
}

// ── Assignment-scoped tokens (docs/agents.md) ───────────────────────────────────────────────

export interface AssignmentExchangeRequest {
  /** The assignment the token is for (form parameter `assignment`). */
  assignment: string;
  /** The delegating user's token: their session token (type jwt) or access token for `resource`; for a sub-assignment, the parent assignment's token. */
  subjectToken: string;
  subjectTokenType: 'jwt' | 'access_token';
  /** The acting agent's own proof: its Portcullis session token. */
  actorToken: string;
  /** RFC 8707: one of the assignment's audiences; the token's `aud` is exactly this. */
  resource?: string;
  scope?: string;
}

export interface AssignmentExchangeDeps extends DelegationDeps {
  agents: AgentService;
  /** Resolves and checks a Portcullis session token (revocation, identity active), audited on failure. */
  sessionFromToken(token: string, sourceIp: string): Promise<SessionContext>;
}

/**
 * RFC 8693 for an assignment: the delegating user's token (subject) and the agent's own session
 * token (actor) → an access token for one of the assignment's audiences, `sub` the user, `act`
 * the agent (and, for a sub-assignment, the chain above it), `asg` the assignment, never outliving
 * it. Decided by policy as `credential.issue` with `context.delegation`; revoked when the
 * assignment ends. Errors are RFC 6749 codes.
 */
export async function exchangeForAssignment(d: AssignmentExchangeDeps, req: AssignmentExchangeRequest, sourceIp: string): Promise<Issued> {
  const a = await d.agents.get(req.assignment);
  if (!a || a.status !== 'active') throw new TokenExchangeRefused('invalid_grant', `assignment ${String(req.assignment).slice(0, 40)} is not active (unknown, ended or expired)`);
  if (req.resource === undefined) throw new TokenExchangeRefused('invalid_target', `resource is required: one of the assignment's audiences (${a.audiences.join(', ')})`);
  if (!a.audiences.includes(req.resource)) throw new TokenExchangeRefused('invalid_target', 'resource is not one of the assignment\'s audiences: a token is only ever for one of them');
  const target = apiTargetFor(d.config.targets, undefined, req.resource);
  // The actor: the assignment's agent, proving itself now (its session; revoked or suspended → refused).
  const actor = await d.sessionFromToken(req.actorToken, sourceIp).catch(() => {
    throw new TokenExchangeRefused('invalid_grant', 'actor_token is not a valid session token');
  });
  if (actor.identity.id !== a.agentId) throw new TokenExchangeRefused('invalid_grant', `actor_token is not ${a.agentId}'s: only the assignment's agent may use it`);
  const sponsor = d.identities.get(a.sponsorId);
  if (!sponsor || sponsor.status !== 'active') throw new TokenExchangeRefused('invalid_grant', `the agent's sponsor ${a.sponsorId} is not active`);
  const subject = await assignmentSubject(d, req, a, target, sourceIp);
  const prior = subject.act;
  const act: ActClaim = { sub: a.agentId, ...(prior && { act: prior }) };
  const actors = actorsOf(act);
  if (actors.length > target.max_delegation_depth) throw new TokenExchangeRefused('invalid_grant', `delegation chain of ${actors.length} actors exceeds ${target.name}'s limit of ${target.max_delegation_depth}`);
  let scopes = subject.scopes;
  if (req.scope !== undefined) {
    let asked: string[];
    try {
      asked = parseScopes(req.scope, 'scope');
    } catch {
      throw new TokenExchangeRefused('invalid_scope', 'scope: expected space-separated scope tokens');
    }
    const wider = asked.filter((s) => !scopes.includes(s));
    if (wider.length) throw new TokenExchangeRefused('invalid_scope', `scope may not widen: ${wider.join(' ')} not held by the subject token`);
    scopes = asked;
  }
  const now = d.clock.now();
  const ttl = Math.min(target.default_ttl_ms, a.expiresAt - now, subject.notAfter - now);
  if (ttl < 1000) throw new TokenExchangeRefused('invalid_grant', 'the assignment (or the subject token) ends too soon to issue a token');
  let issued: Issued;
  try {
    issued = await d.credentials.issue({
      identityId: a.delegatorId,
      target: target.name,
      permission: scopes.join(' '),
      ttl,
      purpose: `assignment ${a.id}: ${a.intent}`.slice(0, 500),
      params: { scopes, act, asg: a.id, ...(subject.leaseId !== undefined && { parent: subject.leaseId }) },
      session: { ...subject.session, sourceIp },
      delegation: { actors, depth: actors.length },
      actor: a.agentId,
      notAfter: Math.min(a.expiresAt, subject.notAfter),
      ...(subject.sessionId !== undefined && { sessionId: subject.sessionId }),
    });
  } catch (err) {
    if (err instanceof Forbidden) throw new TokenExchangeRefused('invalid_grant', err.message, err.extra.decision_id !== undefined ? { decision_id: err.extra.decision_id } : {});
    if (err instanceof InvalidInput) throw new TokenExchangeRefused('invalid_request', err.message);
    throw err;
  }
  // Ended while it was being issued: it goes with the rest.
  const still = await d.agents.get(a.id);
  if (!still || still.status !== 'active') {
    await d.credentials.revokeLease(issued.lease.id, { by: 'system:agents', reason: `assignment ${a.id} ended` });
    throw new TokenExchangeRefused('invalid_grant', `assignment ${a.id} ended while the token was being issued`);
  }
  return issued;
}

interface AssignmentSubject {
  scopes: string[];
  act?: ActClaim;
  session: SessionFacts;
  sessionId?: string;
  /** The subject token's lease (an access token): the new token ends with it. */
  leaseId?: string;
  /** When the subject token stops counting (ms). */
  notAfter: number;
}

/**
 * The subject of an assignment exchange: for an assignment, the delegating user's own session or
 * access token; for a sub-assignment, a live token of the parent assignment (its `act` chain
 * continues). Anything else — another user's token, a token for another audience, a token of
 * another assignment — is refused.
 */
async function assignmentSubject(d: AssignmentExchangeDeps, req: AssignmentExchangeRequest, a: Assignment, target: ApiTarget, sourceIp: string): Promise<AssignmentSubject> {
  if (req.subjectTokenType === 'jwt') {
    if (a.parentId !== undefined) throw new TokenExchangeRefused('invalid_grant', `a sub-assignment's subject_token is a token of its parent assignment ${a.parentId}`);
    const s = await d.sessionFromToken(req.subjectToken, sourceIp).catch(() => {
      throw new TokenExchangeRefused('invalid_grant', 'subject_token is not a valid session token');
    });
    if (s.identity.id !== a.delegatorId) throw new TokenExchangeRefused('invalid_grant', `subject_token is not ${a.delegatorId}'s: an assignment acts only for its delegating user`);
    return { scopes: target.scopes, session: { authn: s.authn, claims: s.claims, sessionId: s.jti }, sessionId: s.jti, notAfter: s.expiresAt };
  }
  const keys = createLocalJWKSet(d.publicJwks() as { keys: JWK[] });
  let v: Awaited<ReturnType<typeof verifyAccessToken>>;
  try {
    v = await verifyAccessToken(req.subjectToken, keys, { issuer: d.issuer, audience: target.audience, currentDate: new Date(d.clock.now()) });
  } catch {
    throw new TokenExchangeRefused('invalid_grant', `subject_token is not a valid access token for ${req.resource ?? target.audience}`);
  }
  const lease = await d.credentials.introspect('api', v.jti);
  if (!lease.active || !lease.lease) throw new TokenExchangeRefused('invalid_grant', 'subject_token has been revoked or has expired');
  if (v.sub !== a.delegatorId) throw new TokenExchangeRefused('invalid_grant', `subject_token is not ${a.delegatorId}'s: an assignment acts only for its delegating user`);
  if (a.parentId === undefined) {
    if (v.act || v.asg !== undefined) throw new TokenExchangeRefused('invalid_grant', "subject_token must be the delegating user's own token, not a delegated one");
  } else {
    const parent = await d.agents.get(a.parentId);
    if (v.asg !== a.parentId || !parent || parent.status !== 'active' || v.act?.sub !== parent.agentId) {
      throw new TokenExchangeRefused('invalid_grant', `subject_token must be a live token of the parent assignment ${a.parentId}`);
    }
  }
  const { session } = storedFacts(lease.lease);
  return {
    scopes: v.scopes,
    ...(v.act && { act: v.act }),
    session,
    ...(lease.lease.sessionId !== null && { sessionId: lease.lease.sessionId }),
    leaseId: lease.lease.id,
    notAfter: lease.lease.expiresAt,
  };
}
