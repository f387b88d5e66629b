// RFC 7662 token introspection for resource servers (an API or MCP server behind Portcullis that
// cannot see the lease table): a Portcullis access token is active while its signature, audience
// and expiry hold, its lease is active, its subject and every actor of its chain are active, and —
// for an agent's token — its assignment is live. This is where the kill switch reaches a token.
import { createLocalJWKSet, decodeJwt } from 'jose';
import type { JWK } from 'jose';
import { actorsOf, verifyAccessToken } from '../credentials/index.ts';
import type { ApiTarget } from '../credentials/index.ts';
import type { DelegationDeps } from './delegation.ts';
import type { AssignmentReader } from '../agents/types.ts';

/** The delegation exchange's view of the broker, and the assignments. */
export interface IntrospectionDeps extends DelegationDeps {
  agents: AssignmentReader;
}

/** RFC 7662 §2.2: `{ active: false }` and nothing else, or the token's claims. */
export type Introspection = { active: false } | ({ active: true } & Record<string, unknown>);

/**
 * Whether `token` is live now, for `resource` when given (a token is never active for another
 * audience than its own). Never throws on a bad token: it is simply not active.
 */
export async function introspectToken(d: IntrospectionDeps, token: string, resource?: string): Promise<Introspection> {
  const inactive = { active: false } as const;
  if (typeof token !== 'string' || token.length === 0 || token.length > 16_384) return inactive;
  let aud: unknown;
  try {
    aud = decodeJwt(token).aud;
  } catch {
    return inactive;
  }
  if (typeof aud !== 'string' || (resource !== undefined && aud !== resource)) return inactive;
  const target = d.config.targets.find((t): t is ApiTarget => t.kind === 'api' && t.audience === aud);
  if (!target) return inactive;
  let v: Awaited<ReturnType<typeof verifyAccessToken>>;
  try {
    v = await verifyAccessToken(token, createLocalJWKSet(d.publicJwks() as { keys: JWK[] }), { issuer: d.issuer, audience: target.audience, currentDate: new Date(d.clock.now()), clockToleranceSec: 0 });
  } catch {
    return inactive;
  }
  const lease = await d.credentials.introspect('api', v.jti);
  if (!lease.active) return inactive;
  for (const id of [v.sub, ...actorsOf(v.act)]) {
    const i = await d.identities.current(id);
    if (!i || i.status !== 'active') return inactive;
  }
  if (v.asg !== undefined) {
    const a = await d.agents.get(v.asg);
    if (!a || a.status !== 'active' || a.delegatorId !== v.sub) return inactive;
  }
  const c = v.claims;
  return {
    active: true,
    token_type: 'Bearer',
    iss: c.iss,
    sub: v.sub,
    aud,
    scope: v.scopes.join(' '),
    client_id: v.clientId,
    jti: v.jti,
    iat: c.iat,
    exp: c.exp,
    ...(v.act && { act: v.act }),
    ...(v.asg !== undefined && { asg: v.asg }),
  };
}
