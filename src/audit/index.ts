// The audit domain's public surface.
export * from './types.ts';
export { AuditLog, type FollowOptions } from './log.ts';
export { AuditWriteFailed } from './errors.ts';
export { canonicalJson } from './canonical.ts';
export { scrub, scrubString, isSecretKey, looksLikeSecret, REDACTED } from './scrub.ts';
export { genesisHash, GENESIS, recordCanonical } from './chain.ts';
export { checkpointMessage, CheckpointVerifier } from './checkpoint.ts';
export { verifyStream, verifyAll, type VerifyOptions } from './verify.ts';
export { queryEvents, normalizeQuery, exportJsonLines, writeJsonLines, AUDIT_QUERY_MAX_LIMIT, type ExportQuery } from './query.ts';
export type { AuditStore, AuditReader, AuditAppender, AuditSearch, StreamHead, StreamScan, ScanOptions } from './ports.ts';
