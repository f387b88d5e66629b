// The inventory domain's storage ports: what it needs from a store, implemented in src/store/.
// Identities, their bindings and memberships.

/** Filled in as the domain moves behind its ports (issue #9). */
export interface InventoryStore {}
