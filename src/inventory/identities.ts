// The registry of every principal: who it is, who owns it, why it exists, where it lives, whether it
// may still authenticate. Reads come from memory (decision hot path); writes go through the store.
import type { ChangeFeed, UnitOfWork } from '../store/ports.ts';
import type { InventoryStore } from './ports.ts';
import type { IdentityKind } from '../identity/types.ts';
import { IDENTITY_KINDS } from '../identity/types.ts';
import { kindOfId } from '../identity/binding.ts';
import type { Clock } from '../common/clock.ts';
import { Conflict, InvalidInput, NotFound } from '../common/errors.ts';
import { KeyedLock } from '../common/keyed-lock.ts';

export type IdentityStatus = 'active' | 'suspended' | 'offboarded';
export type IdentitySource = 'config' | 'api' | 'trust';

export interface Identity {
  id: string;
  kind: IdentityKind;
  boundary: string;
  environment: string;
  owner: string | null;
  purpose: string | null;
  labels: Record<string, string>;
  /** Team/Role memberships: Cedar parent entities. */
  parents: { type: string; id: string }[];
  status: IdentityStatus;
  source: IdentitySource;
  /** Trust that registered it on first login, if any. */
  trust: string | null;
  /**
   * The trusts allowed to prove it (docs/identity.md, binding): the registering trust, or those
   * its declaration names or implies. `[]`: only credentials Portcullis issued for it. `null`:
   * not bound yet (an identity from before binding that could not be bound): refused until an
   * administrator binds it.
   */
  bound_trusts: string[] | null;
  created_at: string;
  updated_at: string;
  last_authenticated_at: string | null;
}

export type IdentityInput = Pick<Identity, 'id' | 'kind' | 'boundary' | 'environment'> &
  Partial<Pick<Identity, 'owner' | 'purpose' | 'labels' | 'parents'>> & { bound_trusts?: string[] | null };

export interface IdentityPatch {
  owner?: string | null;
  purpose?: string | null;
  labels?: Record<string, string>;
  parents?: { type: string; id: string }[];
  boundary?: string;
  environment?: string;
}

export interface IdentityFilter {
  kind?: IdentityKind;
  boundary?: string;
  environment?: string;
  owner?: string;
  status?: IdentityStatus;
  /** Case-insensitive text found in the id, owner or purpose. */
  q?: string;
}

/** One page of a filtered inventory, in id order (code units), and where the next one starts. */
export interface IdentityPage {
  identities: Identity[];
  /** How many identities match the filter in all. */
  total: number;
  /** Pass as `after` for the next page; null on the last one. */
  next_after: string | null;
}

function matches(i: Identity, filter: IdentityFilter, q: string | undefined): boolean {
  return (
    (filter.kind === undefined || i.kind === filter.kind) &&
    (filter.boundary === undefined || i.boundary === filter.boundary) &&
    (filter.environment === undefined || i.environment === filter.environment) &&
    (filter.owner === undefined || i.owner === filter.owner) &&
    (filter.status === undefined || i.status === filter.status) &&
    (q === undefined || i.id.toLowerCase().includes(q) || (i.owner ?? '').toLowerCase().includes(q) || (i.purpose ?? '').toLowerCase().includes(q))
  );
}

/** Identity ids: a kind-ish prefix, then a path. No spaces, quotes or control characters. */
export const IDENTITY_ID_RE = /^[a-z][a-z0-9-]*:[A-Za-z0-9._@/+:=-]{1,255}$/;

export function checkIdentityId(id: unknown, field = 'id'): string {
  if (typeof id !== 'string' || !(IDENTITY_ID_RE.test(id) || /^spiffe:\/\/[a-z0-9._-]+(\/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)+$/.test(id))) {
    throw new InvalidInput(`${field} must look like "workload:github/acme/api" or a SPIFFE ID`, field);
  }
  if (id.includes('..')) throw new InvalidInput(`${field} must not contain ".."`, field);
  return id;
}

/** What the registry needs of the store: its repository and the unit of work. */
export type RegistryStore = UnitOfWork & { readonly inventory: InventoryStore; readonly changes: ChangeFeed };

export class IdentityRegistry {
  readonly #store: RegistryStore;
  readonly #clock: Clock;
  readonly #boundaries: ReadonlySet<string>;
  // The whole table, loaded at open, updated after each write this process commits and reloaded
  // (one identity, or all after a reconnect) on another replica's change notice.
  readonly #cache = new Map<string, Identity>();
  /** Per id, the sequence number of the write the cache holds (writes may finish out of order). */
  readonly #cachedSeq = new Map<string, number>();
  #seq = 0;
  /** Replicas share the store: `current` reads through. */
  #shared = false;
  /** One identity's own writes and reloads run one at a time, so a reload never lands over a newer write. */
  readonly #lock = new KeyedLock();

  /** Loads every identity through the store into memory; reads are served from there. */
  static async open(store: RegistryStore, clock: Clock, boundaries: readonly string[], opts: { shared?: boolean } = {}): Promise<IdentityRegistry> {
    const registry = new IdentityRegistry(store, clock, boundaries);
    registry.#shared = opts.shared ?? false;
    store.changes.subscribe('identity', (id) => registry.#reload(id));
    store.changes.onResync(() => registry.#reloadAll());
    for (const identity of await store.inventory.identities.list()) registry.#cache.set(identity.id, identity);
    return registry;
  }

  /** Another replica changed `id`: take the stored row. */
  #reload(id: string): Promise<void> {
    return this.#lock.run(id, async () => {
      const seq = ++this.#seq;
      const identity = await this.#store.inventory.identities.get(id);
      if (identity) this.#apply(identity, seq);
      else if (seq >= (this.#cachedSeq.get(id) ?? 0)) this.#cache.delete(id);
    });
  }

  /** Notices may have been missed: take every stored row. */
  async #reloadAll(): Promise<void> {
    const seq = ++this.#seq;
    const all = await this.#store.inventory.identities.list();
    const seen = new Set<string>();
    for (const identity of all) {
      seen.add(identity.id);
      this.#apply(identity, seq);
    }
    for (const id of [...this.#cache.keys()]) if (!seen.has(id) && seq >= (this.#cachedSeq.get(id) ?? 0)) this.#cache.delete(id);
  }

  private constructor(store: RegistryStore, clock: Clock, boundaries: readonly string[]) {
    this.#store = store;
    this.#clock = clock;
    this.#boundaries = new Set(boundaries);
  }

  get(id: string): Identity | undefined {
    return this.#cache.get(id);
  }

  /**
   * The identity as stored now, for decisions that must not trust a notice still on its way (a
   * login right after another replica suspended it): read through when replicas share the store,
   * from memory otherwise (this process made every change).
   */
  async current(id: string): Promise<Identity | undefined> {
    if (this.#shared) await this.#reload(id);
    return this.#cache.get(id);
  }

  require(id: string): Identity {
    const found = this.#cache.get(id);
    if (!found) throw new NotFound(`identity ${id}`);
    return found;
  }

  list(filter: IdentityFilter = {}): Identity[] {
    const q = filter.q?.toLowerCase();
    return [...this.#cache.values()].filter((i) => matches(i, filter, q)).sort((a, b) => a.id.localeCompare(b.id));
  }

  /**
   * At most `limit` matching identities with ids after `after` (server-side paging over a large
   * inventory: one pass, and only the page's candidates are kept sorted).
   */
  page(filter: IdentityFilter, o: { limit: number; after?: string }): IdentityPage {
    const q = filter.q?.toLowerCase();
    let total = 0;
    // The `limit + 1` smallest ids after the cursor, kept sorted: one more tells whether a next page exists.
    const best: Identity[] = [];
    for (const i of this.#cache.values()) {
      if (!matches(i, filter, q)) continue;
      total++;
      if (o.after !== undefined && i.id <= o.after) continue;
      if (best.length > o.limit && i.id >= best[best.length - 1]!.id) continue;
      let lo = 0;
      let hi = best.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (best[mid]!.id < i.id) lo = mid + 1;
        else hi = mid;
      }
      best.splice(lo, 0, i);
      if (best.length > o.limit + 1) best.pop();
    }
    const more = best.length > o.limit;
    const identities = best.slice(0, o.limit);
    return { identities, total, next_after: more ? identities[identities.length - 1]!.id : null };
  }

  /**
   * Declares an identity from config or the API. Config declarations update in place; an
   * unchanged one is not written and the registry's own object comes back.
   */
  async declare(input: IdentityInput, source: Exclude<IdentitySource, 'trust'>): Promise<Identity> {
    this.#check(input);
    return this.#write(input.id, (existing) => {
      if (existing && source === 'api') throw new Conflict(`identity ${input.id} already exists`);
      const identity = this.#build(input, existing?.source === 'trust' ? 'config' : source, existing);
      return existing && sameDeclaration(existing, identity) ? existing : identity;
    });
  }

  /** First successful federated login of an undeclared identity: register it with the trust's defaults. */
  /**
   * Registers an identity on its first login through `trust`, unless it exists — perhaps just
   * registered by another login or replica racing this one: then the stored one comes back with
   * `created: false`, and the caller must check it may be proven by `trust`.
   */
  async register(input: IdentityInput, trust: string): Promise<{ identity: Identity; created: boolean }> {
    this.#check(input);
    let created = false;
    const identity = await this.#write(input.id, (existing) => {
      created = existing === undefined;
      return existing ?? { ...this.#build(input, 'trust', undefined, trust), bound_trusts: [trust] };
    });
    return { identity, created };
  }

  /** Sets the trusts allowed to prove an identity (`null`: unbound, refused until bound). */
  async bind(id: string, trusts: string[] | null): Promise<Identity> {
    return this.#write(id, (current) => ({ ...found(id, current), bound_trusts: trusts === null ? null : [...new Set(trusts)].sort(), updated_at: new Date(this.#clock.now()).toISOString() }));
  }

  async update(id: string, patch: IdentityPatch): Promise<Identity> {
    return this.#write(id, (stored) => {
      const current = found(id, stored);
      const next: Identity = {
        ...current,
        ...(patch.owner !== undefined && { owner: patch.owner }),
        ...(patch.purpose !== undefined && { purpose: patch.purpose }),
        ...(patch.labels !== undefined && { labels: patch.labels }),
        ...(patch.parents !== undefined && { parents: patch.parents }),
        ...(patch.boundary !== undefined && { boundary: patch.boundary }),
        ...(patch.environment !== undefined && { environment: patch.environment }),
        updated_at: new Date(this.#clock.now()).toISOString(),
      };
      this.#check(next);
      return next;
    });
  }

  async setStatus(id: string, status: IdentityStatus): Promise<Identity> {
    return this.#write(id, (stored) => {
      const current = found(id, stored);
      if (current.status === 'offboarded' && status !== 'offboarded') {
        throw new Conflict(`identity ${id} is offboarded; offboarding is final — declare a new identity instead`);
      }
      return { ...current, status, updated_at: new Date(this.#clock.now()).toISOString() };
    });
  }

  /** The humans accountable for an identity (see `accountableHumans`). */
  accountableHumans(id: string): string[] {
    return accountableHumans(id, (x) => this.#cache.get(x), (team) => this.members('Team', team));
  }

  /** Ids of the identities that have `Type::"id"` among their parents. */
  members(type: string, id: string): string[] {
    return [...this.#cache.values()].filter((i) => i.parents.some((p) => p.type === type && p.id === id)).map((i) => i.id);
  }

  async touchAuthenticated(id: string): Promise<void> {
    if (!this.#cache.has(id)) return;
    const at = new Date(this.#clock.now()).toISOString();
    if (!(await this.#store.inventory.identities.touchAuthenticated(id, at))) return;
    const current = this.#cache.get(id);
    if (current && (current.last_authenticated_at ?? '') < at) this.#cache.set(id, { ...current, last_authenticated_at: at });
  }

  /**
   * Read, check and write one identity as a unit: `next` gets the stored identity (read under the
   * identity's lock, so a change made meanwhile — by this process or, later, another replica — is
   * never overwritten with stale data) and returns what to store, or the same object to store
   * nothing. The cache takes the result only once the transaction committed.
   */
  #write(id: string, next: (current: Identity | undefined) => Identity): Promise<Identity> {
    return this.#lock.run(id, () => this.#writeLocked(id, next));
  }

  async #writeLocked(id: string, next: (current: Identity | undefined) => Identity): Promise<Identity> {
    const repo = this.#store.inventory.identities;
    const { current, written, seq } = await this.#store.transaction(async () => {
      await this.#store.lock(`identity:${id}`);
      const current = await repo.get(id);
      const written = next(current);
      if (written !== current && !(current === undefined ? await repo.insert(written) : await repo.update(written))) {
        throw new Conflict(`identity ${id} changed while it was being written; try again`);
      }
      if (written !== current) await this.#store.changes.publish('identity', id);
      return { current, written, seq: ++this.#seq };
    });
    if (written === current) return this.#cache.get(id) ?? this.#apply(current, seq);
    return this.#apply(written, seq);
  }

  /** Puts a committed identity in the cache unless a later write of the same id is already there. */
  #apply(identity: Identity, seq: number): Identity {
    if (seq < (this.#cachedSeq.get(identity.id) ?? 0)) return identity;
    const cached = this.#cache.get(identity.id);
    // `last_authenticated_at` is written apart (touchAuthenticated): keep the later of the two.
    const out = cached && (cached.last_authenticated_at ?? '') > (identity.last_authenticated_at ?? '') ? { ...identity, last_authenticated_at: cached.last_authenticated_at } : identity;
    this.#cachedSeq.set(identity.id, seq);
    this.#cache.set(identity.id, out);
    return out;
  }

  /** A full row from an input; lifecycle fields carry over from `existing` when re-declared. */
  #build(input: IdentityInput, source: IdentitySource, existing?: Identity, trust: string | null = null): Identity {
    const now = new Date(this.#clock.now()).toISOString();
    return {
      id: input.id,
      kind: input.kind,
      boundary: input.boundary,
      environment: input.environment,
      owner: input.owner ?? null,
      purpose: input.purpose ?? null,
      labels: input.labels ?? {},
      parents: input.parents ?? [],
      status: existing?.status ?? 'active',
      source,
      trust: existing?.trust ?? trust,
      bound_trusts: input.bound_trusts !== undefined ? [...new Set(input.bound_trusts)].sort() : existing ? existing.bound_trusts : [],
      created_at: existing?.created_at ?? now,
      updated_at: now,
      last_authenticated_at: existing?.last_authenticated_at ?? null,
    };
  }

  #check(input: IdentityInput): void {
    checkIdentityId(input.id);
    if (!IDENTITY_KINDS.includes(input.kind)) {
      throw new InvalidInput(`kind must be one of ${IDENTITY_KINDS.join(', ')}`, 'kind');
    }
    const named = kindOfId(input.id);
    if (named !== undefined && named !== input.kind) throw new InvalidInput(`kind ${input.kind} does not match the id ${input.id} (a ${named} id)`, 'kind');
    if (!this.#boundaries.has(input.boundary)) {
      throw new InvalidInput(`boundary "${input.boundary}" is not declared (known: ${[...this.#boundaries].join(', ')})`, 'boundary');
    }
    if (typeof input.environment !== 'string' || !/^[a-z0-9][a-z0-9-]{0,63}$/.test(input.environment)) {
      throw new InvalidInput('environment must be a short lowercase name like "prod"', 'environment');
    }
  }
}

function found(id: string, identity: Identity | undefined): Identity {
  if (!identity) throw new NotFound(`identity ${id}`);
  return identity;
}

function sameDeclaration(a: Identity, b: Identity): boolean {
  return (
    a.kind === b.kind &&
    a.boundary === b.boundary &&
    a.environment === b.environment &&
    a.owner === b.owner &&
    a.purpose === b.purpose &&
    JSON.stringify(a.labels) === JSON.stringify(b.labels) &&
    JSON.stringify(a.parents) === JSON.stringify(b.parents) &&
    JSON.stringify(a.bound_trusts) === JSON.stringify(b.bound_trusts)
  );
}

/** What accountability needs to know of an identity. */
export interface OwnershipFacts {
  kind: string;
  owner: string | null;
  parents: readonly { type: string; id: string }[];
}

/**
 * The humans accountable for an identity (docs/access.md "Separation of duties"):
 * - a user with no owner, owned by itself (as human sign-in registers them) or by a team → the
 *   user itself;
 * - anything owned by an identity (`user:…`, or a workload, agent, …) → that owner's accountable
 *   humans, followed transitively (a user owned by a user is the same person's other account);
 * - anything else owned by `team:<name>` → the users who are members of Team::"<name>";
 * - an owner `user:…` not in the inventory is that human; anything else resolves to no one.
 * A user is always at least itself. A non-human whose chain loops or ends nowhere resolves to no
 * one (and so can never review). Sorted, without duplicates.
 */
export function accountableHumans(id: string, lookup: (id: string) => OwnershipFacts | undefined, teamMembers: (team: string) => readonly string[]): string[] {
  const walk = (cur: string, seen: ReadonlySet<string>): Set<string> => {
    const out = new Set<string>();
    if (seen.has(cur)) return out;
    const next = new Set(seen).add(cur);
    if (cur.startsWith('team:')) {
      for (const m of teamMembers(cur.slice(5))) if (lookup(m)?.kind === 'user') for (const x of walk(m, next)) out.add(x);
      return out;
    }
    const f = lookup(cur);
    if (!f) {
      if (cur.startsWith('user:')) out.add(cur);
      return out;
    }
    // A user is always someone: owned by another user it is that person's other account, else itself.
    const owner = f.owner === cur ? null : f.owner;
    if (owner !== null && !(f.kind === 'user' && owner.startsWith('team:'))) for (const x of walk(owner, next)) out.add(x);
    if (out.size === 0 && f.kind === 'user') out.add(cur);
    return out;
  };
  return [...walk(id, new Set())].sort();
}
