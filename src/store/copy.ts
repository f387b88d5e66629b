// Moving up: copies an embedded (SQLite) installation's state into an empty, migrated PostgreSQL
// store, row for row — audit chains included, so they verify afterwards. The source may be
// running: each file is read in one snapshot (WAL). The target gets everything in one
// transaction, or nothing.
import { DatabaseSync } from 'node:sqlite';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { PgDb } from './postgres/db.ts';
import { PG_MIGRATIONS } from './postgres/index.ts';
import { PortcullisError } from '../common/errors.ts';

/** Tables in copy order (a row's references first), by the file they live in. */
const STATE_TABLES = [
  'identities', 'identity_session_revocations', 'identity_session_cutoffs', 'identity_apikeys', 'identity_seen_jti', 'signal_facts',
  'crypto_meta', 'crypto_keys', 'crypto_secrets', 'spiffe_ca', 'broker_bootstrap', 'policy_versions', 'credential_leases',
  'access_requests', 'access_reviews_cast', 'access_comments', 'access_grants', 'access_breakglass_reviews', 'access_webhook_deliveries',
  'gov_campaigns', 'gov_review_items', 'gov_flags',
  'agent_profiles', 'agent_assignments', 'agent_calls', 'agent_call_tools',
];
const AUDIT_TABLES = ['audit_events', 'audit_heads', 'audit_checkpoints'];

export class StoreCopyFailed extends PortcullisError {
  constructor(message: string) {
    super('store_copy_failed', 400, message);
  }
}

export interface CopyReport {
  tables: { table: string; rows: number }[];
  rows: number;
  ms: number;
}

interface PgColumn {
  name: string;
  type: string;
  identity: boolean;
  serial: boolean;
}

/** Copies `dataDir`'s SQLite files into the PostgreSQL store at `url`; `progress` hears each table. */
export async function copySqliteToPostgres(dataDir: string, url: string, progress: (table: string, rows: number) => void = () => {}): Promise<CopyReport> {
  const started = performance.now();
  const files = { state: join(dataDir, 'portcullis.db'), audit: join(dataDir, 'audit.db') };
  if (!existsSync(files.state)) throw new StoreCopyFailed(`no Portcullis store in ${dataDir} (expected ${files.state}): --from sqlite:DIR names the data_dir of the installation to copy`);
  const state = new DatabaseSync(files.state, { readOnly: true });
  const audit = existsSync(files.audit) ? new DatabaseSync(files.audit, { readOnly: true }) : undefined;
  const db = await PgDb.open(url, { pool: 1 });
  try {
    await db.migrate(PG_MIGRATIONS);
    // One snapshot per file for the whole copy (the server may keep writing meanwhile).
    state.exec('BEGIN');
    audit?.exec('BEGIN');
    const report: CopyReport = { tables: [], rows: 0, ms: 0 };
    await db.transaction(async () => {
      for (const [source, tables] of [[state, STATE_TABLES], [audit, AUDIT_TABLES]] as const) {
        for (const table of tables) {
          const rows = source ? await copyTable(source, db, table) : 0;
          report.tables.push({ table, rows });
          report.rows += rows;
          progress(table, rows);
        }
      }
    });
    report.ms = Math.round(performance.now() - started);
    return report;
  } finally {
    if (state.isTransaction) state.exec('ROLLBACK');
    if (audit?.isTransaction) audit.exec('ROLLBACK');
    state.close();
    audit?.close();
    await db.close();
  }
}

async function copyTable(source: DatabaseSync, db: PgDb, table: string): Promise<number> {
  const exists = source.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(table);
  if (!exists) return 0;
  const target = await db.query<{ column_name: string; data_type: string; is_identity: string; column_default: string | null }>(
    `SELECT column_name, data_type, is_identity, column_default FROM information_schema.columns
     WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position`,
    [table],
  );
  if (target.length === 0) throw new StoreCopyFailed(`table ${table} is missing in the PostgreSQL store (is it migrated by this version?)`);
  const pgCols = new Map<string, PgColumn>(target.map((c) => [c.column_name, { name: c.column_name, type: c.data_type, identity: c.is_identity === 'YES', serial: c.column_default?.startsWith('nextval(') ?? false }]));
  // A migrated store starts each audit stream with a placeholder head (seq 0): those give way.
  const placeholders = table === 'audit_heads' ? ' WHERE seq > 0' : '';
  const present = await db.one<{ n: number }>(`SELECT COUNT(*)::int AS n FROM ${table}${placeholders}`);
  if ((present?.n ?? 0) > 0) throw new StoreCopyFailed(`the PostgreSQL store is not empty (${table} has ${present!.n} rows): copy into a new database`);
  const srcCols = (source.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[]).map((c) => c.name);
  const missing = srcCols.filter((c) => !pgCols.has(c));
  if (missing.length > 0) throw new StoreCopyFailed(`table ${table}: column(s) ${missing.join(', ')} have no place in the PostgreSQL store`);
  const cols = srcCols.map((c) => pgCols.get(c)!);
  if (placeholders) await db.query('DELETE FROM audit_heads WHERE seq = 0');
  const overriding = cols.some((c) => c.identity) ? ' OVERRIDING SYSTEM VALUE' : '';
  const perBatch = Math.max(1, Math.floor(30_000 / cols.length));
  let batch: unknown[][] = [];
  let copied = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    const params: unknown[] = [];
    const tuples = batch.map((row) => `(${row.map((v) => (params.push(v), `$${params.length}`)).join(', ')})`);
    await db.query(`INSERT INTO ${table} (${cols.map((c) => `"${c.name}"`).join(', ')})${overriding} VALUES ${tuples.join(', ')}`, params);
    copied += batch.length;
    batch = [];
  };
  for (const row of source.prepare(`SELECT * FROM ${table}`).iterate() as Iterable<Record<string, unknown>>) {
    batch.push(cols.map((c) => convert(row[c.name], c, table)));
    if (batch.length >= perBatch) await flush();
  }
  await flush();
  // Numbers the target hands out next continue after the copied ones.
  for (const c of cols) {
    if (!c.identity && !c.serial) continue;
    await db.query(`SELECT setval(pg_get_serial_sequence($1, $2), GREATEST(COALESCE((SELECT MAX("${c.name}") FROM ${table}), 0), 1), (SELECT COUNT(*) > 0 FROM ${table}))`, [table, c.name]);
  }
  return copied;
}

/** A SQLite value as the PostgreSQL column takes it. */
function convert(v: unknown, c: PgColumn, table: string): unknown {
  if (v === null || v === undefined) return null;
  switch (c.type) {
    case 'boolean':
      return typeof v === 'number' || typeof v === 'bigint' ? Number(v) !== 0 : v;
    case 'bytea':
      return v instanceof Uint8Array ? Buffer.from(v) : v;
    case 'bigint':
    case 'integer':
    case 'smallint':
      return typeof v === 'bigint' ? v.toString() : v;
    case 'timestamp with time zone':
      return typeof v === 'number' ? new Date(v).toISOString() : v;
    default:
      if (v instanceof Uint8Array) throw new StoreCopyFailed(`table ${table}: column ${c.name} holds bytes but is ${c.type} in PostgreSQL`);
      return v;
  }
}
