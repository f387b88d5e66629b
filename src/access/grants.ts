// Grants: time-bound access produced by an approved request or a break-glass. Active grants feed
// the decision context (`context.grants`) and add temporary role parents to the principal. Ending
// a grant (time, revocation, logout when session-bound) revokes the leases issued under it.
import type { ChangeFeed, UnitOfWork } from '../store/ports.ts';
import { randomUUID } from 'node:crypto';
import type { AuditSink } from '../audit/types.ts';
import type { Clock } from '../common/clock.ts';
import { NotFound } from '../common/errors.ts';
import type { EntityUid } from '../policy/engine/types.ts';
import { KeyedLock } from '../common/keyed-lock.ts';
import type { AccessStore, GrantFilter } from './ports.ts';
import type { AccessTarget, Grant, GrantContext, GrantKind, Notifier, RevokeLeases } from './types.ts';

/**
 * The strings a target contributes to `context.grants`:
 * - role `db-admin` → `role:db-admin` (and parent `Role::"db-admin"`)
 * - resource + actions → `Database::orders:db.admin` per action
 * - credential → `credential:<target>` and `credential:<target>:<permission>`
 * - break-glass on a resource → `breakglass:Database::orders`
 */
function grantStrings(target: AccessTarget, kind: GrantKind = 'request'): string[] {
  if (kind === 'break-glass') {
    const r = target.kind === 'resource' ? target.resource : target.kind === 'credential' ? target.resource : undefined;
    if (target.kind === 'credential') return [`breakglass:credential:${target.target}`, ...(r ? [`breakglass:${r.type}::${r.id}`] : [])];
    if (target.kind === 'role') return [`breakglass:role:${target.role}`];
    return [`breakglass:${r!.type}::${r!.id}`];
  }
  switch (target.kind) {
    case 'role':
      return [`role:${target.role}`];
    case 'resource':
      return target.actions.map((a) => `${target.resource.type}::${target.resource.id}:${a}`);
    case 'credential':
      return [`credential:${target.target}`, ...(target.permission ? [`credential:${target.target}:${target.permission}`] : [])];
  }
}

function grantRoles(target: AccessTarget): EntityUid[] {
  return target.kind === 'role' ? [{ type: 'Role', id: target.role }] : [];
}

export interface GrantInput {
  kind: GrantKind;
  identityId: string;
  requestId: string | null;
  target: AccessTarget;
  what: string;
  startAt: number;
  endAt: number;
  sessionBound: boolean;
  reason: string;
  revokers?: string[];
}

export interface GrantsDeps {
  store: AccessStore;
  unitOfWork: UnitOfWork;
  /** Announces new grants to the other replicas and hears of theirs. */
  changes?: ChangeFeed;
  clock: Clock;
  audit: AuditSink;
  revokeLeases: RevokeLeases;
  notifier: Notifier;
  onError?: (err: unknown) => void;
}

export class Grants {
  readonly #d: GrantsDeps;
  readonly #lock = new KeyedLock();
  /**
   * Identities holding at least one grant not yet ended. Most principals hold none, so their
   * decisions skip the grants query entirely; a stale member only costs one query. Loaded on the
   * first decision, then kept up to date by `insert` and by other replicas' notices (reloaded in
   * full after notices may have been missed).
   */
  readonly #holders = new Set<string>();
  #holdersLoaded: Promise<void> | undefined;

  constructor(deps: GrantsDeps) {
    this.#d = deps;
    deps.changes?.subscribe('grant', (identityId) => {
      this.#holders.add(identityId);
    });
    deps.changes?.onResync(async () => {
      if (this.#holdersLoaded === undefined) return; // not loaded yet: the first decision loads it
      this.#holdersLoaded = undefined;
      await this.#loadHolders();
    });
  }

  #loadHolders(): Promise<void> {
    this.#holdersLoaded ??= this.#d.store.grants.holders().then(
      (ids) => {
        for (const id of ids) this.#holders.add(id);
      },
      (err: unknown) => {
        this.#holdersLoaded = undefined;
        throw err;
      },
    );
    return this.#holdersLoaded;
  }

  /** Inserts a grant; the caller audits the event that produced it. */
  async insert(input: GrantInput): Promise<Grant> {
    const id = `grt_${randomUUID()}`;
    const changes = this.#d.changes;
    await this.#d.unitOfWork.transaction(async () => {
      await this.#d.store.grants.create({
        id, kind: input.kind, identity_id: input.identityId, request_id: input.requestId, target: input.target, what: input.what,
        grants: grantStrings(input.target, input.kind), roles: grantRoles(input.target),
        start_at: input.startAt, end_at: input.endAt, session_bound: input.sessionBound, reason: input.reason, revokers: input.revokers ?? [],
      });
      await changes?.publish('grant', input.identityId);
    });
    this.#holders.add(input.identityId);
    return this.get(id);
  }

  /** Distinct approvals the request behind a grant received (0 for a break-glass). */
  async approvals(g: Grant): Promise<number> {
    if (g.request_id === null) return 0;
    return this.#d.store.requests.approvals(g.request_id);
  }

  async get(id: string): Promise<Grant> {
    const g = await this.#d.store.grants.get(id);
    if (!g) throw new NotFound(`grant ${id}`);
    return g;
  }

  list(f: GrantFilter = {}, limit = 500): Promise<Grant[]> {
    return this.#d.store.grants.list(f, limit);
  }

  /** An identity's grants in force at `now`, latest start first; no query when it holds none. */
  async activeFor(identityId: string, now: number): Promise<Grant[]> {
    await this.#loadHolders();
    if (!this.#holders.has(identityId)) return [];
    return this.list({ identityId, activeAt: now });
  }

  /**
   * The decision context for one identity now. Time is checked here, not by the sweeper, so a
   * grant stops counting at its end even if the sweeper has not run yet. `breakGlass` is true
   * only when an active break-glass covers `resource` (or any, when no resource is given).
   */
  async contextFor(identityId: string, opts: { now?: number; resource?: EntityUid; qualifies?: (g: Grant) => Promise<boolean> } = {}): Promise<GrantContext> {
    await this.#loadHolders();
    if (!this.#holders.has(identityId)) return { grants: [], parents: [], breakGlass: false, grantIds: [] };
    const now = opts.now ?? this.#d.clock.now();
    return grantContext(await this.list({ identityId, activeAt: now }), opts);
  }

  /** Ends a grant (idempotent) and revokes its leases. */
  end(id: string, opts: { by: string; reason: string; type?: string }): Promise<Grant> {
    return this.#lock.run(id, async () => {
      const g = await this.get(id);
      if (g.status === 'ended') return g;
      const now = this.#d.clock.now();
      await this.#d.audit.append({
        stream: 'admin',
        type: opts.type ?? (g.kind === 'break-glass' ? 'breakglass.ended' : 'grant.ended'),
        actor: opts.by,
        subject: g.identity_id,
        payload: { grant_id: g.id, request_id: g.request_id, what: g.what, kind: g.kind, reason: opts.reason, end_at: g.end_at },
      });
      await this.#d.store.grants.end(id, { at: now, by: opts.by, reason: opts.reason });
      const ended = await this.get(id);
      this.#d.notifier.notify(g.kind === 'break-glass' ? 'breakglass.ended' : 'grant.ended', {
        grant: summary(ended),
        ended_by: opts.by,
        reason: opts.reason,
      });
      await this.#revokeLeases(ended);
      return ended;
    });
  }

  async #revokeLeases(g: Grant): Promise<void> {
    try {
      await this.#d.revokeLeases({ grantId: g.id }, { by: g.ended_by ?? 'system:access', reason: `grant ${g.id} ended: ${g.end_reason ?? ''}` });
      await this.#d.store.grants.markLeasesRevoked(g.id);
    } catch (err) {
      // Left marked as not revoked: the sweeper retries.
      this.#d.onError?.(err);
    }
  }

  /** Ends every session-bound grant of an identity (called on logout). */
  async endSessionBound(identityId: string, by: string): Promise<Grant[]> {
    const out: Grant[] = [];
    for (const id of await this.#d.store.grants.activeSessionBound(identityId)) out.push(await this.end(id, { by, reason: 'requester logged out (session-bound grant)' }));
    return out;
  }

  /** Ends grants past their end time; retries lease revocation that failed earlier. */
  async sweep(now = this.#d.clock.now()): Promise<{ ended: string[]; retried: string[] }> {
    const due = await this.#d.store.grants.due(now);
    const ended: string[] = [];
    for (const id of due) {
      await this.end(id, { by: 'system:expiry', reason: 'grant reached its end time' });
      ended.push(id);
    }
    const retry = await this.#d.store.grants.leasesToRevoke();
    for (const id of retry) if (!ended.includes(id)) await this.#revokeLeases(await this.get(id));
    return { ended, retried: retry.filter((id) => !ended.includes(id)) };
  }
}

/**
 * The decision context of grants already read (active now, one identity's): `context.grants`,
 * temporary role parents, and `breakGlass` when an active break-glass covers `resource` (or any,
 * when no resource is given). Only grants `qualifies` accepts count.
 */
export async function grantContext(active: readonly Grant[], opts: { resource?: EntityUid; qualifies?: (g: Grant) => Promise<boolean> } = {}): Promise<GrantContext> {
  const counted: Grant[] = [];
  for (const g of active) if ((await opts.qualifies?.(g)) ?? true) counted.push(g);
  const grants = new Set<string>();
  const parents = new Map<string, EntityUid>();
  let breakGlass = false;
  for (const g of counted) {
    for (const s of g.grants) grants.add(s);
    for (const p of g.roles) parents.set(`${p.type}::${p.id}`, p);
    if (g.kind === 'break-glass' && (opts.resource === undefined || coversResource(g.target, opts.resource))) breakGlass = true;
  }
  return { grants: [...grants].sort(), parents: [...parents.values()], breakGlass, grantIds: counted.map((g) => g.id) };
}

export function coversResource(target: AccessTarget, r: EntityUid): boolean {
  const t = target.kind === 'resource' ? target.resource : target.kind === 'credential' ? target.resource : undefined;
  return t !== undefined && t.type === r.type && t.id === r.id;
}

/** The non-secret view of a grant sent in notifications. */
export function summary(g: Grant): Record<string, unknown> {
  return { id: g.id, kind: g.kind, identity: g.identity_id, what: g.what, start_at: g.start_at, end_at: g.end_at, status: g.status, request_id: g.request_id };
}
