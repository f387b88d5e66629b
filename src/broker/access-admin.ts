// Privileged access through the broker: requests and reviews, grants, break-glass and its review,
// webhook deliveries. Who reads what is decided here, the same way for people and workloads
// (docs/access.md "Who reads what"): a caller's own requests, grants and reviews need no decision;
// anything else is one recorded `access.read` decision per call — allowed: all of it; denied: only
// the rows the access domain says the caller may review (its ReaderView, asked unrecorded). By-id
// calls answer a caller who may not see the thing like an unknown id.
import { InvalidInput, NotFound, PortcullisError } from '../common/errors.ts';
import type { Clock } from '../common/clock.ts';
import type { AccessRequest, AccessService, Actor, BreakGlassInput, BreakGlassReview, CreateRequestInput, Delivery, DeliveryStatus, Grant, Keyset, ListFilter, RequestStatus } from '../access/index.ts';
import type { Caller } from './types.ts';
import type { Authorization } from './authorization.ts';
import { opaqueId } from './opaque.ts';
import { DecryptionFailed, open, seal } from '../crypto/envelope.ts';
import type { Keyring } from '../crypto/keyring.ts';

/** The keyring secret (crypto/keyring.ts KEYRING_SECRETS) that seals the cursors of filtered lists. */
export const PAGE_CURSOR_SECRET = 'access-page-cursor';

export interface AccessAdminDeps {
  authz: Pick<Authorization, 'requireAllowed'>;
  access: AccessService;
  clock: Clock;
  keyring: Pick<Keyring, 'secret'>;
}

/** One access request as its readers see it: the request, a status sentence, the grant it made. */
export interface RequestView {
  request: AccessRequest;
  status: string;
  grant: Grant | null;
}

const CONTROL_PLANE = { type: 'ControlPlane', id: 'portcullis' };
/** A filtered list reads the store in batches of this many, newest first, and stops after SCAN_MAX. */
const SCAN_BATCH = 200;
const SCAN_MAX = 1000;

/** A page of rows and where the next one starts (`after`), null when this was the last. */
export interface Page<T> {
  rows: T[];
  nextAfter: string | null;
}
/** A page as read: where the next starts, as a position (made a cursor by the caller's path). */
interface Read<T> {
  rows: T[];
  next: Keyset | null;
}
export type RequestPage = Page<{ request: AccessRequest; status: string }>;
export type GrantPage = Page<{ grant: Grant; status: string }>;

/** A list position as a cursor: `<time ms>.<id>` (lists are ordered by that time, then id, both descending). */
const cursorOf = (k: Keyset) => `${k.at}.${k.id}`;
const requestKey = (r: AccessRequest): Keyset => ({ at: Date.parse(r.created_at), id: r.id });
const grantKey = (g: Grant): Keyset => ({ at: Date.parse(g.start_at), id: g.id });
const CURSOR = /^(\d{1,15})\.([A-Za-z0-9_-]{1,200})$/;
/** Sealed cursors (filtered lists) start with this; plain ones with digits. */
const SEALED = 's.';
function parseCursor(after: string): Keyset {
  const m = CURSOR.exec(after);
  if (!m) throw new InvalidInput('after: must be the next_after of the previous page', 'after');
  return { at: Number(m[1]), id: m[2]! };
}

/**
 * Rows `read` gives (newest first, from a position) that `keep` lets through: read in keyset
 * batches until `limit` are kept or SCAN_MAX were read (then `nextAfter` says where to go on), so
 * rows filtered out never end a page early while more remain.
 */
async function scan<T>(read: (before: Keyset | undefined, n: number) => Promise<T[]>, key: (x: T) => Keyset, from: Keyset | undefined, limit: number, keep: (x: T) => Promise<boolean>): Promise<Read<T>> {
  const rows: T[] = [];
  let before = from;
  for (let seen = 0; ; ) {
    const batch = await read(before, SCAN_BATCH);
    seen += batch.length;
    for (const x of batch) {
      if (await keep(x)) rows.push(x);
      if (rows.length >= limit) return { rows, next: key(x) };
    }
    if (batch.length < SCAN_BATCH) return { rows, next: null };
    before = key(batch[batch.length - 1]!);
    if (seen >= SCAN_MAX) return { rows, next: before };
  }
}

/** A page read whole (no filter): the next starts after its last row when it is full. */
function pageOf<T>(rows: T[], limit: number, key: (x: T) => Keyset): Page<T> {
  return { rows, nextAfter: rows.length === limit ? cursorOf(key(rows[limit - 1]!)) : null };
}

export class AccessAdmin {
  readonly #d: AccessAdminDeps;

  constructor(deps: AccessAdminDeps) {
    this.#d = deps;
  }

  /**
   * A filtered list's cursor is sealed (AES-GCM under a keyring secret every replica shares, bound
   * to the caller): where a scan stopped can be a row the caller may not see, whose id and time
   * a plain cursor would give away, and a caller could otherwise place a scan anywhere it likes.
   */
  #sealCursor(c: Caller, k: Keyset | null): string | null {
    if (k === null) return null;
    return `${SEALED}${seal(this.#d.keyring.secret(PAGE_CURSOR_SECRET), Buffer.from(cursorOf(k)), `access-cursor\u0000${c.identity.id}`).toString('base64url')}`;
  }

  /** The position of an `after`: a filtered list takes only the sealed cursors it gave this caller; an unfiltered one either kind. */
  #after(c: Caller, after: string | undefined, filtered: boolean): Keyset | undefined {
    if (after === undefined) return undefined;
    if (!after.startsWith(SEALED)) {
      if (filtered) throw new InvalidInput('after: must be the next_after of the previous page', 'after');
      return parseCursor(after);
    }
    try {
      return parseCursor(open(this.#d.keyring.secret(PAGE_CURSOR_SECRET), Buffer.from(after.slice(SEALED.length), 'base64url'), `access-cursor\u0000${c.identity.id}`).toString('utf8'));
    } catch (err) {
      if (err instanceof DecryptionFailed || err instanceof InvalidInput || err instanceof RangeError) throw new InvalidInput('after: must be the next_after of the previous page', 'after');
      throw err;
    }
  }

  /** The access-domain actor for a caller. */
  #actor(c: Caller): Actor {
    return { id: c.identity.id, authn: c.authn, sessionId: c.jti, sourceIp: c.sourceIp };
  }

  /**
   * The call's one recorded decision: may the caller read the whole access domain (`access.read`)?
   * A deny is no error: the caller then sees what its ReaderView allows. A step-up that would turn
   * it into an allow is thrown, unless `quiet` (a list whose answer does not depend on it).
   */
  async #readsAll(c: Caller, quiet = false): Promise<boolean> {
    try {
      await this.#d.authz.requireAllowed(c, 'access.read', CONTROL_PLANE);
      return true;
    } catch (err) {
      if (err instanceof PortcullisError && (err.status === 403 || (quiet && err.code === 'step_up_required'))) return false;
      throw err;
    }
  }

  /**
   * May the caller see this request: its own, or `access.read`, or it may review it. A by-id read
   * takes an `access.read` that needs a step-up as a no (an existing id must answer as an unknown
   * one would, not with a step-up); lists and the step-up flow ask for it where it is the way in.
   */
  async #seesRequest(c: Caller, r: AccessRequest): Promise<boolean> {
    return r.requester === c.identity.id || (await this.#readsAll(c, true)) || this.#d.access.readerView(this.#actor(c)).seesRequest(r);
  }

  async #mayReadRequest(c: Caller, id: string): Promise<boolean> {
    return this.#seesRequest(c, (await this.#d.access.getRequest(id)).request);
  }

  /** May the caller see this grant (and its break-glass): its own, or `access.read`, or it may end or approve it. */
  async #mayReadGrant(c: Caller, id: string): Promise<boolean> {
    const g = await this.#d.access.grants.get(id);
    return g.identity_id === c.identity.id || (await this.#readsAll(c, true)) || this.#d.access.readerView(this.#actor(c)).seesGrant(g);
  }

  /** Requests matching `f` (newest first) that `keep` lets through, a page of `limit`. */
  #scanRequests(f: ListFilter, limit: number, keep: (r: AccessRequest) => Promise<boolean>): Promise<Read<{ request: AccessRequest; status: string }>> {
    const { before: from, ...rest } = f;
    const read = (before: Keyset | undefined, n: number) => this.#d.access.listRequests({ ...rest, ...(before && { before }) }, n);
    return scan(read, (x) => requestKey(x.request), from, limit, (x) => keep(x.request));
  }

  // ── Requests ──────────────────────────────────────────────────────────────────────────────

  /** Asks for access (the access domain decides `access.request`); returns the new request. */
  async createRequest(c: Caller, input: CreateRequestInput): Promise<RequestView> {
    const r = await this.#d.access.createRequest(this.#actor(c), input);
    return this.#d.access.getRequest(r.id);
  }

  /**
   * The caller's own requests (default); the ones it could act on now (`reviewable`); or a
   * requester's / everyone's (`mine: false`): all of them with `access.read`, else the ones the
   * caller may review (docs/access.md "Who reads what"). Newest first, `limit` a page (≤ 1000),
   * `after` the previous page's `nextAfter`.
   */
  async listRequests(c: Caller, q: { mine?: boolean; reviewable?: boolean; requester?: string; status?: RequestStatus; limit?: number; after?: string }): Promise<RequestPage> {
    const me = c.identity.id;
    const limit = Math.min(q.limit ?? 100, 1000);
    const base: ListFilter = { ...(q.status && { status: q.status }) };
    const filtered = async (f: ListFilter, keep: (r: AccessRequest) => Promise<boolean>): Promise<RequestPage> => {
      const from = this.#after(c, q.after, true);
      const page = await this.#scanRequests({ ...f, ...(from && { before: from }) }, limit, keep);
      return { rows: page.rows, nextAfter: this.#sealCursor(c, page.next) };
    };
    if (q.reviewable === true) {
      // Recorded for the read; an inbox holds what the caller could act on, whatever it says.
      await this.#readsAll(c, true);
      const view = this.#d.access.readerView(this.#actor(c));
      return filtered({ ...base, reviewableBy: me }, (r) => view.couldReview(r));
    }
    const requester = q.requester ?? (q.mine !== false ? me : undefined);
    const filter: ListFilter = { ...base, ...(requester !== undefined && { requester }) };
    if (requester === me || (await this.#readsAll(c))) {
      const from = this.#after(c, q.after, false);
      return pageOf(await this.#d.access.listRequests({ ...filter, ...(from && { before: from }) }, limit), limit, (x) => requestKey(x.request));
    }
    const view = this.#d.access.readerView(this.#actor(c));
    return filtered(filter, (r) => view.seesRequest(r));
  }

  async getRequest(c: Caller, id: string): Promise<RequestView> {
    return opaqueId('access request', id, () => false, async () => {
      const view = await this.#d.access.getRequest(id);
      if (!(await this.#seesRequest(c, view.request))) throw new NotFound(`access request ${id}`);
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

  /**
   * The caller's grants (default), an identity's, or every one (`all`): another's with
   * `access.read`, else only those the caller may end or approve. Latest start first, `limit` a
   * page (default 500, at most 1000), `after` the previous page's `nextAfter`.
   */
  async listGrants(c: Caller, q: { identity?: string; all?: boolean; active?: boolean; limit?: number; after?: string }): Promise<GrantPage> {
    const me = c.identity.id;
    const limit = Math.min(q.limit ?? 500, 1000);
    const identityId = q.all === true ? undefined : (q.identity ?? me);
    const f = { ...(identityId !== undefined && { identityId }), ...(q.active === true && { activeAt: this.#d.clock.now() }) };
    const key = (x: { grant: Grant }) => grantKey(x.grant);
    if (identityId === me || (await this.#readsAll(c))) {
      const from = this.#after(c, q.after, false);
      return pageOf(await this.#d.access.listGrants({ ...f, ...(from && { before: from }) }, limit), limit, key);
    }
    const view = this.#d.access.readerView(this.#actor(c));
    const page = await scan((before, n) => this.#d.access.listGrants({ ...f, ...(before && { before }) }, n), key, this.#after(c, q.after, true), limit, (x) => view.seesGrant(x.grant));
    return { rows: page.rows, nextAfter: this.#sealCursor(c, page.next) };
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
    // Recording the review closes it: only someone who may see the break-glass may (anyone else
    // gets the unknown id's answer, whatever the access domain would say).
    return opaqueId('break-glass', id, () => this.#mayReadGrant(c, id), async () => {
      if (!(await this.#mayReadGrant(c, id))) throw new NotFound(`break-glass ${id}`);
      return this.#d.access.recordBreakGlassReview(this.#actor(c), id, summary);
    });
  }

  /** After-action review items: all with `access.read`, else the caller's own and those of break-glasses it may see. */
  async breakGlassReviews(c: Caller, status?: 'open' | 'closed'): Promise<BreakGlassReview[]> {
    const list = await this.#d.access.breakGlassReviews(status);
    if (await this.#readsAll(c)) return list;
    const view = this.#d.access.readerView(this.#actor(c));
    const out: BreakGlassReview[] = [];
    for (const rv of list) if (await view.seesReview(rv)) out.push(rv);
    return out;
  }

  // ── Webhooks ──────────────────────────────────────────────────────────────────────────────

  /** Webhook deliveries (`access.read`); none to show when a custom notifier is in use. */
  async webhookDeliveries(c: Caller, f: { status?: DeliveryStatus; endpoint?: string; eventType?: string }): Promise<Delivery[]> {
    await this.#d.authz.requireAllowed(c, 'access.read', CONTROL_PLANE);
    if (!this.#d.access.webhooks) throw new NotFound('webhook deliveries (a custom notifier is in use)');
    return this.#d.access.webhooks.deliveries(f);
  }
}
