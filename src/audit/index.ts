// The audit domain's public surface.
export * from './types.ts';
export { AuditLog, type AuditLogOptions, type FollowOptions, type AppendListener } from './log.ts';
export { AuditWriteFailed } from './errors.ts';
export { canonicalJson } from './canonical.ts';
export { scrub, scrubString, isSecretKey, looksLikeSecret, REDACTED } from './scrub.ts';
export { genesisHash, GENESIS, recordCanonical } from './chain.ts';
export { checkpointMessage, CheckpointVerifier } from './checkpoint.ts';
export { verifyStream, verifyAll, type VerifyOptions } from './verify.ts';
export {
  queryEvents,
  normalizeQuery,
  exportJsonLines,
  writeJsonLines,
  recordLine,
  AUDIT_QUERY_DEFAULT_LIMIT,
  AUDIT_QUERY_MAX_LIMIT,
  type ExportQuery,
} from './query.ts';
export type { AuditStore, AuditReader, AuditAppender, AuditSearch, StreamHead, StreamScan, ScanOptions } from './ports.ts';
export { MAX_PAYLOAD_BYTES } from './prepare.ts';
