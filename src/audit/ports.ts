// The audit domain's storage ports: what it needs from a store, implemented in src/store/.
// The audit streams: group-committed appends, queries, scans for verification.

/** Filled in as the domain moves behind its ports (issue #9). */
export interface AuditStore {}
