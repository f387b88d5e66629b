// The policy domain's storage ports: what it needs from a store, implemented in src/store/.
// Policy set versions and the active one.
import type { PolicyFile } from './policy-set.ts';

/** The policy domain's repositories, as one store holds them. */
export interface PolicyStoreRepository {
  readonly versions: PolicyVersionRepository;
}

/** One activation of a policy set. Every activation is a new version; the newest is the active one. */
export interface PolicyVersion {
  version: number;
  created_at: string;
  actor: string;
  reason: string;
  /** SHA-256 over the files (digestFiles). */
  digest: string;
  files: PolicyFile[];
}

export type PolicyVersionSummary = Omit<PolicyVersion, 'files'>;

/** Numbered policy versions, never changed once stored. */
export interface PolicyVersionRepository {
  /** The newest version: the active one. */
  newest(): Promise<PolicyVersion | undefined>;
  get(version: number): Promise<PolicyVersion | undefined>;
  /** Every version without its files, newest first. */
  list(): Promise<PolicyVersionSummary[]>;
  /** Stores a version numbered one past the newest (atomically: two appends never share a number); returns it. */
  append(v: Omit<PolicyVersion, 'version'>): Promise<PolicyVersion>;
}
