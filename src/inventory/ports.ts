// The inventory domain's storage ports: what it needs from a store, implemented in src/store/.
// Identities, their bindings and memberships.
import type { Identity } from './identities.ts';

/** Where identities are kept. The registry reads it whole at open and writes through it. */
export interface IdentityRepository {
  /** Every identity, in no particular order. */
  list(): Promise<Identity[]>;
  get(id: string): Promise<Identity | undefined>;
  /** Stores a new identity; false (and nothing written) when one with its id exists. */
  insert(identity: Identity): Promise<boolean>;
  /**
   * Replaces what can change of an existing identity: its declaration (kind, boundary,
   * environment, owner, purpose, labels, parents), status, source, bound trusts and `updated_at`.
   * Its `trust`, `created_at` and `last_authenticated_at` are kept. False when it does not exist.
   */
  update(identity: Identity): Promise<boolean>;
  /** Records a successful authentication at `at` (RFC 3339); false when it does not exist. */
  touchAuthenticated(id: string, at: string): Promise<boolean>;
}

export interface InventoryStore {
  readonly identities: IdentityRepository;
}
