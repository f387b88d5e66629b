// The agent domain's shared shapes: an assignment (one unit of work an agent does for a human —
// not "task", which MCP uses for its own Tasks primitive) and the claim that ties a token to it.
// The MCP gateway reads assignments through the GatewayHost; the agents domain owns their storage.

/** An assignment id: `asg_` and 20 url-safe random characters. */
export const ASSIGNMENT_ID_RE = /^asg_[A-Za-z0-9_-]{20}$/;

/** The access-token claim that carries the assignment id (tokens issued by the RFC 8693 exchange for it). */
export const ASSIGNMENT_CLAIM = 'asg';

export type AssignmentStatus = 'active' | 'ended' | 'expired';

export interface Assignment {
  id: string;
  /** The agent (an identity of kind `agent`) doing the work. */
  agentId: string;
  /** The human the agent acts for (the delegating user: `sub` of tokens issued under it). */
  delegatorId: string;
  /** The agent's sponsor when the assignment was made (the accountable human). */
  sponsorId: string;
  /** The declared intent/purpose, as the delegating user gave it. */
  intent: string;
  /** Tools the agent may reach under it: `server/tool`, or `server/*` for all of a server's tools. */
  tools: string[];
  /** Resource indicators (RFC 8707) tokens may be issued for: each token names exactly one. */
  audiences: string[];
  createdAt: number;
  expiresAt: number;
  status: AssignmentStatus;
  endedAt?: number;
  endedReason?: string;
  /** A sub-assignment (an agent handing part of its work to another agent): the assignment it narrows. */
  parentId?: string;
  /** Agents in the chain: 1 for an agent acting for its delegator, 2 for its sub-agent, … (absent: 1). */
  depth?: number;
}

/** The agent-only facts of an identity of kind `agent` (its owner team and boundary stay on the identity). */
export interface AgentProfile {
  /** The agent's identity id. */
  id: string;
  /** The accountable human (an identity of kind `user`). */
  sponsor: string;
  model: string | null;
  provider: string | null;
  /** Tools the agent may ever reach (`server/tool` or `server/*`); an assignment names a subset. */
  tools: string[];
  createdAt: number;
  updatedAt: number;
}

/** How a gateway (or anything outside the agents domain) reads an assignment. */
export interface AssignmentReader {
  get(id: string): Promise<Assignment | undefined>;
}

/** The window of `callsLastMinute` and of `calls_per_tool_per_minute`. */
export const CALL_WINDOW_MS = 60_000;

/**
 * An assignment's call history as policy sees it (docs/agents.md "Budgets and taint"): the labels
 * and tools of the calls counted so far, and per tool the calls in the last `CALL_WINDOW_MS`.
 */
export interface CallHistory {
  labels: string[];
  called: string[];
  recent: Record<string, number>;
}

/** One call to count under an assignment (a `server/tool` and its configured labels). */
export interface CallToCount {
  assignmentId: string;
  tool: string;
  labels: readonly string[];
  /** The assignment's end: its rows may be pruned after it. */
  expiresAt: number;
  /** Refuse (record nothing) when `tool` already has this many calls in the window; 0: no cap. */
  cap: number;
}

/** The result of counting a call: `id` (to release it) unless the cap was reached; the history before it. */
export interface CallReservation {
  id?: string;
  /** Labels and tools of the calls counted before this one. */
  labels: string[];
  called: string[];
  /** Calls of this tool counted in the window before this one. */
  recent: number;
}

/**
 * The call history of assignments, shared by every replica through the store: what budgets and
 * taint are decided on. `reserve` reads and counts in one atomic step (so two concurrent calls
 * see each other in some order); a call that is then refused is released.
 */
export interface AssignmentCalls {
  reserveCall(call: CallToCount): Promise<CallReservation>;
  releaseCall(id: string): Promise<void>;
  callHistory(assignmentId: string): Promise<CallHistory>;
  /** Deletes the history of ended and expired assignments; the number of calls forgotten. */
  pruneCalls(): Promise<number>;
}
