// The agents domain's storage ports: agent profiles (sponsor, model, tools) and assignments,
// implemented for SQLite and PostgreSQL in src/store/.
import type { AgentProfile, Assignment, CallReservation } from './types.ts';

export interface AgentProfileRepository {
  get(id: string): Promise<AgentProfile | undefined>;
  /** Every profile, ordered by id. */
  list(): Promise<AgentProfile[]>;
  /** Inserts or replaces the profile of `p.id` (its `createdAt` kept when it exists). */
  put(p: AgentProfile): Promise<void>;
}

export interface AssignmentFilter {
  agentId?: string;
  delegatorId?: string;
  sponsorId?: string;
  parentId?: string;
  /** `active` rows (ended ones are `ended`; expiry is read from `expiresAt`, not stored). */
  status?: 'active' | 'ended';
}

export interface AssignmentRepository {
  insert(a: Assignment): Promise<void>;
  get(id: string): Promise<Assignment | undefined>;
  /** Newest first (created_at, then id), at most `limit`. */
  list(filter?: AssignmentFilter, limit?: number): Promise<Assignment[]>;
  /** Compare-and-set: marks an active assignment ended; undefined when it was not active (someone else got there first). */
  end(id: string, at: number, reason: string): Promise<Assignment | undefined>;
}

/** One call counted under an assignment (`id` random, `at` epoch ms). */
export interface AssignmentCallRecord {
  id: string;
  assignmentId: string;
  tool: string;
  labels: readonly string[];
  at: number;
  /** The assignment's end (rows may be pruned after it). */
  expiresAt: number;
}

/**
 * The calls counted under each assignment (MCP gateway budgets and taint), shared by every
 * replica. `reserve` is atomic per assignment across replicas: it reads the history and the
 * tool's calls since `since`, and unless `cap` (> 0) is reached, records the call — in one step,
 * so of two concurrent calls one sees the other.
 */
export interface AssignmentCallRepository {
  /** The history before this call; `id` is set when it was recorded (not over `cap`). */
  reserve(call: AssignmentCallRecord, since: number, cap: number): Promise<CallReservation>;
  /** Uncounts a recorded call (it was refused after all): no longer in the budget nor the history. */
  release(id: string): Promise<void>;
  /** Labels and tools of the assignment's counted calls, and calls per tool since `since`. */
  history(assignmentId: string, since: number): Promise<{ labels: string[]; called: string[]; recent: Record<string, number> }>;
  /** Deletes the calls of assignments ended, or expired before `now`; how many call rows went. */
  prune(now: number): Promise<number>;
}

export interface AgentStore {
  readonly profiles: AgentProfileRepository;
  readonly assignments: AssignmentRepository;
  readonly calls: AssignmentCallRepository;
}
