// The audit domain's public surface.
export * from './types.ts';
export { AuditLog, type AuditLogOptions, type FollowOptions, type AppendListener } from './log.ts';
export { AuditWriteFailed } from './errors.ts';
export { canonicalJson } from './canonical.ts';
export { scrub, scrubString, isSecretKey, looksLikeSecret, REDACTED } from './scrub.ts';
export { genesisHash, GENESIS, recordCanonical } from './chain.ts';
export { checkpointMessage, CheckpointVerifier } from './checkpoint.ts';
export { verifyStream, verifyAll, verifyDataDir, type ResolverSource } from './verify.ts';
export { verifyDataDirParallel, verifyFileParallel, type ParallelVerifyOptions } from './verify-parallel.ts';
export {
  queryEvents,
  exportJsonLines,
  writeJsonLines,
  recordLine,
  AUDIT_QUERY_DEFAULT_LIMIT,
  AUDIT_QUERY_MAX_LIMIT,
  type ExportQuery,
} from './query.ts';
export { migrateAudit, AUDIT_MIGRATIONS } from './schema.ts';
export { MAX_PAYLOAD_BYTES } from './prepare.ts';
