// Issuing a credential to an API caller: the request-time decision is the credential service's;
// here the request becomes issuer parameters and is tied to the grant it is issued under.
import { Forbidden, InvalidInput } from '../common/errors.ts';
import type { Clock } from '../common/clock.ts';
import type { CredentialService, Issued } from '../credentials/index.ts';
import type { AccessService, Grant } from '../access/index.ts';
import type { TargetConfig } from '../credentials/config.ts';
import { requestParams } from '../credentials/issuers/registry.ts';
import type { CredentialRequest } from '../credentials/issuers/registry.ts';
import { parseDuration } from '../common/duration.ts';
import { meaningful } from '../policy/purpose.ts';
import type { SessionContext } from './types.ts';

/** The body of POST /v1/credentials: common fields and the kind's own (credentials/issuers/registry.ts). */
export type IssueCredentialRequest = CredentialRequest;

export interface CredentialIssuanceDeps {
  clock: Clock;
  credentials: CredentialService;
  access: AccessService;
  /** Configured targets (default TTLs), so a lease under a grant never outlives the grant. */
  targets?: readonly TargetConfig[];
}

export class CredentialIssuance {
  readonly #d: CredentialIssuanceDeps;

  constructor(deps: CredentialIssuanceDeps) {
    this.#d = deps;
  }

  /** Issues a credential for the caller after a request-time decision; the lease records who, what, why. */
  async issue(s: SessionContext, body: IssueCredentialRequest, sourceIp: string): Promise<Issued> {
    const reason = meaningful(body.reason);
    if (reason === undefined) throw new InvalidInput('reason: blank or invisible text is no reason', 'reason');
    const now = this.#d.clock.now();
    const target = this.#d.credentials.targets().find((t) => t.name === body.target);
    // The caller's grants, read once: the lease is tied to one of them, and the decision counts them.
    const mine = (await this.#d.access.listGrants({ identityId: s.identity.id, activeAt: now })).map((x) => x.grant).filter(activeAt(now));
    const grant = await this.#grantForCredential(s, body.target, body.grant_id, target, mine, now);
    const ttl = grant ? this.#ttlWithin(grant, body) : body.ttl;
    // The target's kind reads its own request fields (public_key, csr, scopes…) into issuer params.
    const params = requestParams(target?.kind, body);
    return this.#d.credentials.issue({
      identityId: s.identity.id,
      target: body.target,
      ...(body.permission !== undefined && { permission: body.permission }),
      ...(ttl !== undefined && { ttl }),
      purpose: reason,
      params,
      session: { authn: s.authn, claims: s.claims, sourceIp, sessionId: s.jti },
      ...(target && { grants: await this.#d.access.grantContextOf(mine, { type: target.resourceType, id: body.target }, 'credential.issue') }),
      sessionId: s.jti,
      trust: s.authn.trust,
      ...(grant && { grantId: grant.id, notAfter: Date.parse(grant.end_at) }),
    });
  }

  /** A credential issued under a grant ends no later than the grant (its rules capped the grant). */
  #ttlWithin(grant: Grant, body: IssueCredentialRequest): string | number | undefined {
    const left = Date.parse(grant.end_at) - this.#d.clock.now();
    const asked = body.ttl !== undefined ? parseDuration(body.ttl, 'ttl') : this.#d.targets?.find((t) => t.name === body.target)?.default_ttl_ms;
    if (asked === undefined) return body.ttl;
    return asked > left ? Math.max(1000, left) : body.ttl ?? asked;
  }

  /**
   * The grant a credential is issued under: the one named (must be the caller's and active now),
   * else the caller's active grant for this target, else — when the caller holds other grants that
   * count for this target's resource (a role grant whose policy reaches it) — the one of those
   * that ends first: the decision may rest on it, so the lease never outlives it (renewals
   * included) and ending it reaches the lease.
   */
  async #grantForCredential(s: SessionContext, target: string, grantId: string | undefined, t: { resourceType: string } | undefined, mine: Grant[], now: number): Promise<Grant | undefined> {
    if (grantId !== undefined) {
      const g = await this.#d.access.grants.get(grantId);
      if (g.identity_id !== s.identity.id) throw new Forbidden(`grant ${grantId} is not yours`);
      if (!activeAt(now)(g)) throw new InvalidInput(`grant ${grantId} is not active`, 'grant_id');
      return g;
    }
    const covers = (g: Grant) =>
      g.target.kind === 'credential' ? g.target.target === target
      : g.target.kind === 'resource' ? t !== undefined && g.target.resource.type === t.resourceType && g.target.resource.id === target
      : false;
    const covering = mine.find(covers);
    if (covering || t === undefined) return covering;
    const counts = this.#d.access.qualifier({ type: t.resourceType, id: target }, 'credential.issue');
    const counting: Grant[] = [];
    for (const g of mine) if (await counts(g)) counting.push(g);
    return counting.sort((a, b) => Date.parse(a.end_at) - Date.parse(b.end_at))[0];
  }
}

/** A grant in force at `now`. */
function activeAt(now: number): (g: Grant) => boolean {
  return (g) => g.status === 'active' && Date.parse(g.start_at) <= now && now < Date.parse(g.end_at);
}
