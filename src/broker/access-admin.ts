// Privileged access through the broker: requests and reviews, grants, break-glass and its review,
// webhook deliveries. Visibility is decided here: a human operator sees requests, grants and
// reviews (they are the reviewers); a non-human identity sees its own; everything else needs
// `access.read`. By-id calls answer a caller who may not see the thing like an unknown id.
import { NotFound } from '../common/errors.ts';
import type { Clock } from '../common/clock.ts';
import type { AccessRequest, AccessService, Actor, BreakGlassInput, BreakGlassReview, CreateRequestInput, Delivery, DeliveryStatus, Grant, ListFilter, RequestStatus } from '../access/index.ts';
import type { Caller } from './types.ts';
import type { Authorization } from './authorization.ts';
import { opaqueId } from './opaque.ts';

export interface AccessAdminDeps {
  authz: Pick<Authorization, 'requireAllowed'>;
  access: AccessService;
  clock: Clock;
}

/** One access request as its readers see it: the request, a status sentence, the grant it made. */
export interface RequestView {
  request: AccessRequest;
  status: string;
  grant: Grant | null;
}

const CONTROL_PLANE = { type: 'ControlPlane', id: 'portcullis' };

export class AccessAdmin {
  readonly #d: AccessAdminDeps;

  constructor(deps: AccessAdminDeps) {
    this.#d = deps;
  }

  /** The access-domain actor for a caller. */
  #actor(c: Caller): Actor {
    return { id: c.identity.id, authn: c.authn, sessionId: c.jti, sourceIp: c.sourceIp };
  }

  /** Humans see everything in the access domain; others need access.read. */
  async #mayReadAll(c: Caller): Promise<void> {
    if (c.identity.kind !== 'user') await this.#d.authz.requireAllowed(c, 'access.read', CONTROL_PLANE);
  }

  async #readsAll(c: Caller): Promise<boolean> {
    try {
      await this.#mayReadAll(c);
      return true;
    } catch {
      return false;
    }
  }

  /** The requester sees its request; anyone else needs to read the access domain. */
  async #mayReadRequest(c: Caller, id: string): Promise<boolean> {
    return (await this.#d.access.getRequest(id)).request.requester === c.identity.id || this.#readsAll(c);
  }

  /** The holder sees its grant (and break-glass); anyone else needs to read the access domain. */
  async #mayReadGrant(c: Caller, id: string): Promise<boolean> {
    return (await this.#d.access.listGrants({ identityId: c.identity.id })).some((g) => g.grant.id === id) || this.#readsAll(c);
  }

  // ── Requests ──────────────────────────────────────────────────────────────────────────────

  /** Asks for access (the access domain decides `access.request`); returns the new request. */
  async createRequest(c: Caller, input: CreateRequestInput): Promise<RequestView> {
    const r = await this.#d.access.createRequest(this.#actor(c), input);
    return this.#d.access.getRequest(r.id);
  }

  /**
   * The caller's own requests (default), the ones it could review (`reviewable`), or a
   * requester's / everyone's (`mine: false`), which needs to read the access domain.
   */
  async listRequests(c: Caller, q: { mine?: boolean; reviewable?: boolean; requester?: string; status?: RequestStatus; limit?: number }): Promise<{ request: AccessRequest; status: string }[]> {
    const me = c.identity.id;
    const filter: ListFilter = { ...(q.status && { status: q.status }) };
    if (q.reviewable === true) filter.reviewableBy = me;
    else if (q.requester !== undefined) filter.requester = q.requester;
    else if (q.mine !== false) filter.requester = me;
    if (filter.requester !== me) await this.#mayReadAll(c);
    return this.#d.access.listRequests(filter, q.limit ?? 100);
  }

  async getRequest(c: Caller, id: string): Promise<RequestView> {
    return opaqueId('access request', id, () => false, async () => {
      const view = await this.#d.access.getRequest(id);
      if (view.request.requester !== c.identity.id) await this.#mayReadAll(c);
      return view;
    });
  }

  /** Approve, deny, cancel or comment on a request; the access domain decides who may. Returns the request after. */
  async review(c: Caller, id: string, verb: 'approve' | 'deny' | 'cancel' | 'comment', text: string | undefined): Promise<RequestView> {
    const a = this.#actor(c);
    return opaqueId('access request', id, () => this.#mayReadRequest(c, id), async () => {
      if (verb === 'approve') await this.#d.access.approve(a, id, text);
      else if (verb === 'deny') await this.#d.access.deny(a, id, text);
      else if (verb === 'cancel') await this.#d.access.cancel(a, id, text);
      else await this.#d.access.comment(a, id, text!);
      return this.#d.access.getRequest(id);
    });
  }

  // ── Grants ────────────────────────────────────────────────────────────────────────────────

  /** The caller's grants (default), an identity's, or every one (`all`); another's need to read the access domain. */
  async listGrants(c: Caller, q: { identity?: string; all?: boolean; active?: boolean }): Promise<{ grant: Grant; status: string }[]> {
    const me = c.identity.id;
    const identityId = q.all === true ? undefined : (q.identity ?? me);
    if (identityId !== me) await this.#mayReadAll(c);
    return this.#d.access.listGrants({ ...(identityId !== undefined && { identityId }), ...(q.active === true && { activeAt: this.#d.clock.now() }) });
  }

  /** Ends a grant now (its holder, or someone allowed to approve it); its credentials are revoked. */
  async revokeGrant(c: Caller, id: string, reason: string): Promise<Grant> {
    return opaqueId('grant', id, () => this.#mayReadGrant(c, id), () => this.#d.access.revokeGrant(this.#actor(c), id, reason));
  }

  // ── Break-glass ───────────────────────────────────────────────────────────────────────────

  startBreakGlass(c: Caller, input: BreakGlassInput): Promise<{ grant: Grant; review: BreakGlassReview }> {
    return this.#d.access.startBreakGlass(this.#actor(c), input);
  }

  async endBreakGlass(c: Caller, id: string, reason: string): Promise<Grant> {
    return opaqueId('break-glass', id, () => this.#mayReadGrant(c, id), () => this.#d.access.endBreakGlass(this.#actor(c), id, reason));
  }

  async reviewBreakGlass(c: Caller, id: string, summary: string): Promise<BreakGlassReview> {
    return opaqueId('break-glass', id, () => this.#mayReadGrant(c, id), () => this.#d.access.recordBreakGlassReview(this.#actor(c), id, summary));
  }

  async breakGlassReviews(c: Caller, status?: 'open' | 'closed'): Promise<BreakGlassReview[]> {
    await this.#mayReadAll(c);
    return this.#d.access.breakGlassReviews(status);
  }

  // ── Webhooks ──────────────────────────────────────────────────────────────────────────────

  /** Webhook deliveries (`access.read`); none to show when a custom notifier is in use. */
  async webhookDeliveries(c: Caller, f: { status?: DeliveryStatus; endpoint?: string; eventType?: string }): Promise<Delivery[]> {
    await this.#d.authz.requireAllowed(c, 'access.read', CONTROL_PLANE);
    if (!this.#d.access.webhooks) throw new NotFound('webhook deliveries (a custom notifier is in use)');
    return this.#d.access.webhooks.deliveries(f);
  }
}
