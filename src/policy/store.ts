// Numbered policy versions. Every activation is a new version; the newest is the active one.
import { createHash } from 'node:crypto';
import type { Db } from '../store/sqlite/db.ts';
import { migrate } from '../store/sqlite/db.ts';
import type { PolicyFile } from './policy-set.ts';

export interface PolicyVersion {
  version: number;
  created_at: string;
  actor: string;
  reason: string;
  digest: string;
  files: PolicyFile[];
}

export function digestFiles(files: readonly PolicyFile[]): string {
  const h = createHash('sha256');
  for (const f of [...files].sort((a, b) => a.name.localeCompare(b.name))) h.update(`${f.origin}\0${f.name}\0${f.text}\0`);
  return h.digest('hex');
}

export class PolicyStore {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
    migrate(db, 'policy', [
      {
        version: 1,
        up: `CREATE TABLE policy_versions (
               version INTEGER PRIMARY KEY, created_at TEXT NOT NULL, actor TEXT NOT NULL,
               reason TEXT NOT NULL, digest TEXT NOT NULL, files TEXT NOT NULL);`,
      },
    ]);
  }

  active(): PolicyVersion | undefined {
    const row = this.#db.prepare('SELECT * FROM policy_versions ORDER BY version DESC LIMIT 1').get();
    return row ? toVersion(row) : undefined;
  }

  get(version: number): PolicyVersion | undefined {
    const row = this.#db.prepare('SELECT * FROM policy_versions WHERE version = ?').get(version);
    return row ? toVersion(row) : undefined;
  }

  list(): Omit<PolicyVersion, 'files'>[] {
    return this.#db
      .prepare('SELECT version, created_at, actor, reason, digest FROM policy_versions ORDER BY version DESC')
      .all() as unknown as Omit<PolicyVersion, 'files'>[];
  }

  append(files: readonly PolicyFile[], actor: string, reason: string, at: Date): PolicyVersion {
    const digest = digestFiles(files);
    const r = this.#db
      .prepare('INSERT INTO policy_versions (created_at, actor, reason, digest, files) VALUES (?, ?, ?, ?, ?)')
      .run(at.toISOString(), actor, reason, digest, JSON.stringify(files));
    return { version: Number(r.lastInsertRowid), created_at: at.toISOString(), actor, reason, digest, files: [...files] };
  }
}

function toVersion(row: Record<string, unknown>): PolicyVersion {
  return {
    version: Number(row.version),
    created_at: String(row.created_at),
    actor: String(row.actor),
    reason: String(row.reason),
    digest: String(row.digest),
    files: JSON.parse(String(row.files)) as PolicyFile[],
  };
}
