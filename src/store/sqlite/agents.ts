// SQLite implementation of the agents domain's storage ports (src/agents/ports.ts): agent profiles
// and assignments (domain `agents`).
import type { AgentProfileRepository, AgentStore, AssignmentFilter, AssignmentRepository } from '../../agents/ports.ts';
import type { AgentProfile, Assignment } from '../../agents/types.ts';
import type { Migration, SqliteDb } from './db.ts';
import { migrate } from './db.ts';
import { SqliteRepo } from './repo.ts';
import { AGENTS_DDL, ASSIGNMENT_COLUMNS, PROFILE_COLUMNS, assignmentFromRow, assignmentValues, assignmentWhere, profileFromRow, profileValues } from '../rows/agents.ts';

// Version 1: the tables (the same DDL as the PostgreSQL store's).
const AGENTS_MIGRATIONS: readonly Migration[] = [{ version: 1, up: AGENTS_DDL }];

export class SqliteAgentStore implements AgentStore {
  readonly profiles: AgentProfileRepository;
  readonly assignments: AssignmentRepository;

  constructor(db: SqliteDb) {
    migrate(db.raw, 'agents', AGENTS_MIGRATIONS);
    this.profiles = new Profiles(db);
    this.assignments = new Assignments(db);
  }
}

class Profiles extends SqliteRepo implements AgentProfileRepository {
  get(id: string): Promise<AgentProfile | undefined> {
    return this.run((s) => {
      const r = s(`SELECT ${PROFILE_COLUMNS} FROM agent_profiles WHERE id = ?`).get(id);
      return r === undefined ? undefined : profileFromRow(r);
    });
  }

  list(): Promise<AgentProfile[]> {
    return this.run((s) => s(`SELECT ${PROFILE_COLUMNS} FROM agent_profiles ORDER BY id`).all().map(profileFromRow));
  }

  async put(p: AgentProfile): Promise<void> {
    await this.atomic((s) =>
      s(`INSERT INTO agent_profiles (${PROFILE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET sponsor = excluded.sponsor, model = excluded.model, provider = excluded.provider,
                                        tools = excluded.tools, updated_at = excluded.updated_at`).run(...profileValues(p)),
    );
  }
}

class Assignments extends SqliteRepo implements AssignmentRepository {
  async insert(a: Assignment): Promise<void> {
    await this.atomic((s) => s(`INSERT INTO agent_assignments (${ASSIGNMENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(...assignmentValues(a)));
  }

  get(id: string): Promise<Assignment | undefined> {
    return this.run((s) => {
      const r = s(`SELECT ${ASSIGNMENT_COLUMNS} FROM agent_assignments WHERE id = ?`).get(id);
      return r === undefined ? undefined : assignmentFromRow(r);
    });
  }

  list(filter: AssignmentFilter = {}, limit = 1000): Promise<Assignment[]> {
    const { where, params } = assignmentWhere(filter, () => '?');
    return this.run((s) => s(`SELECT ${ASSIGNMENT_COLUMNS} FROM agent_assignments ${where} ORDER BY created_at DESC, id DESC LIMIT ?`).all(...params, limit).map(assignmentFromRow));
  }

  end(id: string, at: number, reason: string): Promise<Assignment | undefined> {
    return this.atomic((s) => {
      const r = s(`UPDATE agent_assignments SET status = 'ended', ended_at = ?, ended_reason = ? WHERE id = ? AND status = 'active' RETURNING ${ASSIGNMENT_COLUMNS}`).get(at, reason, id);
      return r === undefined ? undefined : assignmentFromRow(r);
    });
  }
}
