// The policy domain's storage ports: what it needs from a store, implemented in src/store/.
// Policy set versions and the active one.

/** Filled in as the domain moves behind its ports (issue #9). */
export interface PolicyStoreRepository {}
