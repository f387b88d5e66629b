// The governance admin API: access review campaigns (open, list, show, decide, close), lifecycle
// (rotation due dates, flags, owner offboarding) and the evidence report. Each call decides with
// Cedar first: `review.read` / `review.manage` / `lifecycle.read` / `lifecycle.manage` /
// `report.read` on the control plane; deciding an item is `review.decide` (humans, system:reviewers)
// and the campaign itself lets only the item's reviewers decide (`review.manage` overrides, recorded).
import type { Caller } from './types.ts';
import type { Authorization } from './authorization.ts';
import type { Governance } from './governance.ts';
import type { AuditLog } from '../audit/log.ts';
import type { Clock } from '../common/clock.ts';
import type { Keyring } from '../crypto/keyring.ts';
import type { OpenInput } from '../governance/reviews/campaigns.ts';
import type { Campaign, CampaignWithItems, ReviewDecision, ReviewItem } from '../governance/reviews/types.ts';
import type { OffboardResult, RotationItem } from '../governance/lifecycle/lifecycle.ts';
import type { IdentityFlag } from '../governance/lifecycle/ports.ts';
import { buildEvidence, parsePeriod } from '../governance/report/evidence.ts';
import type { EvidenceReport } from '../governance/report/evidence.ts';
import { opaqueId } from './opaque.ts';
import { Forbidden } from '../common/errors.ts';
import { recordAdminEvent } from './admin-event.ts';

export interface GovernanceAdminDeps {
  authz: Pick<Authorization, 'requireAllowed' | 'allows'>;
  governance: Governance;
  audit: AuditLog;
  clock: Clock;
  keyring: Keyring;
}

const CONTROL_PLANE = { type: 'ControlPlane', id: 'portcullis' };
const REVIEWS = { type: 'ControlPlane', id: 'reviews' };

export class GovernanceAdmin {
  readonly #d: GovernanceAdminDeps;

  constructor(d: GovernanceAdminDeps) {
    this.#d = d;
  }

  // ── Reviews ───────────────────────────────────────────────────────────────────────────────

  async openCampaign(c: Caller, input: OpenInput): Promise<CampaignWithItems> {
    await this.#d.authz.requireAllowed(c, 'review.manage', CONTROL_PLANE);
    return this.#d.governance.reviews.open(c.identity.id, input);
  }

  async listCampaigns(c: Caller, q: { status?: 'open' | 'closed'; schedule?: string; limit?: number }) {
    await this.#d.authz.requireAllowed(c, 'review.read', CONTROL_PLANE);
    return this.#d.governance.reviews.list(q, q.limit ?? 200);
  }

  /** Undecided items the caller is a reviewer of (any human: `review.decide`). */
  async myItems(c: Caller): Promise<ReviewItem[]> {
    await this.#d.authz.requireAllowed(c, 'review.decide', REVIEWS);
    return this.#d.governance.reviews.pendingFor(c.identity.id);
  }

  /** A campaign with its items: `review.read`, or a reviewer listed on one of its items. */
  async getCampaign(c: Caller, id: string): Promise<CampaignWithItems> {
    const readsAll = await this.#d.authz.allows(c, 'review.read', CONTROL_PLANE);
    return opaqueId('review campaign', id, () => readsAll, async () => {
      const found = await this.#d.governance.reviews.get(id);
      if (!readsAll && !found.items.some((i) => i.reviewers.includes(c.identity.id))) throw new Forbidden(`not a reviewer in campaign ${id}`);
      return found;
    });
  }

  async decide(c: Caller, itemId: string, decision: ReviewDecision, comment: string | null): Promise<ReviewItem> {
    await this.#d.authz.requireAllowed(c, 'review.decide', REVIEWS);
    const override = await this.#d.authz.allows(c, 'review.manage', CONTROL_PLANE);
    return opaqueId('review item', itemId, () => override, () => this.#d.governance.reviews.decide({ id: c.identity.id, override }, itemId, decision, comment));
  }

  async closeCampaign(c: Caller, id: string, reason: string): Promise<CampaignWithItems> {
    await this.#d.authz.requireAllowed(c, 'review.manage', CONTROL_PLANE);
    return this.#d.governance.reviews.close(c.identity.id, id, reason);
  }

  // ── Lifecycle ─────────────────────────────────────────────────────────────────────────────

  async rotation(c: Caller): Promise<RotationItem[]> {
    await this.#d.authz.requireAllowed(c, 'lifecycle.read', CONTROL_PLANE);
    return this.#d.governance.lifecycle.rotation();
  }

  async flags(c: Caller): Promise<IdentityFlag[]> {
    await this.#d.authz.requireAllowed(c, 'lifecycle.read', CONTROL_PLANE);
    return this.#d.governance.lifecycle.flags();
  }

  /** Offboards a human owner and handles what it owned (`lifecycle.manage`, and `identity.manage` on the owner). */
  async offboardOwner(c: Caller, owner: string, o: { successor?: string; reason: string }): Promise<OffboardResult> {
    await this.#d.authz.requireAllowed(c, 'lifecycle.manage', CONTROL_PLANE);
    await this.#d.authz.requireAllowed(c, 'identity.manage', { type: 'Identity', id: owner });
    const result = await this.#d.governance.lifecycle.offboardOwner(c.identity.id, owner, o);
    await recordAdminEvent(this.#d.audit, c, 'lifecycle.offboard_requested', { owner, successor: result.successor, identities: result.identities.length }, owner);
    return result;
  }

  // ── Evidence ──────────────────────────────────────────────────────────────────────────────

  /** The evidence of a period (`2026-Q4`, `2026-11`, `2026`, `7d`) from the audit streams, with their verification. */
  async report(c: Caller, period: string): Promise<EvidenceReport> {
    const { from, to } = parsePeriod(period, this.#d.clock.now());
    await this.#d.authz.requireAllowed(c, 'report.read', CONTROL_PLANE);
    const g = this.#d.governance;
    const campaigns: Campaign[] = (await g.reviews.list({}, 10_000)).filter((x) => x.opened_at < new Date(to).toISOString() && (x.closed_at ?? '9') >= new Date(from).toISOString());
    return buildEvidence({
      period,
      from,
      to,
      now: this.#d.clock.now(),
      audit: this.#d.audit,
      campaigns,
      rotation: await g.lifecycle.rotation(),
      usage: (await g.postureFacts(90 * 86_400_000)).usage,
      keys: this.#d.keyring.publicKeyResolver,
      auditKeys: this.#d.keyring.auditJwks().keys,
      generatedBy: c.identity.id,
    });
  }
}
