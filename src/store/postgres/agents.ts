// PostgreSQL implementation of the agents domain's storage ports (src/agents/ports.ts): agent
// profiles and assignments, shared by every replica (domain `agents`).
import type { AgentProfileRepository, AgentStore, AssignmentFilter, AssignmentRepository } from '../../agents/ports.ts';
import type { AgentProfile, Assignment } from '../../agents/types.ts';
import type { PgDb, PgDomainMigrations } from './db.ts';
import { AGENTS_DDL, ASSIGNMENT_COLUMNS, PROFILE_COLUMNS, assignmentFromRow, assignmentValues, assignmentWhere, profileFromRow, profileValues } from '../rows/agents.ts';

// The same tables as the SQLite store's (the DDL is shared: src/store/rows/agents.ts).
export const MIGRATIONS: PgDomainMigrations = {
  domain: 'agents',
  migrations: [
    { version: 1, up: AGENTS_DDL },
  ],
};

const $ = (n: number) => `$${n}`;
const placeholders = (n: number) => Array.from({ length: n }, (_, i) => $(i + 1)).join(', ');

class Profiles implements AgentProfileRepository {
  readonly #db: PgDb;
  constructor(db: PgDb) {
    this.#db = db;
  }

  async get(id: string): Promise<AgentProfile | undefined> {
    const r = await this.#db.one(`SELECT ${PROFILE_COLUMNS} FROM agent_profiles WHERE id = $1`, [id]);
    return r === undefined ? undefined : profileFromRow(r);
  }

  async list(): Promise<AgentProfile[]> {
    return (await this.#db.query(`SELECT ${PROFILE_COLUMNS} FROM agent_profiles ORDER BY id`)).map(profileFromRow);
  }

  async put(p: AgentProfile): Promise<void> {
    await this.#db.execute(
      `INSERT INTO agent_profiles (${PROFILE_COLUMNS}) VALUES (${placeholders(7)})
       ON CONFLICT (id) DO UPDATE SET sponsor = EXCLUDED.sponsor, model = EXCLUDED.model, provider = EXCLUDED.provider,
                                      tools = EXCLUDED.tools, updated_at = EXCLUDED.updated_at`,
      profileValues(p),
    );
  }
}

class Assignments implements AssignmentRepository {
  readonly #db: PgDb;
  constructor(db: PgDb) {
    this.#db = db;
  }

  async insert(a: Assignment): Promise<void> {
    await this.#db.execute(`INSERT INTO agent_assignments (${ASSIGNMENT_COLUMNS}) VALUES (${placeholders(14)})`, assignmentValues(a));
  }

  async get(id: string): Promise<Assignment | undefined> {
    const r = await this.#db.one(`SELECT ${ASSIGNMENT_COLUMNS} FROM agent_assignments WHERE id = $1`, [id]);
    return r === undefined ? undefined : assignmentFromRow(r);
  }

  async list(filter: AssignmentFilter = {}, limit = 1000): Promise<Assignment[]> {
    const { where, params } = assignmentWhere(filter, $);
    const rows = await this.#db.query(`SELECT ${ASSIGNMENT_COLUMNS} FROM agent_assignments ${where} ORDER BY created_at DESC, id DESC LIMIT ${$(params.length + 1)}`, [...params, limit]);
    return rows.map(assignmentFromRow);
  }

  async end(id: string, at: number, reason: string): Promise<Assignment | undefined> {
    // Compare-and-set in one statement: of two replicas ending it at once, one gets the row.
    const r = await this.#db.one(`UPDATE agent_assignments SET status = 'ended', ended_at = $1, ended_reason = $2 WHERE id = $3 AND status = 'active' RETURNING ${ASSIGNMENT_COLUMNS}`, [at, reason, id]);
    return r === undefined ? undefined : assignmentFromRow(r);
  }
}

export function pgAgentStore(db: PgDb): AgentStore {
  return { profiles: new Profiles(db), assignments: new Assignments(db) };
}
