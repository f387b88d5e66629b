// Revocation by selector: a lease, an identity, every identity of an owner (offboarding), a target,
// a trust, a session or a decision. Everything matching is revoked; each revoked item gets its own
// `admin` audit event (written by the revoker). Plus revalidation after a policy change.
import { InvalidInput } from '../common/errors.ts';
import type { LeaseRepository } from './ports.ts';
import type { Decide, DecisionRequest, DelegationFacts, Lease, LeaseStatus, SessionFacts } from './types.ts';

export type RevocationSelector =
  | { lease: string }
  | { identity: string }
  | { owner: string }
  | { target: string }
  | { trust: string }
  | { session: string }
  | { decision: string }
  /** Every lease issued under an access grant (ending the grant ends them). */
  | { grant: string };

const SELECTOR_KEYS = ['lease', 'identity', 'owner', 'target', 'trust', 'session', 'decision', 'grant'] as const;

/** Validates an untrusted selector (HTTP body, CLI flags): exactly one non-empty key. */
export function parseSelector(raw: unknown, field = 'selector'): RevocationSelector {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new InvalidInput(`${field}: expected an object with one of ${SELECTOR_KEYS.join(', ')}`, field);
  }
  const keys = Object.keys(raw);
  if (keys.length !== 1 || !(SELECTOR_KEYS as readonly string[]).includes(keys[0]!)) {
    throw new InvalidInput(`${field}: expected exactly one of ${SELECTOR_KEYS.join(', ')}`, field);
  }
  const k = keys[0]!;
  const v = (raw as Record<string, unknown>)[k];
  if (typeof v !== 'string' || v.trim() === '' || v.length > 512) {
    throw new InvalidInput(`${field}.${k}: expected a non-empty string`, `${field}.${k}`);
  }
  return { [k]: v } as RevocationSelector;
}

/** Looks up identities for owner- and trust-wide revocation (provided by inventory/identity). */
export interface RevocationResolvers {
  identitiesOfOwner?(owner: string): Promise<string[]> | string[];
  identitiesOfTrust?(trust: string): Promise<string[]> | string[];
}

/**
 * Which of these leases (being issued, not on record yet) a selector matches, as selectLeases
 * would once they are recorded.
 */
export async function matchInFlight(leases: readonly Lease[], sel: RevocationSelector, resolvers: RevocationResolvers): Promise<Lease[]> {
  if (leases.length === 0) return [];
  if ('lease' in sel) return leases.filter((l) => l.id === sel.lease);
  if ('identity' in sel) return leases.filter((l) => l.identityId === sel.identity);
  if ('target' in sel) return leases.filter((l) => l.target === sel.target);
  if ('session' in sel) return leases.filter((l) => l.sessionId === sel.session);
  if ('decision' in sel) return leases.filter((l) => l.decisionId === sel.decision);
  if ('grant' in sel) return leases.filter((l) => l.grantId === sel.grant);
  if ('owner' in sel) {
    if (!resolvers.identitiesOfOwner) throw new InvalidInput('selector.owner: no owner resolver is configured', 'selector.owner');
    const ids = new Set(await resolvers.identitiesOfOwner(sel.owner));
    return leases.filter((l) => ids.has(l.identityId));
  }
  const ids = new Set(resolvers.identitiesOfTrust ? await resolvers.identitiesOfTrust(sel.trust) : []);
  return leases.filter((l) => l.trust === sel.trust || ids.has(l.identityId));
}

/** Statuses a selector revocation acts on: everything that may still hold a credential. */
const REVOCABLE: LeaseStatus[] = ['issuing', 'active', 'revoking', 'revoke_failed'];

export async function selectLeases(store: LeaseRepository, sel: RevocationSelector, resolvers: RevocationResolvers): Promise<Lease[]> {
  const status = REVOCABLE;
  if ('lease' in sel) {
    const l = await store.get(sel.lease);
    return l && REVOCABLE.includes(l.status) ? [l] : [];
  }
  if ('identity' in sel) return store.list({ identityId: sel.identity, status }, 100_000);
  if ('target' in sel) return store.list({ target: sel.target, status }, 100_000);
  if ('session' in sel) return store.list({ sessionId: sel.session, status }, 100_000);
  if ('decision' in sel) return store.list({ decisionId: sel.decision, status }, 100_000);
  if ('grant' in sel) return store.list({ grantId: sel.grant, status }, 100_000);
  if ('owner' in sel) {
    if (!resolvers.identitiesOfOwner) throw new InvalidInput('selector.owner: no owner resolver is configured', 'selector.owner');
    const ids = await resolvers.identitiesOfOwner(sel.owner);
    return store.list({ identityId: ids, status }, 100_000);
  }
  // trust: leases recorded as issued through the trust, plus every identity the trust vouches for.
  const byTrust = await store.list({ trust: sel.trust, status }, 100_000);
  const ids = resolvers.identitiesOfTrust ? await resolvers.identitiesOfTrust(sel.trust) : [];
  const byIdentity = ids.length ? await store.list({ identityId: ids, status }, 100_000) : [];
  const seen = new Map<string, Lease>();
  for (const l of [...byTrust, ...byIdentity]) seen.set(l.id, l);
  return [...seen.values()];
}

export interface RevokeOptions {
  /** Identity id of who revokes (or `system:reaper`, `system:policy`, `system:reconcile`). */
  by: string;
  reason: string;
  /** Final status on success: `expired` for the reaper, otherwise `revoked`. */
  final?: 'revoked' | 'expired';
}

export interface RevokeOutcome {
  leaseId: string;
  /** `pending`: the lease was mid-issuance; the issuing call revokes it when it completes. */
  status: 'revoked' | 'expired' | 'revoke_failed' | 'unchanged' | 'pending';
  error?: string;
}

export interface LeaseRevoker {
  revokeLease(id: string, opts: RevokeOptions): Promise<RevokeOutcome>;
}

export interface BulkRevocationResult {
  matched: number;
  revoked: RevokeOutcome[];
  failed: RevokeOutcome[];
}

/** Revokes every lease matching the selector; never stops at the first failure. */
export async function revokeMatching(revoker: LeaseRevoker, leases: Lease[], opts: RevokeOptions): Promise<BulkRevocationResult> {
  const out: BulkRevocationResult = { matched: leases.length, revoked: [], failed: [] };
  // Parallel, bounded: offboarding an owner with many leases should still finish in seconds.
  const queue = [...leases];
  const worker = async () => {
    for (let l = queue.shift(); l; l = queue.shift()) {
      try {
        const r = await revoker.revokeLease(l.id, opts);
        (r.status === 'revoke_failed' ? out.failed : out.revoked).push(r);
      } catch (e) {
        out.failed.push({ leaseId: l.id, status: 'revoke_failed', error: (e as Error).message });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(8, leases.length) }, worker));
  return out;
}

export interface RevalidationResult extends BulkRevocationResult {
  checked: number;
  /** Leases whose decision could not be made; kept, reported, to be re-checked by the caller. */
  errors: { leaseId: string; error: string }[];
}

/** The session facts (and delegation chain) stored with a lease at issuance, as a typed decision needs them. */
export function storedFacts(l: Lease): { session: SessionFacts; delegation?: DelegationFacts } {
  const c = (l.params.context ?? {}) as SessionFacts & { delegation?: DelegationFacts };
  const session: SessionFacts = {
    ...(c.authn !== undefined && { authn: c.authn }),
    ...(c.claims !== undefined && { claims: c.claims }),
    ...(c.sessionId !== undefined && { sessionId: c.sessionId }),
    ...(c.sourceIp !== undefined && { sourceIp: c.sourceIp }),
  };
  return { session, ...(c.delegation !== undefined && { delegation: c.delegation }) };
}

/** The decision a lease is re-decided with (renewal, policy change): its stored facts, its current terms. */
export function leaseDecisionRequest(l: Lease, resourceType: string, now: number, o: { ttlSeconds?: number; renewal?: boolean; revalidation?: boolean }): DecisionRequest {
  return {
    identityId: l.identityId,
    action: 'credential.issue',
    resource: { type: resourceType, id: l.target },
    ...storedFacts(l),
    purpose: l.purpose,
    credential: {
      kind: l.kind,
      target: l.target,
      permission: l.permission,
      ttlSeconds: o.ttlSeconds ?? Math.max(0, Math.ceil((l.expiresAt - now) / 1000)),
      renewal: o.renewal === true,
      revalidation: o.revalidation === true,
    },
  };
}

/**
 * After a policy change: re-decide every active lease against the new policy and revoke those it
 * no longer allows. A decision that errors keeps the lease and is reported (a PDP outage must
 * not become a mass revocation); explicit denies are revoked.
 */
export async function revalidateAll(
  store: LeaseRepository,
  revoker: LeaseRevoker,
  decide: Decide,
  resourceTypeOf: (target: string) => string | undefined,
  now: number,
  by = 'system:policy',
): Promise<RevalidationResult> {
  const active = await store.list({ status: 'active' }, 1_000_000);
  const denied: Lease[] = [];
  const errors: { leaseId: string; error: string }[] = [];
  for (const l of active) {
    const type = resourceTypeOf(l.target);
    if (!type) {
      denied.push(l); // the target is gone from config: nothing can allow it any more
      continue;
    }
    try {
      const d = await decide(leaseDecisionRequest(l, type, now, { revalidation: true }));
      if (d.decision !== 'allow') denied.push(l);
    } catch (e) {
      errors.push({ leaseId: l.id, error: (e as Error).message });
    }
  }
  const res = await revokeMatching(revoker, denied, { by, reason: 'policy change: no longer allowed' });
  return { ...res, checked: active.length, errors };
}
