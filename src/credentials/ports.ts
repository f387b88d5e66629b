// The credentials domain's storage ports: what it needs from a store, implemented in src/store/.
// Leases and their state machine.

/** Filled in as the domain moves behind its ports (issue #9). */
export interface CredentialStore {}
