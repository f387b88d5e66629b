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
