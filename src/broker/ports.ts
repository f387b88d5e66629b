// The broker domain's storage ports: what it needs from a store, implemented in src/store/.
// The first administrator's one-time bootstrap secret.

/** Filled in as the domain moves behind its ports (issue #9). */
export interface BootstrapStore {}
