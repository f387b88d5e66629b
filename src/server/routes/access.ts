// Privileged access over HTTP: requests and reviews, grants, break-glass and its review, webhook
// deliveries. Bodies are checked by strict schemas here and parsed by the access domain (which
// names the bad field); who may see and do what is the broker's (broker/access-admin.ts).
import type { FastifyInstance } from 'fastify';
import type { Broker, RequestView } from '../../broker/index.ts';
import { parseBreakGlass, parseCreateRequest } from '../../access/index.ts';
import type { DeliveryStatus, RequestStatus } from '../../access/index.ts';
import { callerOf, requireSession } from '../auth.ts';

const id = { type: 'object', required: ['id'], properties: { id: { type: 'string', minLength: 1, maxLength: 128 } } } as const;
const text = (max: number) => ({ type: 'string', minLength: 1, maxLength: max }) as const;
const entityRef = {
  anyOf: [
    { type: 'string', minLength: 1, maxLength: 600 },
    { type: 'object', additionalProperties: false, required: ['type', 'id'], properties: { type: text(64), id: text(512) } },
  ],
} as const;
const optionalBody = (props: Record<string, unknown>, required: string[] = []) => ({ type: 'object', additionalProperties: false, required, properties: props }) as const;

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
        summary: 'Request access: a role, a resource with actions, or a credential for a target; for a time, with a reason',
        tags: ['access'],
        body: optionalBody(
          {
            role: text(64),
            resource: entityRef,
            actions: { type: 'array', minItems: 1, maxItems: 32, items: text(128) },
            credential: optionalBody({ target: text(128), permission: text(128), resource: entityRef }, ['target']),
            duration: { type: 'string', pattern: '^(\\d+(ms|s|m|h|d))+$' },
            reason: text(1024),
            ticket: text(128),
            start_at: text(64),
            session_bound: { type: 'boolean' },
          },
          ['duration', 'reason'],
        ),
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
        summary: 'Access requests: yours (default), the ones waiting for others (reviewable=true), or all / by requester',
        tags: ['access'],
        querystring: optionalBody({
          mine: { type: 'string', enum: ['true', 'false'] },
          reviewable: { type: 'string', enum: ['true', 'false'] },
          requester: { type: 'string', maxLength: 300 },
          status: { type: 'string', enum: ['pending', 'approved', 'denied', 'cancelled', 'expired'] },
          limit: { type: 'string', pattern: '^[1-9][0-9]{0,3}$' },
        }),
      },
    },
    async (req) => {
      const q = req.query as { mine?: string; reviewable?: string; requester?: string; status?: RequestStatus; limit?: string };
      const list = await access.listRequests(callerOf(req), {
        ...(q.mine !== undefined && { mine: q.mine === 'true' }),
        ...(q.reviewable !== undefined && { reviewable: q.reviewable === 'true' }),
        ...(q.requester !== undefined && { requester: q.requester }),
        ...(q.status && { status: q.status }),
        ...(q.limit && { limit: Number(q.limit) }),
      });
      return { requests: list.map((x) => ({ ...x.request, status_line: x.status })) };
    },
  );

  app.get(
    '/v1/access-requests/:id',
    { preHandler: session, schema: { summary: 'One access request with its reviews, comments, grant and a status sentence', tags: ['access'], params: id } },
    async (req) => requestView(await access.getRequest(callerOf(req), (req.params as { id: string }).id)),
  );

  const review = (verb: 'approve' | 'deny' | 'cancel' | 'comment', summary: string, field: 'comment' | 'reason' | 'text') => {
    app.post(
      `/v1/access-requests/:id/${verb}`,
      {
        preHandler: session,
        schema: { summary, tags: ['access'], params: id, body: optionalBody({ [field]: text(2000) }, verb === 'comment' ? ['text'] : []) },
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
        summary: 'Grants: yours (default) or an identity’s; active=true for the ones in force now',
        tags: ['access'],
        querystring: optionalBody({ identity: { type: 'string', maxLength: 300 }, all: { type: 'string', enum: ['true', 'false'] }, active: { type: 'string', enum: ['true', 'false'] } }),
      },
    },
    async (req) => {
      const q = req.query as { identity?: string; all?: string; active?: string };
      const list = await access.listGrants(callerOf(req), { ...(q.identity !== undefined && { identity: q.identity }), all: q.all === 'true', active: q.active === 'true' });
      return { grants: list.map((x) => ({ ...x.grant, status_line: x.status })) };
    },
  );

  app.post(
    '/v1/grants/:id/revoke',
    {
      preHandler: session,
      schema: { summary: 'End a grant now (its holder, or someone allowed to approve it); its credentials are revoked', tags: ['access'], params: id, body: optionalBody({ reason: text(1024) }) },
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
        summary: 'Break-glass: no approval, but eligibility by policy, a reason, a hard time cap, named revokers notified, a review item',
        tags: ['access'],
        body: optionalBody({ target: entityRef, reason: text(1024), duration: { type: 'string', pattern: '^(\\d+(ms|s|m|h|d))+$' } }, ['target', 'reason']),
      },
    },
    async (req, reply) => reply.code(201).send(await access.startBreakGlass(callerOf(req), parseBreakGlass(req.body))),
  );

  app.post(
    '/v1/break-glass/:id/end',
    { preHandler: session, schema: { summary: 'End a break-glass (the user or a named revoker)', tags: ['access'], params: id, body: optionalBody({ reason: text(1024) }) } },
    async (req) => {
      const gid = (req.params as { id: string }).id;
      return { grant: await access.endBreakGlass(callerOf(req), gid, (req.body as { reason?: string } | undefined)?.reason ?? '') };
    },
  );

  app.post(
    '/v1/break-glass/:id/review',
    { preHandler: session, schema: { summary: 'Record the after-action review (someone other than the user, after it ended)', tags: ['access'], params: id, body: optionalBody({ summary: text(4000) }, ['summary']) } },
    async (req) => {
      const gid = (req.params as { id: string }).id;
      return { review: await access.reviewBreakGlass(callerOf(req), gid, (req.body as { summary: string }).summary) };
    },
  );

  app.get(
    '/v1/break-glass/reviews',
    { preHandler: session, schema: { summary: 'After-action review items (open until someone else reviews)', tags: ['access'], querystring: optionalBody({ status: { type: 'string', enum: ['open', 'closed'] } }) } },
    async (req) => ({ reviews: await access.breakGlassReviews(callerOf(req), (req.query as { status?: 'open' | 'closed' }).status) }),
  );

  // ── Webhooks ──────────────────────────────────────────────────────────────────────────────
  app.get(
    '/v1/webhooks/deliveries',
    {
      preHandler: session,
      schema: {
        summary: 'Webhook deliveries: status, attempts, last HTTP status and error (access.read)',
        tags: ['access'],
        querystring: optionalBody({ status: { type: 'string', enum: ['pending', 'delivered', 'failed'] }, endpoint: { type: 'string', maxLength: 64 }, event: { type: 'string', maxLength: 64 } }),
      },
    },
    async (req) => {
      const q = req.query as { status?: DeliveryStatus; endpoint?: string; event?: string };
      return { deliveries: await access.webhookDeliveries(callerOf(req), { ...(q.status && { status: q.status }), ...(q.endpoint && { endpoint: q.endpoint }), ...(q.event && { eventType: q.event }) }) };
    },
  );
}
