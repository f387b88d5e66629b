// Access review campaigns: what is reviewed (items), by whom, what was decided, and what happens
// to an item nobody answered by the deadline.

/** Which identities a campaign covers: every given field must match (none given: every identity). */
export interface ReviewScope {
  boundary?: string;
  environment?: string;
  /** The identity's `owner` exactly (`team:payments`, `user:alice@example.com`). */
  owner?: string;
  kind?: string;
}

/** What happens to an item still undecided at the deadline: never "keep". */
export type DefaultAction = 'suspend' | 'revoke';
export type ReviewDecision = 'keep' | 'revoke' | 'narrow';
export type CampaignStatus = 'open' | 'closed';

/**
 * What an item is about: the identity's standing access (`identity`: its effective permissions and
 * their use, from the analysis when present), one `permission` (action on resource), a `grant`, or
 * an `apikey`.
 */
export type ItemKind = 'identity' | 'permission' | 'grant' | 'apikey';

/** An item as its source proposes it (before reviewers and ids are given). */
export interface ItemDraft {
  identity_id: string;
  kind: ItemKind;
  /** The grant id, the API key id, `action on resource`, or the identity id. */
  ref: string;
  /** What the reviewer sees: a sentence. */
  summary: string;
  /** Usage evidence: last use (RFC 3339 or null), counts over the window, … (no secrets). */
  usage: Record<string, unknown>;
}

export interface ReviewItem extends ItemDraft {
  id: string;
  campaign_id: string;
  /** Who may decide it: the identity's accountable humans, or the campaign's named reviewers. */
  reviewers: string[];
  decision: ReviewDecision | null;
  decided_by: string | null;
  decided_at: string | null;
  comment: string | null;
  /**
   * What came of the decision: `kept`, `revoked`, `suspended`, `narrow-pending` (a narrowed
   * policy awaits its approval), `failed: …`; null while undecided.
   */
  outcome: string | null;
  /** True when the deadline's default action decided it (nobody answered). */
  by_default: boolean;
}

export interface Campaign {
  id: string;
  name: string;
  /** The schedule that opened it (`reviews.schedules[].name`), or null when opened by hand. */
  schedule: string | null;
  scope: ReviewScope;
  status: CampaignStatus;
  default_action: DefaultAction;
  /** Reviewers named for every item (besides the owners), may be empty. */
  named_reviewers: string[];
  created_by: string;
  opened_at: string;
  deadline_at: string;
  reminded_at: string | null;
  closed_at: string | null;
  closed_by: string | null;
  close_reason: string | null;
}

export interface CampaignWithItems {
  campaign: Campaign;
  items: ReviewItem[];
}

/** Counts per state, for lists and reports. */
export interface CampaignProgress {
  items: number;
  decided: number;
  keep: number;
  revoke: number;
  narrow: number;
  by_default: number;
}

export function progressOf(items: readonly ReviewItem[]): CampaignProgress {
  const p: CampaignProgress = { items: items.length, decided: 0, keep: 0, revoke: 0, narrow: 0, by_default: 0 };
  for (const i of items) {
    if (i.decision === null) continue;
    p.decided++;
    p[i.decision]++;
    if (i.by_default) p.by_default++;
  }
  return p;
}
