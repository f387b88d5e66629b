// SQLite implementation of the policy domain's storage ports (src/policy/ports.ts): the
// policy_versions table and its migration.
import type { PolicyStoreRepository, PolicyVersion, PolicyVersionRepository, PolicyVersionSummary } from '../../policy/ports.ts';
import type { PolicyFile } from '../../policy/policy-set.ts';
import { migrate } from './db.ts';
import type { Migration, SqliteDb } from './db.ts';

const MIGRATIONS: Migration[] = [
  {
    version: 1,
    up: `CREATE TABLE policy_versions (
           version INTEGER PRIMARY KEY, created_at TEXT NOT NULL, actor TEXT NOT NULL,
           reason TEXT NOT NULL, digest TEXT NOT NULL, files TEXT NOT NULL);`,
  },
];

type Row = Record<string, unknown>;

function toSummary(row: Row): PolicyVersionSummary {
  return {
    version: Number(row.version),
    created_at: String(row.created_at),
    actor: String(row.actor),
    reason: String(row.reason),
    digest: String(row.digest),
  };
}

function toVersion(row: Row): PolicyVersion {
  return { ...toSummary(row), files: JSON.parse(String(row.files)) as PolicyFile[] };
}

export class SqlitePolicyVersions implements PolicyVersionRepository {
  readonly #db: SqliteDb;

  constructor(db: SqliteDb) {
    this.#db = db;
  }

  newest(): Promise<PolicyVersion | undefined> {
    return this.#db.run((raw) => {
      const row = raw.prepare('SELECT * FROM policy_versions ORDER BY version DESC LIMIT 1').get();
      return row ? toVersion(row) : undefined;
    });
  }

  get(version: number): Promise<PolicyVersion | undefined> {
    return this.#db.run((raw) => {
      const row = raw.prepare('SELECT * FROM policy_versions WHERE version = ?').get(version);
      return row ? toVersion(row) : undefined;
    });
  }

  list(): Promise<PolicyVersionSummary[]> {
    return this.#db.run((raw) =>
      raw.prepare('SELECT version, created_at, actor, reason, digest FROM policy_versions ORDER BY version DESC').all().map(toSummary),
    );
  }

  append(v: Omit<PolicyVersion, 'version'>): Promise<PolicyVersion> {
    // INTEGER PRIMARY KEY: the new row's version is one past the largest (writers are serialised).
    return this.#db.atomic((raw) => {
      const r = raw
        .prepare('INSERT INTO policy_versions (created_at, actor, reason, digest, files) VALUES (?, ?, ?, ?, ?)')
        .run(v.created_at, v.actor, v.reason, v.digest, JSON.stringify(v.files));
      return { version: Number(r.lastInsertRowid), ...v, files: [...v.files] };
    });
  }
}

export class SqlitePolicyStore implements PolicyStoreRepository {
  readonly versions: SqlitePolicyVersions;

  constructor(db: SqliteDb) {
    migrate(db.raw, 'policy', MIGRATIONS);
    this.versions = new SqlitePolicyVersions(db);
  }
}
