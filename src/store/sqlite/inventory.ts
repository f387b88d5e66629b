// SQLite implementation of the inventory domain's storage ports (src/inventory/ports.ts): the
// `identities` table and its migrations (domain `inventory`).
import type { IdentityRepository, InventoryStore } from '../../inventory/ports.ts';
import type { Identity, IdentitySource, IdentityStatus } from '../../inventory/identities.ts';
import type { IdentityKind } from '../../identity/types.ts';
import type { Migration, SqliteDb } from './db.ts';
import { migrate } from './db.ts';

const INVENTORY_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    up: `CREATE TABLE identities (
           id TEXT PRIMARY KEY, kind TEXT NOT NULL, boundary TEXT NOT NULL, environment TEXT NOT NULL,
           owner TEXT, purpose TEXT, labels TEXT NOT NULL, parents TEXT NOT NULL,
           status TEXT NOT NULL, source TEXT NOT NULL, trust TEXT,
           created_at TEXT NOT NULL, updated_at TEXT NOT NULL, last_authenticated_at TEXT);
         CREATE INDEX identities_owner ON identities(owner);`,
  },
  // Binding (issue 8.1): NULL until bound; filled at start from what is known (see broker/identity-binding.ts).
  { version: 2, up: 'ALTER TABLE identities ADD COLUMN bound_trusts TEXT' },
];

export class SqliteInventoryStore implements InventoryStore {
  readonly identities: SqliteIdentityRepository;

  constructor(db: SqliteDb) {
    migrate(db.raw, 'inventory', INVENTORY_MIGRATIONS);
    this.identities = new SqliteIdentityRepository(db);
  }
}

class SqliteIdentityRepository implements IdentityRepository {
  readonly #db: SqliteDb;

  constructor(db: SqliteDb) {
    this.#db = db;
  }

  list(): Promise<Identity[]> {
    return this.#db.run((raw) => raw.prepare('SELECT * FROM identities').all().map(fromRow));
  }

  get(id: string): Promise<Identity | undefined> {
    return this.#db.run((raw) => {
      const row = raw.prepare('SELECT * FROM identities WHERE id = ?').get(id);
      return row === undefined ? undefined : fromRow(row);
    });
  }

  insert(i: Identity): Promise<boolean> {
    return this.#db.run(
      (raw) =>
        raw
          .prepare(
            `INSERT INTO identities (id, kind, boundary, environment, owner, purpose, labels, parents, status, source, trust,
                                     created_at, updated_at, last_authenticated_at, bound_trusts)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
          )
          .run(
            i.id, i.kind, i.boundary, i.environment, i.owner, i.purpose, JSON.stringify(i.labels), JSON.stringify(i.parents),
            i.status, i.source, i.trust, i.created_at, i.updated_at, i.last_authenticated_at, boundTrusts(i),
          ).changes === 1,
    );
  }

  update(i: Identity): Promise<boolean> {
    return this.#db.run(
      (raw) =>
        raw
          .prepare(
            `UPDATE identities SET kind = ?, boundary = ?, environment = ?, owner = ?, purpose = ?, labels = ?, parents = ?,
                                   status = ?, source = ?, updated_at = ?, bound_trusts = ?
             WHERE id = ?`,
          )
          .run(
            i.kind, i.boundary, i.environment, i.owner, i.purpose, JSON.stringify(i.labels), JSON.stringify(i.parents),
            i.status, i.source, i.updated_at, boundTrusts(i), i.id,
          ).changes === 1,
    );
  }

  touchAuthenticated(id: string, at: string): Promise<boolean> {
    return this.#db.run((raw) => raw.prepare('UPDATE identities SET last_authenticated_at = ? WHERE id = ?').run(at, id).changes === 1);
  }
}

function boundTrusts(i: Identity): string | null {
  return i.bound_trusts === null ? null : JSON.stringify(i.bound_trusts);
}

function fromRow(row: Record<string, unknown>): Identity {
  return {
    id: String(row.id),
    kind: row.kind as IdentityKind,
    boundary: String(row.boundary),
    environment: String(row.environment),
    owner: row.owner === null ? null : String(row.owner),
    purpose: row.purpose === null ? null : String(row.purpose),
    labels: JSON.parse(String(row.labels)) as Record<string, string>,
    parents: JSON.parse(String(row.parents)) as { type: string; id: string }[],
    status: row.status as IdentityStatus,
    source: row.source as IdentitySource,
    trust: row.trust === null ? null : String(row.trust),
    bound_trusts: row.bound_trusts === null || row.bound_trusts === undefined ? null : (JSON.parse(String(row.bound_trusts)) as string[]),
    created_at: String(row.created_at),
    updated_at: String(row.updated_at),
    last_authenticated_at: row.last_authenticated_at === null ? null : String(row.last_authenticated_at),
  };
}
