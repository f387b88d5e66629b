// SQLite implementation of the agents domain's storage ports (src/agents/ports.ts): agent profiles
// and assignments (domain `agents`).
import type { AgentProfileRepository, AgentStore, AssignmentCallRecord, AssignmentCallRepository, AssignmentFilter, AssignmentRepository } from '../../agents/ports.ts';
import type { AgentProfile, Assignment, CallReservation } from '../../agents/types.ts';
import type { Migration, SqliteDb } from './db.ts';
import { migrate } from './db.ts';
import { SqliteRepo } from './repo.ts';
import { AGENT_CALLS_DDL, AGENTS_DDL, ASSIGNMENT_COLUMNS, PRUNABLE_ASSIGNMENTS, historyFromRows, PROFILE_COLUMNS, assignmentFromRow, assignmentValues, assignmentWhere, profileFromRow, profileValues } from '../rows/agents.ts';

// Version 1: the tables (the same DDL as the PostgreSQL store's); 2: the calls counted per assignment.
const AGENTS_MIGRATIONS: readonly Migration[] = [
  { version: 1, up: AGENTS_DDL },
  { version: 2, up: AGENT_CALLS_DDL },
];

export class SqliteAgentStore implements AgentStore {
  readonly profiles: AgentProfileRepository;
  readonly assignments: AssignmentRepository;
  readonly calls: AssignmentCallRepository;

  constructor(db: SqliteDb) {
    migrate(db.raw, 'agents', AGENTS_MIGRATIONS);
    this.profiles = new Profiles(db);
    this.assignments = new Assignments(db);
    this.calls = new Calls(db);
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

/** One process writes (BEGIN IMMEDIATE): reading and counting in one `atomic` is the whole of it. */
class Calls extends SqliteRepo implements AssignmentCallRepository {
  reserve(c: AssignmentCallRecord, since: number, cap: number): Promise<CallReservation> {
    return this.atomic((s) => {
      const recent = Number(s('SELECT count(*) AS n FROM agent_calls WHERE assignment_id = ? AND tool = ? AND at > ?').get(c.assignmentId, c.tool, since)!.n);
      const history = historyFromRows(s('SELECT tool, labels FROM agent_call_tools WHERE assignment_id = ? AND live > 0').all(c.assignmentId));
      if (cap > 0 && recent >= cap) return { ...history, recent };
      s('INSERT INTO agent_calls (id, assignment_id, tool, at) VALUES (?, ?, ?, ?)').run(c.id, c.assignmentId, c.tool, c.at);
      s(`INSERT INTO agent_call_tools (assignment_id, tool, labels, live, expires_at) VALUES (?, ?, ?, 1, ?)
         ON CONFLICT (assignment_id, tool) DO UPDATE SET live = live + 1, labels = excluded.labels`).run(c.assignmentId, c.tool, JSON.stringify(c.labels), c.expiresAt);
      return { id: c.id, ...history, recent };
    });
  }

  async release(id: string): Promise<void> {
    await this.atomic((s) => {
      const r = s('DELETE FROM agent_calls WHERE id = ? RETURNING assignment_id, tool').get(id);
      if (r) s('UPDATE agent_call_tools SET live = live - 1 WHERE assignment_id = ? AND tool = ?').run(r.assignment_id as string, r.tool as string);
    });
  }

  history(assignmentId: string, since: number) {
    return this.run((s) => {
      const recent: Record<string, number> = {};
      for (const r of s('SELECT tool, count(*) AS n FROM agent_calls WHERE assignment_id = ? AND at > ? GROUP BY tool').all(assignmentId, since)) recent[String(r.tool)] = Number(r.n);
      return { ...historyFromRows(s('SELECT tool, labels FROM agent_call_tools WHERE assignment_id = ? AND live > 0').all(assignmentId)), recent };
    });
  }

  prune(now: number): Promise<number> {
    return this.atomic((s) => {
      const gone = s(`DELETE FROM agent_calls WHERE assignment_id IN (${PRUNABLE_ASSIGNMENTS('?')})`).run(now).changes;
      s(`DELETE FROM agent_call_tools WHERE assignment_id IN (${PRUNABLE_ASSIGNMENTS('?')})`).run(now);
      return Number(gone);
    });
  }
}
