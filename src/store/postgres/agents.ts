// PostgreSQL implementation of the agents domain's storage ports (src/agents/ports.ts): agent
// profiles and assignments, shared by every replica (domain `agents`).
import type { AgentProfileRepository, AgentStore, AssignmentCallRecord, AssignmentCallRepository, AssignmentFilter, AssignmentRepository } from '../../agents/ports.ts';
import type { AgentProfile, Assignment, CallReservation } from '../../agents/types.ts';
import type { PgDb, PgDomainMigrations } from './db.ts';
import { AGENT_CALLS_DDL, AGENTS_DDL, ASSIGNMENT_COLUMNS, PRUNABLE_ASSIGNMENTS, historyFromRows, PROFILE_COLUMNS, assignmentFromRow, assignmentValues, assignmentWhere, profileFromRow, profileValues } from '../rows/agents.ts';

// The same tables as the SQLite store's (the DDL is shared: src/store/rows/agents.ts).
export const MIGRATIONS: PgDomainMigrations = {
  domain: 'agents',
  migrations: [
    { version: 1, up: AGENTS_DDL },
    // The calls counted per assignment, and the one-round-trip reserve (see Calls.reserve).
    {
      version: 2,
      up: `${AGENT_CALLS_DDL}
        CREATE FUNCTION agent_call_reserve(p_id text, p_asg text, p_tool text, p_labels text, p_at bigint, p_expires bigint, p_since bigint, p_cap integer)
        RETURNS TABLE (recorded boolean, recent bigint, tools text[], labels text[])
        LANGUAGE plpgsql VOLATILE AS $fn$
        DECLARE n bigint; t text[]; l text[];
        BEGIN
          -- One holder per assignment at a time; each statement below takes a new snapshot (READ
          -- COMMITTED), so it sees what the previous holder committed before releasing the lock.
          PERFORM pg_advisory_xact_lock(hashtextextended('agent-calls:' || p_asg, 0));
          SELECT count(*) INTO n FROM agent_calls c WHERE c.assignment_id = p_asg AND c.tool = p_tool AND c.at > p_since;
          SELECT coalesce(array_agg(x.tool), '{}'), coalesce(array_agg(x.labels), '{}') INTO t, l
            FROM agent_call_tools x WHERE x.assignment_id = p_asg AND x.live > 0;
          IF p_cap > 0 AND n >= p_cap THEN
            RETURN QUERY SELECT false, n, t, l;
            RETURN;
          END IF;
          INSERT INTO agent_calls (id, assignment_id, tool, at) VALUES (p_id, p_asg, p_tool, p_at);
          INSERT INTO agent_call_tools AS x (assignment_id, tool, labels, live, expires_at) VALUES (p_asg, p_tool, p_labels, 1, p_expires)
            ON CONFLICT (assignment_id, tool) DO UPDATE SET live = x.live + 1, labels = EXCLUDED.labels;
          RETURN QUERY SELECT true, n, t, l;
        END $fn$;`,
    },
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

/**
 * Replicas count calls of one assignment one at a time: `reserve` is one statement (a function
 * that takes a transaction-scoped advisory lock on the assignment, reads, and inserts), one round
 * trip in its own implicit transaction — or in the caller's, whose end then releases the lock.
 */
class Calls implements AssignmentCallRepository {
  readonly #db: PgDb;
  constructor(db: PgDb) {
    this.#db = db;
  }

  async reserve(c: AssignmentCallRecord, since: number, cap: number): Promise<CallReservation> {
    const r = (await this.#db.one('SELECT recorded, recent, tools, labels FROM agent_call_reserve($1, $2, $3, $4, $5, $6, $7, $8)', [c.id, c.assignmentId, c.tool, JSON.stringify(c.labels), c.at, c.expiresAt, since, cap]))!;
    const tools = r.tools as string[];
    const history = historyFromRows((r.labels as string[]).map((labels, i) => ({ tool: tools[i], labels })));
    return { ...(r.recorded === true && { id: c.id }), ...history, recent: Number(r.recent) };
  }

  async release(id: string): Promise<void> {
    await this.#db.execute(
      `WITH d AS (DELETE FROM agent_calls WHERE id = $1 RETURNING assignment_id, tool)
       UPDATE agent_call_tools x SET live = x.live - 1 FROM d WHERE x.assignment_id = d.assignment_id AND x.tool = d.tool`,
      [id],
    );
  }

  async history(assignmentId: string, since: number) {
    const [counts, tools] = await Promise.all([
      this.#db.query('SELECT tool, count(*) AS n FROM agent_calls WHERE assignment_id = $1 AND at > $2 GROUP BY tool', [assignmentId, since]),
      this.#db.query('SELECT tool, labels FROM agent_call_tools WHERE assignment_id = $1 AND live > 0', [assignmentId]),
    ]);
    const recent: Record<string, number> = {};
    for (const r of counts) recent[String(r.tool)] = Number(r.n);
    return { ...historyFromRows(tools), recent };
  }

  async prune(now: number): Promise<number> {
    return this.#db.transaction(async () => {
      const gone = await this.#db.execute(`DELETE FROM agent_calls WHERE assignment_id IN (${PRUNABLE_ASSIGNMENTS('$1')})`, [now]);
      await this.#db.execute(`DELETE FROM agent_call_tools WHERE assignment_id IN (${PRUNABLE_ASSIGNMENTS('$1')})`, [now]);
      return gone;
    });
  }
}

export function pgAgentStore(db: PgDb): AgentStore {
  return { profiles: new Profiles(db), assignments: new Assignments(db), calls: new Calls(db) };
}
