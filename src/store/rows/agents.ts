// Row ↔ domain mapping of the agents tables, shared by the SQLite and PostgreSQL stores (times are
// epoch milliseconds; tools and audiences JSON text).
import type { AgentProfile, Assignment, AssignmentStatus } from '../../agents/types.ts';

/** The tables, the same text on both stores (version 1 of domain `agents`). */
export const AGENTS_DDL = `
  CREATE TABLE agent_profiles (
    id TEXT PRIMARY KEY, sponsor TEXT NOT NULL, model TEXT, provider TEXT, tools TEXT NOT NULL,
    created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL);
  CREATE INDEX agent_profiles_sponsor ON agent_profiles (sponsor);
  CREATE TABLE agent_assignments (
    id TEXT PRIMARY KEY, agent_id TEXT NOT NULL, delegator_id TEXT NOT NULL, sponsor_id TEXT NOT NULL,
    intent TEXT NOT NULL, tools TEXT NOT NULL, audiences TEXT NOT NULL,
    created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, status TEXT NOT NULL,
    ended_at BIGINT, ended_reason TEXT, parent_id TEXT, depth INTEGER NOT NULL);
  CREATE INDEX agent_assignments_agent ON agent_assignments (agent_id, status);
  CREATE INDEX agent_assignments_delegator ON agent_assignments (delegator_id, status);
  CREATE INDEX agent_assignments_parent ON agent_assignments (parent_id);`;

export const PROFILE_COLUMNS = 'id, sponsor, model, provider, tools, created_at, updated_at';
export const ASSIGNMENT_COLUMNS = 'id, agent_id, delegator_id, sponsor_id, intent, tools, audiences, created_at, expires_at, status, ended_at, ended_reason, parent_id, depth';

export function profileValues(p: AgentProfile): (string | number | null)[] {
  return [p.id, p.sponsor, p.model, p.provider, JSON.stringify(p.tools), p.createdAt, p.updatedAt];
}

export function profileFromRow(r: Record<string, unknown>): AgentProfile {
  return {
    id: String(r.id),
    sponsor: String(r.sponsor),
    model: r.model === null ? null : String(r.model),
    provider: r.provider === null ? null : String(r.provider),
    tools: JSON.parse(String(r.tools)) as string[],
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
  };
}

export function assignmentValues(a: Assignment): (string | number | null)[] {
  return [
    a.id, a.agentId, a.delegatorId, a.sponsorId, a.intent, JSON.stringify(a.tools), JSON.stringify(a.audiences), a.createdAt, a.expiresAt,
    a.status === 'ended' ? 'ended' : 'active', a.endedAt ?? null, a.endedReason ?? null, a.parentId ?? null, a.depth ?? 1,
  ];
}

export function assignmentFromRow(r: Record<string, unknown>): Assignment {
  return {
    id: String(r.id),
    agentId: String(r.agent_id),
    delegatorId: String(r.delegator_id),
    sponsorId: String(r.sponsor_id),
    intent: String(r.intent),
    tools: JSON.parse(String(r.tools)) as string[],
    audiences: JSON.parse(String(r.audiences)) as string[],
    createdAt: Number(r.created_at),
    expiresAt: Number(r.expires_at),
    status: String(r.status) as AssignmentStatus,
    ...(r.ended_at !== null && r.ended_at !== undefined && { endedAt: Number(r.ended_at) }),
    ...(r.ended_reason !== null && r.ended_reason !== undefined && { endedReason: String(r.ended_reason) }),
    ...(r.parent_id !== null && r.parent_id !== undefined && { parentId: String(r.parent_id) }),
    depth: Number(r.depth),
  };
}

/** The WHERE clause of an assignment filter, with `?`-style or `$n` placeholders. */
export function assignmentWhere(f: { agentId?: string; delegatorId?: string; sponsorId?: string; parentId?: string; status?: string }, placeholder: (n: number) => string): { where: string; params: string[] } {
  const conds: string[] = [];
  const params: string[] = [];
  for (const [col, v] of [['agent_id', f.agentId], ['delegator_id', f.delegatorId], ['sponsor_id', f.sponsorId], ['parent_id', f.parentId], ['status', f.status]] as const) {
    if (v === undefined) continue;
    params.push(v);
    conds.push(`${col} = ${placeholder(params.length)}`);
  }
  return { where: conds.length ? `WHERE ${conds.join(' AND ')}` : '', params };
}

/**
 * Version 2 of domain `agents`: the calls counted under each assignment (MCP gateway budgets and
 * taint, shared by replicas). `agent_calls` one row per call (the window count); `agent_call_tools`
 * one row per assignment and tool: its labels and how many of its calls are counted (`live`, so a
 * released call takes its taint back), and the assignment's end for pruning.
 */
export const AGENT_CALLS_DDL = `
  CREATE TABLE agent_calls (
    id TEXT PRIMARY KEY, assignment_id TEXT NOT NULL, tool TEXT NOT NULL, at BIGINT NOT NULL);
  CREATE INDEX agent_calls_window ON agent_calls (assignment_id, tool, at);
  CREATE TABLE agent_call_tools (
    assignment_id TEXT NOT NULL, tool TEXT NOT NULL, labels TEXT NOT NULL, live INTEGER NOT NULL,
    expires_at BIGINT NOT NULL, PRIMARY KEY (assignment_id, tool));
  CREATE INDEX agent_call_tools_expiry ON agent_call_tools (expires_at);`;

/** Labels (union, sorted) and tools of `agent_call_tools` rows with live calls. */
export function historyFromRows(rows: readonly Record<string, unknown>[]): { labels: string[]; called: string[] } {
  const labels = new Set<string>();
  const called: string[] = [];
  for (const r of rows) {
    called.push(String(r.tool));
    for (const l of JSON.parse(String(r.labels)) as string[]) labels.add(l);
  }
  return { labels: [...labels].sort(), called: called.sort() };
}

/** Assignments whose calls may be forgotten: ended, or past their end (`$now` / `?` is the one parameter). */
export const PRUNABLE_ASSIGNMENTS = (now: string) => `
  SELECT assignment_id FROM agent_call_tools WHERE expires_at <= ${now}
  UNION SELECT t.assignment_id FROM agent_call_tools t JOIN agent_assignments a ON a.id = t.assignment_id WHERE a.status = 'ended'`;
