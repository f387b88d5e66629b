// RFC 8693 token exchange glue: verifies both tokens against the broker's own keys and leases,
// hands the exchange to the api issuer (over the credential service), and maps its refusals to RFC 6749 error codes.
import { createLocalJWKSet } from 'jose';
import type { JWK } from 'jose';
import type { PortcullisConfig } from '../config/types.ts';
import type { Clock } from '../common/clock.ts';
import { AuthenticationFailed, Forbidden, InvalidInput } from '../common/errors.ts';
import type { IdentityRegistry } from '../inventory/identities.ts';
import { exchange, parseScopes, storedFacts, TokenExchangeRefused, verifyAccessToken } from '../credentials/index.ts';
import type { ApiTarget, CredentialService, Issued } from '../credentials/index.ts';

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
