// Privileged access over HTTP: requests and reviews, grants, break-glass and its review, webhook
// deliveries. Bodies are checked by strict schemas here and parsed by the access domain (which
// names the bad field); who may see and do what is the broker's (broker/access-admin.ts).
import type { FastifyInstance } from 'fastify';
import type { Broker, RequestView } from '../../broker/index.ts';
import { parseBreakGlass, parseCreateRequest } from '../../access/index.ts';
import type { DeliveryStatus, RequestStatus } from '../../access/index.ts';
import { callerOf, requireSession } from '../auth.ts';
import { z } from 'zod';
import { AccessRequestView, BreakGlassReview, Delivery, Grant, SESSION_ERRORS, duration, entityRef, errors, idParam, optionalBody, text } from '../schemas.ts';

const id = idParam();
const reasonBody = optionalBody({ reason: text(1024).optional() });
const RequestList = z.object({ requests: z.array(AccessRequestView), next_after: z.string().nullable().describe('the `after` of the next page; null on the last') });
const GrantView = Grant.extend({ status_line: z.string() });

export function accessRoutes(app: FastifyInstance, broker: Broker): void {
  const session = requireSession(broker);
  const access = broker.admin.access;
  const requestView = (r: RequestView) => ({ ...r.request, status_line: r.status, grant: r.grant });

  // ── Requests ──────────────────────────────────────────────────────────────────────────────
  app.post(
    '/v1/access-requests',
    {
      preHandler: session,
      schema: {
        operationId: 'createAccessRequest',
        summary: 'Request access: a role, a resource with actions, or a credential for a target; for a time, with a reason',
        tags: ['access'],
        body: z.strictObject({
          role: text(64).optional(),
          resource: entityRef.optional(),
          actions: z.array(text(128)).min(1).max(32).optional(),
          credential: z.strictObject({ target: text(128), permission: text(128).optional(), resource: entityRef.optional() }).optional(),
          duration,
          reason: text(1024),
          ticket: text(128).optional(),
          start_at: text(64).optional(),
          session_bound: z.boolean().optional(),
        }),
        response: { 201: AccessRequestView, ...errors(...SESSION_ERRORS, 404, 409) },
      },
    },
    async (req, reply) => {
      const r = await access.createRequest(callerOf(req), parseCreateRequest(req.body));
      return reply.code(201).send(requestView(r));
    },
  );

  app.get(
    '/v1/access-requests',
    {
      preHandler: session,
      schema: {
        operationId: 'listAccessRequests',
        summary: 'Access requests: yours (default), the ones you could act on now (reviewable=true), or all / by requester that you may see (all with access.read); newest first, paged with limit and after',
        tags: ['access'],
        querystring: z.strictObject({
          mine: z.enum(['true', 'false']).optional(),
          reviewable: z.enum(['true', 'false']).optional(),
          requester: z.string().max(300).optional(),
          status: z.enum(['pending', 'approved', 'denied', 'cancelled', 'expired']).optional(),
          limit: z.string().regex(/^[1-9][0-9]{0,3}$/, 'must be a number from 1 to 9999').optional(),
          after: z.string().max(600).optional(),
        }),
        response: { 200: RequestList, ...errors(...SESSION_ERRORS) },
      },
    },
    async (req) => {
      const q = req.query as { mine?: string; reviewable?: string; requester?: string; status?: RequestStatus; limit?: string; after?: string };
      const page = await access.listRequests(callerOf(req), {
        ...(q.mine !== undefined && { mine: q.mine === 'true' }),
        ...(q.reviewable !== undefined && { reviewable: q.reviewable === 'true' }),
        ...(q.requester !== undefined && { requester: q.requester }),
        ...(q.status && { status: q.status }),
        ...(q.limit && { limit: Number(q.limit) }),
        ...(q.after !== undefined && { after: q.after }),
      });
      return { requests: page.rows.map((x) => ({ ...x.request, status_line: x.status })), next_after: page.nextAfter };
    },
  );

  app.get(
    '/v1/access-requests/:id',
    { preHandler: session, schema: { operationId: 'getAccessRequest', summary: 'One access request with its reviews, comments, grant and a status sentence', tags: ['access'], params: id, response: { 200: AccessRequestView, ...errors(...SESSION_ERRORS, 404) } } },
    async (req) => requestView(await access.getRequest(callerOf(req), (req.params as { id: string }).id)),
  );

  const review = (verb: 'approve' | 'deny' | 'cancel' | 'comment', summary: string, field: 'comment' | 'reason' | 'text') => {
    app.post(
      `/v1/access-requests/:id/${verb}`,
      {
        preHandler: session,
        schema: {
          operationId: `${verb}AccessRequest`,
          summary,
          tags: ['access'],
          params: id,
          body: verb === 'comment' ? z.strictObject({ text: text(2000) }) : optionalBody({ [field]: text(2000).optional() }),
          response: { 200: AccessRequestView, ...errors(...SESSION_ERRORS, 404, 409) },
        },
      },
      async (req) => {
        const rid = (req.params as { id: string }).id;
        const value = ((req.body ?? {}) as Record<string, string | undefined>)[field];
        return requestView(await access.review(callerOf(req), rid, verb, value));
      },
    );
  };
  review('approve', 'Approve (never your own; you must be allowed access.approve now)', 'comment');
  review('deny', 'Deny: one denial ends the request', 'comment');
  review('cancel', 'Cancel your own pending request', 'reason');
  review('comment', 'Comment on a request (the requester or a possible reviewer)', 'text');

  // ── Grants ────────────────────────────────────────────────────────────────────────────────
  app.get(
    '/v1/grants',
    {
      preHandler: session,
      schema: {
        operationId: 'listGrants',
        summary: 'Grants: yours (default), an identity’s or all that you may see (all with access.read); active=true for the ones in force now; latest start first, paged with limit and after',
        tags: ['access'],
        querystring: z.strictObject({
          identity: z.string().max(300).optional(),
          all: z.enum(['true', 'false']).optional(),
          active: z.enum(['true', 'false']).optional(),
          limit: z.string().regex(/^[1-9][0-9]{0,3}$/, 'must be a number from 1 to 9999').optional(),
          after: z.string().max(600).optional(),
        }),
        response: { 200: z.object({ grants: z.array(GrantView), next_after: z.string().nullable().describe('the `after` of the next page; null on the last') }), ...errors(...SESSION_ERRORS) },
      },
    },
    async (req) => {
      const q = req.query as { identity?: string; all?: string; active?: string; limit?: string; after?: string };
      const page = await access.listGrants(callerOf(req), {
        ...(q.identity !== undefined && { identity: q.identity }),
        all: q.all === 'true',
        active: q.active === 'true',
        ...(q.limit && { limit: Number(q.limit) }),
        ...(q.after !== undefined && { after: q.after }),
      });
      return { grants: page.rows.map((x) => ({ ...x.grant, status_line: x.status })), next_after: page.nextAfter };
    },
  );

  app.post(
    '/v1/grants/:id/revoke',
    {
      preHandler: session,
      schema: {
        operationId: 'revokeGrant',
        summary: 'End a grant now (its holder, or someone allowed to approve it); its credentials are revoked',
        tags: ['access'],
        params: id,
        body: reasonBody,
        response: { 200: z.object({ grant: Grant }), ...errors(...SESSION_ERRORS, 404, 409) },
      },
    },
    async (req) => {
      const gid = (req.params as { id: string }).id;
      const g = await access.revokeGrant(callerOf(req), gid, (req.body as { reason?: string } | undefined)?.reason ?? '');
      return { grant: g };
    },
  );

  // ── Break-glass ───────────────────────────────────────────────────────────────────────────
  app.post(
    '/v1/break-glass',
    {
      preHandler: session,
      schema: {
        operationId: 'startBreakGlass',
        summary: 'Break-glass: no approval, but eligibility by policy, a reason, a hard time cap, named revokers notified, a review item',
        tags: ['access'],
        body: z.strictObject({ target: entityRef, reason: text(1024), duration: duration.optional() }),
        response: { 201: z.object({ grant: Grant, review: BreakGlassReview }), ...errors(...SESSION_ERRORS, 409) },
      },
    },
    async (req, reply) => reply.code(201).send(await access.startBreakGlass(callerOf(req), parseBreakGlass(req.body))),
  );

  app.post(
    '/v1/break-glass/:id/end',
    {
      preHandler: session,
      schema: {
        operationId: 'endBreakGlass',
        summary: 'End a break-glass (the user or a named revoker)',
        tags: ['access'],
        params: id,
        body: reasonBody,
        response: { 200: z.object({ grant: Grant }), ...errors(...SESSION_ERRORS, 404, 409) },
      },
    },
    async (req) => {
      const gid = (req.params as { id: string }).id;
      return { grant: await access.endBreakGlass(callerOf(req), gid, (req.body as { reason?: string } | undefined)?.reason ?? '') };
    },
  );

  app.post(
    '/v1/break-glass/:id/review',
    {
      preHandler: session,
      schema: {
        operationId: 'reviewBreakGlass',
        summary: 'Record the after-action review (someone other than the user, after it ended)',
        tags: ['access'],
        params: id,
        body: z.strictObject({ summary: text(4000) }),
        response: { 200: z.object({ review: BreakGlassReview }), ...errors(...SESSION_ERRORS, 404, 409) },
      },
    },
    async (req) => {
      const gid = (req.params as { id: string }).id;
      return { review: await access.reviewBreakGlass(callerOf(req), gid, (req.body as { summary: string }).summary) };
    },
  );

  app.get(
    '/v1/break-glass/reviews',
    {
      preHandler: session,
      schema: {
        operationId: 'listBreakGlassReviews',
        summary: 'After-action review items (open until someone else reviews)',
        tags: ['access'],
        querystring: z.strictObject({ status: z.enum(['open', 'closed']).optional() }),
        response: { 200: z.object({ reviews: z.array(BreakGlassReview) }), ...errors(...SESSION_ERRORS) },
      },
    },
    async (req) => ({ reviews: await access.breakGlassReviews(callerOf(req), (req.query as { status?: 'open' | 'closed' }).status) }),
  );

  // ── Webhooks ──────────────────────────────────────────────────────────────────────────────
  app.get(
    '/v1/webhooks/deliveries',
    {
      preHandler: session,
      schema: {
        operationId: 'listWebhookDeliveries',
        summary: 'Webhook deliveries: status, attempts, last HTTP status and error (access.read)',
        tags: ['access'],
        querystring: z.strictObject({ status: z.enum(['pending', 'delivered', 'failed']).optional(), endpoint: z.string().max(64).optional(), event: z.string().max(64).optional() }),
        response: { 200: z.object({ deliveries: z.array(Delivery) }), ...errors(...SESSION_ERRORS) },
      },
    },
    async (req) => {
      const q = req.query as { status?: DeliveryStatus; endpoint?: string; event?: string };
      return { deliveries: await access.webhookDeliveries(callerOf(req), { ...(q.status && { status: q.status }), ...(q.endpoint && { endpoint: q.endpoint }), ...(q.event && { eventType: q.event }) }) };
    },
  );
}
