// The inventory's admin API: each call is a Cedar decision on the identity before it acts, each
// change is audited, and taking an identity out of service ends what it holds. Memberships
// (Role/Team parents), owner and boundary are changed only under `identity.membership.write` and
// never by the identity itself or by anyone accountable for it: the hard rules below hold
// whatever policy says (docs/policy.md).
import type { AuditLog } from '../audit/log.ts';
import type { SessionService } from '../identity/sessions.ts';
import type { ApiKeyService } from '../identity/apikeys.ts';
import type { Identity, IdentityFilter, IdentityPage, IdentityInput, IdentityPatch, IdentityRegistry, IdentityStatus, OwnershipFacts } from '../inventory/identities.ts';
import { accountableHumans, checkIdentityId } from '../inventory/identities.ts';
import type { FindingsTrend } from '../governance/findings-trend.ts';
import type { Finding } from '../inventory/findings.ts';
import type { CredentialService } from '../credentials/index.ts';
import type { AccessService } from '../access/index.ts';
import type { Clock } from '../common/clock.ts';
import { InvalidInput, PortcullisError } from '../common/errors.ts';
import { isReservedId } from '../identity/binding.ts';
import type { Caller, SessionContext } from './types.ts';
import { recordAdminEvent } from './admin-event.ts';
import type { IdentityBinding } from './identity-binding.ts';
import type { Authorization } from './authorization.ts';
import { opaqueId } from './opaque.ts';
import type { Governance } from './governance.ts';

/** Patch fields that are `identity.membership.write`, never `identity.manage`. */
const MEMBERSHIP_FIELDS = ['parents', 'owner', 'boundary'] as const;

function touchesMemberships(patch: object): boolean {
  return MEMBERSHIP_FIELDS.some((f) => f in patch && (patch as Record<string, unknown>)[f] !== undefined);
}

/** An identity changing its own memberships, owner or boundary, or those of an identity it controls. */
export class SelfEscalation extends PortcullisError {
  constructor(message: string) {
    super('self_escalation', 403, message);
  }
}

/**
 * Making a way to act as another identity — minting or rotating an API key for it, binding it to
 * a trust — is taking its rights. Refused (whatever `apikey.manage` / `identity.bind` policy says)
 * when it would hand the caller a Role/Team membership it does not hold itself, or a reserved
 * identity (`user:admin`, `system:…`) — unless the caller may write policy (`policy.write`), and
 * so gains nothing by it. Otherwise those actions on an administrator are a way into its role.
 */
export async function checkActingAs(
  identities: Pick<IdentityRegistry, 'get'>,
  by: SessionContext,
  target: Pick<Identity, 'id' | 'kind' | 'parents'>,
  what: string,
  policyWriter?: (s: SessionContext) => Promise<boolean>,
): Promise<void> {
  const caller = by.identity.id;
  if (caller === target.id) return;
  // A person's API key is theirs alone: one held by someone else is a second "human" for them
  // (separation of duties) — whoever mints it, even a policy writer.
  if (what.includes('API key') && target.kind === 'user') throw new SelfEscalation(`${caller} cannot ${what} ${target.id}: a user's API key is minted by that user only`);
  let why: string | undefined;
  if (isReservedId(target.id)) why = `${caller} cannot ${what} the reserved identity ${target.id}`;
  else {
    const mine = new Set((identities.get(caller)?.parents ?? []).map((p) => `${p.type}::${p.id}`));
    const beyond = target.parents.filter((p) => !mine.has(`${p.type}::${p.id}`));
    if (beyond.length > 0) why = `${caller} cannot ${what} ${target.id}: it is a member of ${beyond.map((p) => `${p.type}::"${p.id}"`).join(', ')}, which ${caller} is not`;
  }
  if (why !== undefined && !(await policyWriter?.(by))) throw new SelfEscalation(why);
}

export interface IdentityAdminDeps {
  authz: Pick<Authorization, 'requireAllowed' | 'allows'>;
  clock: Clock;
  identities: IdentityRegistry;
  sessions: SessionService;
  credentials: CredentialService;
  access: AccessService;
  apikeys: ApiKeyService;
  audit: AuditLog;
  binding: IdentityBinding;
  governance: Pick<Governance, 'findings' | 'findingsTrend'>;
  /** Suspending or offboarding an identity ends what hangs on it elsewhere (an agent's assignments, a sponsor's agents). */
  onInactive?: (by: string, id: string, status: Exclude<IdentityStatus, 'active'>, reason: string) => Promise<void>;
}

type Shape = Pick<Identity, 'id' | 'kind' | 'owner' | 'parents' | 'boundary'>;

const uid = (id: string) => ({ type: 'Identity', id });

export class IdentityAdmin {
  readonly #d: IdentityAdminDeps;

  constructor(deps: IdentityAdminDeps) {
    this.#d = deps;
  }

  /** Who may see that an identity exists: itself, and whoever may read or manage it. */
  async #readable(c: Caller, id: string): Promise<boolean> {
    const { authz } = this.#d;
    return (await this.#d.identities.get(id)) !== undefined && (c.identity.id === id || (await authz.allows(c, 'identity.read', uid(id))) || authz.allows(c, 'identity.manage', uid(id)));
  }

  /** `identity.read` on every identity. */
  async list(c: Caller, filter: IdentityFilter = {}): Promise<Identity[]> {
    await this.#d.authz.requireAllowed(c, 'identity.read', uid('*'));
    return this.#d.identities.list(filter);
  }

  /** `identity.read` on every identity; one page of them (docs/inventory paging: `limit`, `after`). */
  async page(c: Caller, filter: IdentityFilter, o: { limit: number; after?: string }): Promise<IdentityPage> {
    await this.#d.authz.requireAllowed(c, 'identity.read', uid('*'));
    return this.#d.identities.page(filter, o);
  }

  async get(c: Caller, id: string): Promise<Identity> {
    return opaqueId('identity', id, () => false, async () => {
      await this.#d.authz.requireAllowed(c, 'identity.read', uid(id));
      return this.#d.identities.require(id);
    });
  }

  /** Posture findings over the inventory, API keys and leases (`identity.read` on every identity). */
  async findings(c: Caller, o: { staleAfterMs?: number; unusedAfterMs?: number } = {}): Promise<Finding[]> {
    await this.#d.authz.requireAllowed(c, 'identity.read', uid('*'));
    // Activity, observed use and over-privilege from the audit streams (governance, docs/governance.md).
    return this.#d.governance.findings(o);
  }

  /** Findings per day over the last `days` days, from the governance job's daily snapshots (`identity.read` on every identity). */
  async findingsTrend(c: Caller, days: number): Promise<FindingsTrend> {
    await this.#d.authz.requireAllowed(c, 'identity.read', uid('*'));
    return this.#d.governance.findingsTrend(days);
  }

  /** `identity.manage` on the new id, and `identity.membership.write` when it comes with parents. */
  async declare(by: Caller, input: IdentityInput & { trusts?: string[] }): Promise<Identity> {
    await this.#d.authz.requireAllowed(by, 'identity.manage', uid(input.id));
    // Memberships are their own action (identity.manage never grants them).
    if ((input.parents ?? []).length > 0) await this.#d.authz.requireAllowed(by, 'identity.membership.write', uid(input.id));
    checkIdentityId(input.id);
    this.#guard(by, undefined, { id: input.id, kind: input.kind, owner: input.owner ?? null, parents: input.parents ?? [], boundary: input.boundary });
    const { trusts, ...rest } = input;
    const identity = await this.#d.identities.declare({ ...rest, bound_trusts: this.#d.binding.resolve(input.id, trusts) }, 'api');
    await recordAdminEvent(this.#d.audit, by, 'identity.declared', { owner: identity.owner, kind: identity.kind, environment: identity.environment, parents: identity.parents, trusts: identity.bound_trusts }, identity.id, identity.boundary);
    return identity;
  }

  /** Owner, boundary and memberships are `identity.membership.write`; the other fields `identity.manage`. */
  async update(by: Caller, id: string, patch: IdentityPatch): Promise<Identity> {
    return opaqueId('identity', id, () => this.#readable(by, id), async () => {
      if (touchesMemberships(patch)) await this.#d.authz.requireAllowed(by, 'identity.membership.write', uid(id));
      const fields = patch as Record<string, unknown>;
      if (Object.keys(fields).some((k) => !touchesMemberships({ [k]: fields[k] }))) await this.#d.authz.requireAllowed(by, 'identity.manage', uid(id));
      return this.#update(by, id, patch);
    });
  }

  /** Sets the trusts allowed to prove an identity (`identity.bind`; `[]`: Portcullis-issued credentials only). */
  async bind(by: Caller, id: string, trusts: string[]): Promise<Identity> {
    return opaqueId('identity', id, () => this.#readable(by, id), async () => {
      await this.#d.authz.requireAllowed(by, 'identity.bind', uid(id));
      return this.#d.binding.bind(by, id, trusts);
    });
  }

  async #update(by: SessionContext, id: string, patch: IdentityPatch): Promise<Identity> {
    const before = this.#d.identities.require(id);
    // Labels are attributes policy may grant on (`principal.labels`): nobody relabels themselves.
    if (by.identity.id === id && patch.labels !== undefined && JSON.stringify(patch.labels) !== JSON.stringify(before.labels)) {
      throw new SelfEscalation('an identity cannot change its own labels (policy may grant on them); ask an administrator');
    }
    if (touchesMemberships(patch)) {
      this.#guard(by, before, {
        id, kind: before.kind, owner: patch.owner !== undefined ? patch.owner : before.owner,
        parents: patch.parents ?? before.parents, boundary: patch.boundary ?? before.boundary,
      });
    }
    const after = await this.#d.identities.update(id, patch);
    const changed = Object.fromEntries(Object.keys(patch).map((k) => [k, { from: before[k as keyof Identity], to: after[k as keyof Identity] }]));
    await recordAdminEvent(this.#d.audit, by, 'identity.updated', { changed }, id, after.boundary);
    return after;
  }

  /**
   * The hard rules: no identity changes its own memberships, owner or boundary; an identity never
   * owns itself and owner chains never loop; nobody adds parents to an identity they control (are
   * accountable for, or sit in the owner chain of), takes control of one that has parents, or
   * declares one they control with parents.
   */
  #guard(by: SessionContext, before: Identity | undefined, after: Shape): void {
    const caller = by.identity.id;
    if (before !== undefined && caller === after.id) {
      const what = MEMBERSHIP_FIELDS.filter((f) => JSON.stringify(before[f]) !== JSON.stringify(after[f]));
      if (what.length > 0) throw new SelfEscalation(`an identity cannot change its own ${what.join(', ')}; ask an administrator`);
    }
    if (after.owner !== null && after.owner !== (before?.owner ?? null)) {
      if (after.owner === after.id) throw new InvalidInput('owner: an identity cannot own itself', 'owner');
      if (this.#chain(after.owner, after).has(after.id)) throw new InvalidInput(`owner: ${after.owner} is owned (through its owner chain) by ${after.id}; owner chains cannot loop`, 'owner');
    }
    const controlsBefore = before !== undefined && this.#controls(caller, before);
    const controlsAfter = this.#controls(caller, after);
    const key = (p: { type: string; id: string }) => `${p.type}::${p.id}`;
    const had = new Set((before?.parents ?? []).map(key));
    const added = after.parents.filter((p) => !had.has(key(p)));
    if (before !== undefined && controlsBefore && after.owner !== before.owner) {
      // Handing away (or re-pointing) an identity one controls would make it someone else — a second
      // "human" to approve one's own requests. Another administrator must.
      throw new SelfEscalation(`${caller} controls ${after.id} (owner chain) and cannot change its owner; another administrator must`);
    }
    if (controlsAfter && added.length > 0) {
      throw new SelfEscalation(`${caller} controls ${after.id} (owner chain) and cannot add it to ${added.map((p) => `${p.type}::"${p.id}"`).join(', ')}; another administrator must`);
    }
    if (controlsAfter && !controlsBefore && after.parents.length > 0) {
      throw new SelfEscalation(`${caller} cannot take control of ${after.id}, which is a member of ${after.parents.map((p) => `${p.type}::"${p.id}"`).join(', ')}`);
    }
  }

  /** Lookup that sees `shape` as it would be after the change. */
  #lookup(shape: Shape): (id: string) => OwnershipFacts | undefined {
    return (id) => (id === shape.id ? shape : this.#d.identities.get(id));
  }

  /** Every id on the owner chain of `start` (teams included, not their members). */
  #chain(start: string, shape: Shape): Set<string> {
    const seen = new Set<string>();
    const lookup = this.#lookup(shape);
    for (let cur: string | null = start; cur !== null && !seen.has(cur); cur = lookup(cur)?.owner ?? null) seen.add(cur);
    return seen;
  }

  /** The caller is the identity, sits on its owner chain, or shares an accountable human with it. */
  #controls(caller: string, target: Shape): boolean {
    if (caller === target.id) return true;
    if (target.owner !== null && this.#chain(target.owner, target).has(caller)) return true;
    const lookup = this.#lookup(target);
    const members = (team: string) => this.#d.identities.members('Team', team);
    const mine = new Set([caller, ...this.#d.identities.accountableHumans(caller)]);
    return accountableHumans(target.id, lookup, members).some((h) => mine.has(h));
  }

  /**
   * Suspend, reactivate or offboard (`identity.manage`). Suspending or offboarding ends every live
   * session of the identity at once, revokes its leases and ends its grants (reactivation does not
   * bring one back; docs/access.md).
   */
  async setStatus(by: Caller, id: string, status: IdentityStatus, reason: string): Promise<Identity> {
    return opaqueId('identity', id, () => this.#readable(by, id), async () => {
      await this.#d.authz.requireAllowed(by, 'identity.manage', uid(id));
      return setIdentityStatus(this.#d, id, status, by.identity.id, reason, (identity) => recordAdminEvent(this.#d.audit, by, `identity.${status}`, { reason }, id, identity.boundary));
    });
  }
}

/**
 * Changes an identity's status; suspending or offboarding ends its sessions, leases and grants
 * (offboarding also its API keys). `record` audits the change (an API caller's, or the system's).
 */
export async function setIdentityStatus(
  d: Pick<IdentityAdminDeps, 'identities' | 'sessions' | 'credentials' | 'apikeys' | 'access' | 'onInactive'>,
  id: string,
  status: IdentityStatus,
  by: string,
  reason: string,
  record: (identity: Identity) => Promise<void>,
): Promise<Identity> {
  const identity = await d.identities.setStatus(id, status);
  if (status !== 'active') {
    await d.sessions.revokeIdentity(id);
    await d.credentials.revoke({ identity: id }, { by, reason: `identity ${status}: ${reason}` });
  }
  if (status === 'offboarded') await d.apikeys.revokeAllFor(id, 'identity offboarded');
  await record(identity);
  if (status !== 'active') {
    await d.access.endAllGrantsOf(id, by, `identity ${status}`);
    await d.onInactive?.(by, id, status, reason);
  }
  return identity;
}
