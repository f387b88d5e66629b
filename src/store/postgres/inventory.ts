// PostgreSQL implementation of the inventory domain's storage ports (src/inventory/ports.ts): the
// `identities` table that every replica shares, with its migrations (domain `inventory`).
import type { IdentityRepository, InventoryStore } from '../../inventory/ports.ts';
import type { Identity, IdentitySource, IdentityStatus } from '../../inventory/identities.ts';
import type { IdentityKind } from '../../identity/types.ts';
import type { PgDb, PgDomainMigrations } from './db.ts';

// The SQLite table's columns (its versions 1 and 2 in one). Times are the RFC 3339 strings the
// domain passes; labels, parents and bound trusts are JSON text, kept byte for byte as written
// (no query looks inside them, and JSONB would reorder the labels' keys).
export const MIGRATIONS: PgDomainMigrations = {
  domain: 'inventory',
  migrations: [
    {
      version: 1,
      up: `CREATE TABLE identities (
             id TEXT PRIMARY KEY, kind TEXT NOT NULL, boundary TEXT NOT NULL, environment TEXT NOT NULL,
             owner TEXT, purpose TEXT, labels TEXT NOT NULL, parents TEXT NOT NULL,
             status TEXT NOT NULL, source TEXT NOT NULL, trust TEXT,
             created_at TEXT NOT NULL, updated_at TEXT NOT NULL, last_authenticated_at TEXT,
             bound_trusts TEXT);
           CREATE INDEX identities_owner ON identities (owner);`,
    },
  ],
};

export function pgInventoryStore(db: PgDb): InventoryStore {
  return { identities: new PgIdentityRepository(db) };
}

interface Row {
  id: string;
  kind: string;
  boundary: string;
  environment: string;
  owner: string | null;
  purpose: string | null;
  labels: string;
  parents: string;
  status: string;
  source: string;
  trust: string | null;
  created_at: string;
  updated_at: string;
  last_authenticated_at: string | null;
  bound_trusts: string | null;
}

const COLUMNS = 'id, kind, boundary, environment, owner, purpose, labels, parents, status, source, trust, created_at, updated_at, last_authenticated_at, bound_trusts';

class PgIdentityRepository implements IdentityRepository {
  readonly #db: PgDb;

  constructor(db: PgDb) {
    this.#db = db;
  }

  async list(): Promise<Identity[]> {
    return (await this.#db.query<Row>(`SELECT ${COLUMNS} FROM identities`)).map(fromRow);
  }

  async get(id: string): Promise<Identity | undefined> {
    const row = await this.#db.one<Row>(`SELECT ${COLUMNS} FROM identities WHERE id = $1`, [id]);
    return row === undefined ? undefined : fromRow(row);
  }

  async insert(i: Identity): Promise<boolean> {
    // Two replicas declaring one id at once: the second waits on the first's row, then does nothing.
    const n = await this.#db.execute(
      `INSERT INTO identities (${COLUMNS})
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) ON CONFLICT (id) DO NOTHING`,
      [
        i.id, i.kind, i.boundary, i.environment, i.owner, i.purpose, JSON.stringify(i.labels), JSON.stringify(i.parents),
        i.status, i.source, i.trust, i.created_at, i.updated_at, i.last_authenticated_at, boundTrusts(i),
      ],
    );
    return n === 1;
  }

  async update(i: Identity): Promise<boolean> {
    const n = await this.#db.execute(
      `UPDATE identities SET kind = $1, boundary = $2, environment = $3, owner = $4, purpose = $5, labels = $6, parents = $7,
                             status = $8, source = $9, updated_at = $10, bound_trusts = $11
       WHERE id = $12`,
      [
        i.kind, i.boundary, i.environment, i.owner, i.purpose, JSON.stringify(i.labels), JSON.stringify(i.parents),
        i.status, i.source, i.updated_at, boundTrusts(i), i.id,
      ],
    );
    return n === 1;
  }

  async touchAuthenticated(id: string, at: string): Promise<boolean> {
    return (await this.#db.execute('UPDATE identities SET last_authenticated_at = $1 WHERE id = $2', [at, id])) === 1;
  }
}

function boundTrusts(i: Identity): string | null {
  return i.bound_trusts === null ? null : JSON.stringify(i.bound_trusts);
}

function fromRow(row: Row): Identity {
  return {
    id: row.id,
    kind: row.kind as IdentityKind,
    boundary: row.boundary,
    environment: row.environment,
    owner: row.owner,
    purpose: row.purpose,
    labels: JSON.parse(row.labels) as Record<string, string>,
    parents: JSON.parse(row.parents) as { type: string; id: string }[],
    status: row.status as IdentityStatus,
    source: row.source as IdentitySource,
    trust: row.trust,
    bound_trusts: row.bound_trusts === null ? null : (JSON.parse(row.bound_trusts) as string[]),
    created_at: row.created_at,
    updated_at: row.updated_at,
    last_authenticated_at: row.last_authenticated_at,
  };
}
