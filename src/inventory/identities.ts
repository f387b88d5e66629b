// The registry of every principal: who it is, who owns it, why it exists, where it lives, and
// whether it may still authenticate. Reads are served from memory (hot path of every decision).
import type { Db } from '../store/sqlite/db.ts';
import { migrate, transaction } from '../store/sqlite/db.ts';
import type { IdentityKind } from '../identity/types.ts';
import { IDENTITY_KINDS } from '../identity/types.ts';
import { kindOfId } from '../identity/binding.ts';
import type { Clock } from '../common/clock.ts';
import { Conflict, InvalidInput, NotFound } from '../common/errors.ts';

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
}

/** Identity ids: a kind-ish prefix, then a path. No spaces, quotes or control characters. */
export const IDENTITY_ID_RE = /^[a-z][a-z0-9-]*:[A-Za-z0-9._@\/+:=-]{1,255}$/;

export function checkIdentityId(id: unknown, field = 'id'): string {
  if (typeof id !== 'string' || !(IDENTITY_ID_RE.test(id) || /^spiffe:\/\/[a-z0-9._-]+(\/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)+$/.test(id))) {
    throw new InvalidInput(`${field} must look like "workload:github/acme/api" or a SPIFFE ID`, field);
  }
  if (id.includes('..')) throw new InvalidInput(`${field} must not contain ".."`, field);
  return id;
}

export class IdentityRegistry {
  readonly #db: Db;
  readonly #clock: Clock;
  readonly #boundaries: ReadonlySet<string>;
  readonly #cache = new Map<string, Identity>();

  constructor(db: Db, clock: Clock, boundaries: readonly string[]) {
    this.#db = db;
    this.#clock = clock;
    this.#boundaries = new Set(boundaries);
    migrate(db, 'inventory', [
      {
        version: 1,
        up: `CREATE TABLE identities (
               id TEXT PRIMARY KEY, kind TEXT NOT NULL, boundary TEXT NOT NULL, environment TEXT NOT NULL,
               owner TEXT, purpose TEXT, labels TEXT NOT NULL, parents TEXT NOT NULL,
               status TEXT NOT NULL, source TEXT NOT NULL, trust TEXT,
               created_at TEXT NOT NULL, updated_at TEXT NOT NULL, last_authenticated_at TEXT);
             CREATE INDEX identities_owner ON identities(owner);`,
      },
      // Binding (issue 8.1): NULL until bound; filled at start from what is known (see broker/identity-binding.ts).
      { version: 2, up: 'ALTER TABLE identities ADD COLUMN bound_trusts TEXT' },
    ]);
    for (const row of db.prepare('SELECT * FROM identities').all()) {
      const identity = fromRow(row);
      this.#cache.set(identity.id, identity);
    }
  }

  get(id: string): Identity | undefined {
    return this.#cache.get(id);
  }

  require(id: string): Identity {
    const found = this.#cache.get(id);
    if (!found) throw new NotFound(`identity ${id}`);
    return found;
  }

  list(filter: IdentityFilter = {}): Identity[] {
    return [...this.#cache.values()]
      .filter(
        (i) =>
          (filter.kind === undefined || i.kind === filter.kind) &&
          (filter.boundary === undefined || i.boundary === filter.boundary) &&
          (filter.environment === undefined || i.environment === filter.environment) &&
          (filter.owner === undefined || i.owner === filter.owner) &&
          (filter.status === undefined || i.status === filter.status),
      )
      .sort((a, b) => a.id.localeCompare(b.id));
  }

  /** Declares an identity from config or the API. Config declarations update in place. */
  declare(input: IdentityInput, source: Exclude<IdentitySource, 'trust'>): Identity {
    this.#check(input);
    const existing = this.#cache.get(input.id);
    if (existing && source === 'api') throw new Conflict(`identity ${input.id} already exists`);
    const identity = this.#build(input, existing?.source === 'trust' ? 'config' : source, existing);
    if (existing && sameDeclaration(existing, identity)) return existing;
    this.#save(identity);
    return identity;
  }

  /** First successful federated login of an undeclared identity: register it with the trust's defaults. */
  register(input: IdentityInput, trust: string): Identity {
    this.#check(input);
    const existing = this.#cache.get(input.id);
    if (existing) return existing;
    const identity = { ...this.#build(input, 'trust', undefined, trust), bound_trusts: [trust] };
    this.#save(identity);
    return identity;
  }

  /** Sets the trusts allowed to prove an identity (`null`: unbound, refused until bound). */
  bind(id: string, trusts: string[] | null): Identity {
    const next: Identity = { ...this.require(id), bound_trusts: trusts === null ? null : [...new Set(trusts)].sort(), updated_at: new Date(this.#clock.now()).toISOString() };
    this.#save(next);
    return next;
  }

  update(id: string, patch: IdentityPatch): Identity {
    const current = this.require(id);
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
    this.#save(next);
    return next;
  }

  setStatus(id: string, status: IdentityStatus): Identity {
    const current = this.require(id);
    if (current.status === 'offboarded' && status !== 'offboarded') {
      throw new Conflict(`identity ${id} is offboarded; offboarding is final — declare a new identity instead`);
    }
    const next = { ...current, status, updated_at: new Date(this.#clock.now()).toISOString() };
    this.#save(next);
    return next;
  }

  /** The humans accountable for an identity (see `accountableHumans`). */
  accountableHumans(id: string): string[] {
    return accountableHumans(id, (x) => this.#cache.get(x), (team) => this.members('Team', team));
  }

  /** Ids of the identities that have `Type::"id"` among their parents. */
  members(type: string, id: string): string[] {
    return [...this.#cache.values()].filter((i) => i.parents.some((p) => p.type === type && p.id === id)).map((i) => i.id);
  }

  touchAuthenticated(id: string): void {
    const current = this.#cache.get(id);
    if (!current) return;
    const at = new Date(this.#clock.now()).toISOString();
    this.#db.prepare('UPDATE identities SET last_authenticated_at = ? WHERE id = ?').run(at, id);
    this.#cache.set(id, { ...current, last_authenticated_at: at });
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

  #save(identity: Identity): void {
    transaction(this.#db, () => {
      this.#db
        .prepare(
          `INSERT INTO identities (id, kind, boundary, environment, owner, purpose, labels, parents, status, source, trust,
                                   created_at, updated_at, last_authenticated_at, bound_trusts)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT(id) DO UPDATE SET kind = excluded.kind, boundary = excluded.boundary,
             environment = excluded.environment, owner = excluded.owner, purpose = excluded.purpose,
             labels = excluded.labels, parents = excluded.parents, status = excluded.status,
             source = excluded.source, updated_at = excluded.updated_at, bound_trusts = excluded.bound_trusts`,
        )
        .run(
          identity.id,
          identity.kind,
          identity.boundary,
          identity.environment,
          identity.owner,
          identity.purpose,
          JSON.stringify(identity.labels),
          JSON.stringify(identity.parents),
          identity.status,
          identity.source,
          identity.trust,
          identity.created_at,
          identity.updated_at,
          identity.last_authenticated_at,
          identity.bound_trusts === null ? null : JSON.stringify(identity.bound_trusts),
        );
    });
    this.#cache.set(identity.id, identity);
  }
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

function fromRow(row: Record<string, unknown>): Identity {
  return {
    id: String(row.id),
    kind: row.kind as IdentityKind,
    boundary: String(row.boundary),
    environment: String(row.environment),
    owner: row.owner === null ? null : String(row.owner),
    purpose: row.purpose === null ? null : String(row.purpose),
    labels: JSON.parse(String(row.labels)) as Record<string, string>,
    parents: JSON.parse(String(row.parents)) as { type: string; id: string }[],
    status: row.status as IdentityStatus,
    source: row.source as IdentitySource,
    trust: row.trust === null ? null : String(row.trust),
    bound_trusts: row.bound_trusts === null || row.bound_trusts === undefined ? null : (JSON.parse(String(row.bound_trusts)) as string[]),
    created_at: String(row.created_at),
    updated_at: String(row.updated_at),
    last_authenticated_at: row.last_authenticated_at === null ? null : String(row.last_authenticated_at),
  };
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
