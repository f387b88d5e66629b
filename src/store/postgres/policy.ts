// PostgreSQL implementation of the policy domain's storage ports (src/policy/ports.ts): the
// policy_versions table every replica shares; a new version is numbered by the database.
import type { PolicyStoreRepository, PolicyVersion, PolicyVersionRepository, PolicyVersionSummary } from '../../policy/ports.ts';
import type { PolicyFile } from '../../policy/policy-set.ts';
import type { PgDb, PgDomainMigrations } from './db.ts';

// As on SQLite; `files` is the JSON text of the files as written (no query looks inside).
export const MIGRATIONS: PgDomainMigrations = {
  domain: 'policy',
  migrations: [
    {
      version: 1,
      up: `CREATE TABLE policy_versions (
             version INTEGER PRIMARY KEY, created_at TEXT NOT NULL, actor TEXT NOT NULL,
             reason TEXT NOT NULL, digest TEXT NOT NULL, files TEXT NOT NULL);`,
    },
  ],
};

/** The transaction lock that numbers versions one at a time across replicas. */
const APPEND_LOCK = 'policy:versions';

interface SummaryRow {
  version: number;
  created_at: string;
  actor: string;
  reason: string;
  digest: string;
}

interface Row extends SummaryRow {
  files: string;
}

function toSummary(r: SummaryRow): PolicyVersionSummary {
  return { version: r.version, created_at: r.created_at, actor: r.actor, reason: r.reason, digest: r.digest };
}

function toVersion(r: Row): PolicyVersion {
  return { ...toSummary(r), files: JSON.parse(r.files) as PolicyFile[] };
}

class PgPolicyVersions implements PolicyVersionRepository {
  readonly #db: PgDb;

  constructor(db: PgDb) {
    this.#db = db;
  }

  async newest(): Promise<PolicyVersion | undefined> {
    const r = await this.#db.one<Row>('SELECT version, created_at, actor, reason, digest, files FROM policy_versions ORDER BY version DESC LIMIT 1');
    return r === undefined ? undefined : toVersion(r);
  }

  async get(version: number): Promise<PolicyVersion | undefined> {
    const r = await this.#db.one<Row>('SELECT version, created_at, actor, reason, digest, files FROM policy_versions WHERE version = $1', [version]);
    return r === undefined ? undefined : toVersion(r);
  }

  async list(): Promise<PolicyVersionSummary[]> {
    return (await this.#db.query<SummaryRow>('SELECT version, created_at, actor, reason, digest FROM policy_versions ORDER BY version DESC')).map(toSummary);
  }

  append(v: Omit<PolicyVersion, 'version'>): Promise<PolicyVersion> {
    // MAX()+1 under a transaction lock: the next appender (any replica) waits for this COMMIT and
    // its statement then sees this row, so numbers are neither shared nor skipped (a sequence
    // would skip one on every rollback). The primary key backs it up.
    return this.#db.transaction(async () => {
      await this.#db.lock(APPEND_LOCK);
      const r = await this.#db.one<{ version: number }>(
        `INSERT INTO policy_versions (version, created_at, actor, reason, digest, files)
         SELECT COALESCE(MAX(version), 0) + 1, $1, $2, $3, $4, $5 FROM policy_versions
         RETURNING version`,
        [v.created_at, v.actor, v.reason, v.digest, JSON.stringify(v.files)],
      );
      return { version: r!.version, ...v, files: [...v.files] };
    });
  }
}

export function pgPolicyStore(db: PgDb): PolicyStoreRepository {
  return { versions: new PgPolicyVersions(db) };
}
