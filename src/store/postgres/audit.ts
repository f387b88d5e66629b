// PostgreSQL implementation of the audit domain's storage ports (src/audit/ports.ts): its tables, migrations and queries.
// The implementation lives in ./audit/ (schema, appender, query, scan).
export { MIGRATIONS, pgAuditStore, PgAuditStore } from './audit/index.ts';
