// The reviews' storage ports (implemented for SQLite and PostgreSQL in src/store/): campaigns and
// their items. Times are ms since the epoch going in; records come back as the domain types.
import type { Campaign, CampaignStatus, ReviewDecision, ReviewItem } from './types.ts';

export type NewCampaign = Omit<Campaign, 'opened_at' | 'deadline_at' | 'reminded_at' | 'closed_at' | 'closed_by' | 'close_reason' | 'status'> & {
  opened_at: number;
  deadline_at: number;
};

export type NewItem = Omit<ReviewItem, 'decision' | 'decided_by' | 'decided_at' | 'comment' | 'outcome' | 'by_default'>;

export interface CampaignFilter {
  status?: CampaignStatus;
  schedule?: string;
}

export interface ReviewRepository {
  create(c: NewCampaign, items: readonly NewItem[]): Promise<void>;
  get(id: string): Promise<Campaign | undefined>;
  items(campaignId: string): Promise<ReviewItem[]>;
  item(itemId: string): Promise<ReviewItem | undefined>;
  /** Newest first. */
  list(f: CampaignFilter, limit: number): Promise<Campaign[]>;
  /** Records a decision on an undecided item; false when it was already decided. */
  decide(itemId: string, d: { decision: ReviewDecision; by: string; at: number; comment: string | null; byDefault: boolean }): Promise<boolean>;
  /** What came of a decision (applied, pending, failed). */
  setOutcome(itemId: string, outcome: string): Promise<void>;
  /** Closes an open campaign; false when it was already closed. */
  close(id: string, c: { at: number; by: string; reason: string }): Promise<boolean>;
  /** Ids of open campaigns whose deadline is at or before `now`. */
  overdue(now: number): Promise<string[]>;
  /** Open campaigns whose deadline is at or before `by`, not reminded yet. */
  unreminded(by: number): Promise<string[]>;
  /** Marks the reminder sent; false when another replica already did. */
  markReminded(id: string, at: number): Promise<boolean>;
  /** When the schedule's newest campaign was opened (ms), or undefined. */
  lastOpened(schedule: string): Promise<number | undefined>;
}
