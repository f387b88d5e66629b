// The access domain's storage ports: what it needs from a store, implemented in src/store/.
// Access requests, approvals, grants, break-glass, webhook deliveries.

/** Filled in as the domain moves behind its ports (issue #9). */
export interface AccessStore {}
