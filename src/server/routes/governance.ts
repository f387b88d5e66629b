// Governance over HTTP: access review campaigns, lifecycle (rotation due dates, flags, owner
// offboarding) and the evidence report (JSON, or the self-contained HTML page).
import type { FastifyInstance } from 'fastify';
import type { Broker } from '../../broker/index.ts';
import { callerOf, requireSession } from '../auth.ts';
import { z } from 'zod';
import { SESSION_ERRORS, errors, idParam, time } from '../schemas.ts';
import { renderHtml } from '../../governance/report/render.ts';
import { parseDuration } from '../../common/duration.ts';

const json = z.record(z.string(), z.unknown());
const scope = z.strictObject({
  boundary: z.string().min(1).max(64).optional(),
  environment: z.string().min(1).max(64).optional(),
  owner: z.string().min(1).max(256).optional(),
  kind: z.string().min(1).max(32).optional(),
});
const ReviewItem = z.object({
  id: z.string(),
  campaign_id: z.string(),
  identity_id: z.string(),
  kind: z.enum(['identity', 'permission', 'grant', 'apikey']),
  ref: z.string(),
  summary: z.string(),
  usage: json,
  reviewers: z.array(z.string()),
  decision: z.enum(['keep', 'revoke', 'narrow']).nullable(),
  decided_by: z.string().nullable(),
  decided_at: time.nullable(),
  comment: z.string().nullable(),
  outcome: z.string().nullable(),
  by_default: z.boolean(),
});
const Campaign = z.object({
  id: z.string(),
  name: z.string(),
  schedule: z.string().nullable(),
  scope: json,
  status: z.enum(['open', 'closed']),
  default_action: z.enum(['suspend', 'revoke']),
  named_reviewers: z.array(z.string()),
  created_by: z.string(),
  opened_at: time,
  deadline_at: time,
  reminded_at: time.nullable(),
  closed_at: time.nullable(),
  closed_by: z.string().nullable(),
  close_reason: z.string().nullable(),
});
const Progress = z.object({ items: z.int(), decided: z.int(), keep: z.int(), revoke: z.int(), narrow: z.int(), by_default: z.int() });
const CampaignWithItems = z.object({ campaign: Campaign, items: z.array(ReviewItem) });
const RotationItem = z.object({ kind: z.string(), id: z.string(), holder: z.string(), created_at: time.nullable(), due_at: time.nullable(), overdue: z.boolean(), how: z.string() });
const Flag = z.object({ identity_id: z.string(), code: z.string(), detail: json, raised_at: time, cleared_at: time.nullable(), resolution: z.string().nullable() });
const durationText = z.string().regex(/^(\d+(ms|s|m|h|d))+$/, 'must be a duration such as 14d or 36h');

export function governanceRoutes(app: FastifyInstance, broker: Broker): void {
  const session = requireSession(broker);
  const g = broker.admin.governance;
  const tags = ['governance'];

  app.post(
    '/v1/reviews',
    {
      preHandler: session,
      schema: {
        operationId: 'openReviewCampaign',
        summary: 'Open an access review campaign over a scope; reviewers come from ownership (and `reviewers`)',
        tags,
        body: z.strictObject({
          name: z.string().min(1).max(128),
          scope: scope.optional(),
          deadline: durationText.optional(),
          default_action: z.enum(['suspend', 'revoke']).optional().describe('what an unanswered item gets at the deadline (never keep)'),
          reviewers: z.array(z.string().min(1).max(256)).max(50).optional(),
        }),
        response: { 201: CampaignWithItems, ...errors(...SESSION_ERRORS) },
      },
    },
    async (req, reply) => {
      const b = req.body as { name: string; scope?: z.infer<typeof scope>; deadline?: string; default_action?: 'suspend' | 'revoke'; reviewers?: string[] };
      const r = await g.openCampaign(callerOf(req), {
        name: b.name,
        scope: b.scope ?? {},
        ...(b.deadline !== undefined && { deadline_ms: parseDuration(b.deadline, 'deadline') }),
        ...(b.default_action !== undefined && { default_action: b.default_action }),
        ...(b.reviewers !== undefined && { reviewers: b.reviewers }),
      });
      return reply.code(201).send(r);
    },
  );

  app.get(
    '/v1/reviews',
    {
      preHandler: session,
      schema: {
        operationId: 'listReviewCampaigns',
        summary: 'Review campaigns with their progress, newest first',
        tags,
        querystring: z.strictObject({ status: z.enum(['open', 'closed']).optional(), schedule: z.string().max(64).optional() }),
        response: { 200: z.object({ campaigns: z.array(Campaign.extend({ progress: Progress })) }), ...errors(...SESSION_ERRORS) },
      },
    },
    async (req) => ({ campaigns: await g.listCampaigns(callerOf(req), req.query as { status?: 'open' | 'closed'; schedule?: string }) }),
  );

  app.get(
    '/v1/reviews/mine',
    { preHandler: session, schema: { operationId: 'listMyReviewItems', summary: 'Undecided review items the caller is a reviewer of', tags, response: { 200: z.object({ items: z.array(ReviewItem) }), ...errors(...SESSION_ERRORS) } } },
    async (req) => ({ items: await g.myItems(callerOf(req)) }),
  );

  app.get(
    '/v1/reviews/:id',
    { preHandler: session, schema: { operationId: 'getReviewCampaign', summary: 'A campaign and its items', tags, params: idParam(), response: { 200: CampaignWithItems, ...errors(...SESSION_ERRORS, 404) } } },
    async (req) => g.getCampaign(callerOf(req), (req.params as { id: string }).id),
  );

  app.post(
    '/v1/reviews/items/:id/decision',
    {
      preHandler: session,
      schema: {
        operationId: 'decideReviewItem',
        summary: 'Keep, revoke or narrow one item (its reviewers only; applied at once)',
        tags,
        params: idParam(),
        body: z.strictObject({ decision: z.enum(['keep', 'revoke', 'narrow']), comment: z.string().min(1).max(1000).optional() }),
        response: { 200: ReviewItem, ...errors(...SESSION_ERRORS, 404, 409) },
      },
    },
    async (req) => {
      const b = req.body as { decision: 'keep' | 'revoke' | 'narrow'; comment?: string };
      return g.decide(callerOf(req), (req.params as { id: string }).id, b.decision, b.comment ?? null);
    },
  );

  app.post(
    '/v1/reviews/:id/close',
    {
      preHandler: session,
      schema: {
        operationId: 'closeReviewCampaign',
        summary: 'Close a campaign now: undecided items get its default action',
        tags,
        params: idParam(),
        body: z.strictObject({ reason: z.string().min(1).max(500) }),
        response: { 200: CampaignWithItems, ...errors(...SESSION_ERRORS, 404, 409) },
      },
    },
    async (req) => g.closeCampaign(callerOf(req), (req.params as { id: string }).id, (req.body as { reason: string }).reason),
  );

  app.get(
    '/v1/lifecycle/rotation',
    { preHandler: session, schema: { operationId: 'listRotationDue', summary: 'Rotation due dates: API keys, signing keys, SSH and SPIFFE CAs', tags, response: { 200: z.object({ rotation: z.array(RotationItem) }), ...errors(...SESSION_ERRORS) } } },
    async (req) => ({ rotation: await g.rotation(callerOf(req)) }),
  );

  app.get(
    '/v1/lifecycle/flags',
    { preHandler: session, schema: { operationId: 'listLifecycleFlags', summary: 'Open flags: identities of an offboarded owner, stale warnings', tags, response: { 200: z.object({ flags: z.array(Flag) }), ...errors(...SESSION_ERRORS) } } },
    async (req) => ({ flags: await g.flags(callerOf(req)) }),
  );

  app.post(
    '/v1/lifecycle/offboard-owner',
    {
      preHandler: session,
      schema: {
        operationId: 'offboardOwner',
        summary: 'Offboard a human owner; each identity it owned is flagged, then reassigned or suspended per lifecycle.offboarding',
        tags,
        body: z.strictObject({ owner: z.string().min(6).max(256), successor: z.string().min(1).max(256).optional(), reason: z.string().min(1).max(500) }),
        response: {
          200: z.object({ owner: z.string(), successor: z.string().nullable(), identities: z.array(z.object({ id: z.string(), action: z.enum(['reassigned', 'suspended', 'flagged']), to: z.string().optional() })) }),
          ...errors(...SESSION_ERRORS, 404),
        },
      },
    },
    async (req) => {
      const b = req.body as { owner: string; successor?: string; reason: string };
      return g.offboardOwner(callerOf(req), b.owner, { ...(b.successor !== undefined && { successor: b.successor }), reason: b.reason });
    },
  );

  app.get(
    '/v1/reports/evidence',
    {
      preHandler: session,
      schema: {
        operationId: 'evidenceReport',
        summary: 'Evidence for a period: rotation, reviews, revocations, break-glass, access requests, each linked to its audit event, with the chain verification',
        tags,
        querystring: z.strictObject({ period: z.string().regex(/^(\d{4}(-(Q[1-4]|0[1-9]|1[0-2]))?|[1-9]\d{0,2}d)$/, 'must look like 2026-Q4, 2026-11, 2026 or 7d (the last 7 days)'), format: z.enum(['json', 'html']).optional() }),
        response: { 200: { description: 'The report (JSON), or the self-contained HTML page with format=html', content: { 'application/json': { schema: json }, 'text/html': { schema: z.string() } } }, ...errors(...SESSION_ERRORS) },
      },
    },
    async (req, reply) => {
      const q = req.query as { period: string; format?: 'json' | 'html' };
      const report = await g.report(callerOf(req), q.period);
      if (q.format === 'html') return reply.type('text/html; charset=utf-8').header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; img-src data:").send(renderHtml(report));
      return report;
    },
  );
}
