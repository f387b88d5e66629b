// The identity domain's storage ports: what it needs from a store, implemented in src/store/.
// Sessions (issued/revoked), API keys, seen token ids (replay).

/** Filled in as the domain moves behind its ports (issue #9). */
export interface IdentityStore {}
