// The crypto domain's storage ports: what it needs from a store, implemented in src/store/.
// Sealed keyring entries (signing keys, secrets) and the SPIFFE CAs' sealed keys.

/** Filled in as the domain moves behind its ports (issue #9). */
export interface KeyStore {}
