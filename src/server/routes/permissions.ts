// Governance analysis: effective permissions of an identity, observed use over a window, the
// suggested narrowed policy, what-if replay of a candidate set, decisions over time (broker/permissions-admin.ts).
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Broker } from '../../broker/index.ts';
import { callerOf, requireSession } from '../auth.ts';
import { SESSION_ERRORS, errors, idParam as idParamOf } from '../schemas.ts';

const idParam = idParamOf(300, 3);
const Uid = z.object({ type: z.string(), id: z.string() });
const Kind = z.enum(['purpose', 'time', 'network', 'authn', 'grants', 'break-glass', 'delegation', 'claims', 'request']);
const Cond = z.object({ policy: z.string(), condition: z.string().optional(), requires: z.array(Kind) });
const EffectivePermissions = z.object({
  identity: z.string(),
  policy_version: z.int(),
  principal: Uid,
  resources: z.int(),
  pairs: z.int(),
  permissions: z.array(z.object({ action: z.string(), resource: Uid, status: z.enum(['unconditional', 'conditional']), permits: z.array(Cond), forbids: z.array(Cond) })),
});
const IdentityUsage = z.object({
  identity: z.string(),
  effective: z.int(),
  used: z.int(),
  unused: z.int(),
  over_privilege: z.number(),
  allows: z.int(),
  unused_permissions: z.array(z.object({ action: z.string(), resource: Uid })),
});
const UsageReport = z.object({
  policy_version: z.int(),
  since: z.string(),
  until: z.string(),
  identities: z.array(IdentityUsage),
  estate: z.object({ identities: z.int(), effective: z.int(), used: z.int(), unused: z.int(), over_privilege: z.number() }),
  nothing_used: z.array(z.string()),
  by_owner: z.array(z.object({ owner: z.string().nullable(), identities: z.int(), effective: z.int(), used: z.int(), unused: z.int(), over_privilege: z.number() })).describe("the identities summed by owner (a team, a person, or null for none), most over-privileged first"),
});
const DecisionStats = z.object({
  since: z.string(),
  until: z.string(),
  bucket: z.enum(['day', 'hour']),
  truncated: z.boolean().describe('the window held more than 500,000 decisions: only the oldest 500,000 were counted'),
  total: z.object({ allow: z.int(), deny: z.int() }),
  buckets: z.array(z.object({ start: z.string(), allow: z.int(), deny: z.int() })).describe('every bucket of the window, oldest first'),
  denials_by_reason: z.array(z.object({ reason: z.string(), count: z.int() })).describe('`forbid: <policy id>` for each determining forbid, `refused: <why>`, `evaluation error` or `no permit`'),
});
const PolicyFile = z.object({ name: z.string(), origin: z.string(), text: z.string() });
const Suggestion = z.object({
  subject: Uid,
  since: z.string(),
  until: z.string(),
  policy_version: z.int(),
  usage: z.array(IdentityUsage),
  files: z.array(PolicyFile),
  changed: z.array(z.string()),
  diff: z.string(),
  kept: z.int(),
  removed: z.array(z.object({ action: z.string(), resource: Uid })),
  narrowed: z.array(z.string()),
  dropped: z.array(z.string()),
});
const Count = { allow_to_deny: z.int(), deny_to_allow: z.int() };
const ReplayReport = z.object({
  since: z.string(),
  until: z.string(),
  policy_version: z.int().nullable(),
  candidate_policies: z.int(),
  decisions: z.int(),
  replayed: z.int(),
  unchanged: z.int(),
  flips: z.object(Count),
  by_identity: z.array(z.object({ identity: z.string(), ...Count })),
  by_action: z.array(z.object({ action: z.string(), ...Count })),
  flipped: z.array(
    z.object({ decision_id: z.string(), time: z.string(), identity: z.string(), action: z.string(), resource: z.string(), recorded: z.enum(['allow', 'deny']), candidate: z.enum(['allow', 'deny']), reasons: z.array(z.string()) }),
  ),
  flipped_truncated: z.boolean(),
  unreconstructable: z.object({
    count: z.int(),
    by_reason: z.record(z.string(), z.int()),
    decisions: z.array(z.object({ decision_id: z.string(), time: z.string(), identity: z.string(), reason: z.string() })),
  }),
});
/** `90d`, `12h` … back from now, or an RFC 3339 time. */
const when = z.string().max(64).optional();
const limit = z.string().regex(/^\d{1,5}$/, 'must be a number up to 99999').optional();
const entity = z.string().max(600).regex(/^[A-Za-z_][A-Za-z0-9_]*(::[A-Za-z_][A-Za-z0-9_]*)*::"?[^"]+"?$/, 'must look like Database::"orders"');
const files = z.array(z.strictObject({ name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'must be a file name'), text: z.string().max(1048576) })).min(1).max(256);

function parseEntity(s: string): { type: string; id: string } {
  const m = /^(.*?)::"?([^"]+)"?$/.exec(s)!;
  return { type: m[1]!, id: m[2]! };
}

const list = (v: string | string[] | undefined): string[] | undefined => (v === undefined ? undefined : Array.isArray(v) ? v : [v]);

export function permissionRoutes(app: FastifyInstance, broker: Broker): void {
  const session = requireSession(broker);
  const admin = broker.admin.permissions;

  app.get(
    '/v1/identities/:id/permissions',
    {
      preHandler: session,
      schema: {
        operationId: 'getEffectivePermissions',
        summary: "An identity's effective permissions over the declared resources, with determining policies and request-time conditions",
        tags: ['governance'],
        params: idParam,
        querystring: z.strictObject({ resource: z.union([entity, z.array(entity).max(1000)]).optional(), action: z.union([z.string().max(128), z.array(z.string().max(128)).max(200)]).optional() }),
        response: { 200: EffectivePermissions, ...errors(...SESSION_ERRORS, 404) },
      },
    },
    async (req) => {
      const q = req.query as { resource?: string | string[]; action?: string | string[] };
      const resources = list(q.resource)?.map(parseEntity);
      const actions = list(q.action);
      return admin.explain(callerOf(req), (req.params as { id: string }).id, { ...(resources && { resources }), ...(actions && { actions }) });
    },
  );

  app.get(
    '/v1/governance/permissions',
    {
      preHandler: session,
      schema: {
        operationId: 'getGroupPermissions',
        summary: "A team's or role's effective permissions: each pair a standing member may be allowed, with the members holding it",
        tags: ['governance'],
        querystring: z.strictObject({ team: z.string().min(1).max(256).optional(), role: z.string().min(1).max(256).optional(), resource: z.union([entity, z.array(entity).max(1000)]).optional() }),
        response: { 200: z.object({ subject: Uid, policy_version: z.int(), members: z.array(z.string()), permissions: z.array(z.object({ action: z.string(), resource: Uid, members: z.array(z.string()) })) }), ...errors(...SESSION_ERRORS, 404) },
      },
    },
    async (req) => {
      const q = req.query as { team?: string; role?: string; resource?: string | string[] };
      const resources = list(q.resource)?.map(parseEntity);
      return admin.explainGroup(callerOf(req), { ...(q.team !== undefined && { team: q.team }), ...(q.role !== undefined && { role: q.role }), ...(resources && { resources }) });
    },
  );

  app.get(
    '/v1/governance/usage',
    {
      preHandler: session,
      schema: {
        operationId: 'getAccessUsage',
        summary: 'Effective permissions against allowed decisions over a window (default 90d): unused permissions, over-privilege per identity and for the estate',
        tags: ['governance'],
        querystring: z.strictObject({ since: when, until: when, identity: z.string().min(1).max(300).optional(), limit, top: z.string().regex(/^\d{1,6}$/, 'must be a number').optional().describe('list only this many identities, most over-privileged first (estate and by_owner count all)') }),
        response: { 200: UsageReport, ...errors(...SESSION_ERRORS, 404) },
      },
    },
    async (req) => {
      const { limit: n, top, ...q } = req.query as { since?: string; until?: string; identity?: string; limit?: string; top?: string };
      return admin.usage(callerOf(req), { ...q, ...(n !== undefined && { limit: Number(n) }), ...(top !== undefined && { top: Number(top) }) });
    },
  );

  app.get(
    '/v1/governance/decisions',
    {
      preHandler: session,
      schema: {
        operationId: 'getDecisionStats',
        summary: 'Authorization decisions over a window (default 30d) counted per day or hour, and the denials by reason (needs governance.read on every identity and audit.read on the authz stream)',
        tags: ['governance'],
        querystring: z.strictObject({ since: when, until: when, bucket: z.enum(['day', 'hour']).optional() }),
        response: { 200: DecisionStats, ...errors(...SESSION_ERRORS) },
      },
    },
    async (req) => admin.decisionStats(callerOf(req), req.query as { since?: string; until?: string; bucket?: 'day' | 'hour' }),
  );

  app.get(
    '/v1/policies/suggestion',
    {
      preHandler: session,
      schema: {
        operationId: 'suggestPolicy',
        summary: 'A narrowed policy set for an identity, team or role that keeps every allow observed in the window (default 90d), validated, with a diff',
        tags: ['governance'],
        querystring: z.strictObject({ identity: z.string().min(1).max(300).optional(), team: z.string().min(1).max(256).optional(), role: z.string().min(1).max(256).optional(), since: when, until: when }),
        response: { 200: Suggestion, ...errors(...SESSION_ERRORS, 404) },
      },
    },
    async (req) => admin.suggest(callerOf(req), req.query as { identity?: string; team?: string; role?: string; since?: string; until?: string }),
  );

  app.post(
    '/v1/policies/replay',
    {
      preHandler: session,
      schema: {
        operationId: 'replayPolicies',
        summary: 'Re-decide the recorded decisions of a window (default 30d) with candidate policy files; every flip by identity and action',
        tags: ['governance'],
        body: z.strictObject({ files, since: when, until: when, limit: z.int().min(0).max(100_000).optional() }),
        response: { 200: ReplayReport, ...errors(...SESSION_ERRORS) },
      },
    },
    async (req) => admin.replay(callerOf(req), req.body as { files: { name: string; text: string }[]; since?: string; until?: string; limit?: number }),
  );
}
