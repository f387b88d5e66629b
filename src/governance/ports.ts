// The governance domain's storage: access review campaigns and lifecycle flags (src/store/ implements both).
import type { ReviewRepository } from './reviews/ports.ts';
import type { FlagRepository } from './lifecycle/ports.ts';

export interface GovernanceStore {
  readonly reviews: ReviewRepository;
  readonly flags: FlagRepository;
}
