// The agents domain's storage ports: agent profiles (sponsor, model, tools) and assignments,
// implemented for SQLite and PostgreSQL in src/store/.
import type { AgentProfile, Assignment } from './types.ts';

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

export interface AgentStore {
  readonly profiles: AgentProfileRepository;
  readonly assignments: AssignmentRepository;
}
