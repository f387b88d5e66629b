// The decision API for applications: OpenID AuthZEN Authorization API 1.0 (docs/authzen.md). The
// routes parse, call broker.pdp and serialize; who may ask, about whom, how often, and the
// mapping to Cedar are the broker's.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { AzActionSearch, AzEvaluation, AzEvaluationsRequest, AzResourceSearch, AzSubjectSearch, Broker } from '../../broker/index.ts';
import { MAX_EVALUATIONS } from '../../broker/index.ts';
import { callerOf, requireCaller } from '../auth.ts';
import { errors } from '../schemas.ts';

const properties = z.record(z.string(), z.unknown()).describe('AuthZEN properties (a described resource type turns them into the entity tags; see docs/authzen.md)');
const typeName = z.string().min(1).max(128);
const Subject = z.strictObject({ type: typeName.describe('an identity kind: user, workload, agent, service-account'), id: z.string().min(1).max(512).describe('the identity is <type>:<id>'), properties: properties.optional() });
const Resource = z.strictObject({ type: typeName.describe('the Cedar entity type'), id: z.string().min(1).max(512), properties: properties.optional() });
const Action = z.strictObject({ name: z.string().min(1).max(128).describe('a Cedar action of the schema'), properties: properties.optional() });
const Context = z.record(z.string(), z.unknown()).describe('Cedar context: `purpose` and the keys the schema declares for the action');
const Evaluation = z.strictObject({ subject: Subject, action: Action, resource: Resource, context: Context.optional() });
const Semantic = z.enum(['execute_all', 'deny_on_first_deny', 'permit_on_first_permit']);
const Evaluations = z.strictObject({
  subject: Subject.optional(),
  action: Action.optional(),
  resource: Resource.optional(),
  context: Context.optional(),
  evaluations: z.array(z.strictObject({ subject: Subject.optional(), action: Action.optional(), resource: Resource.optional(), context: Context.optional() })).max(MAX_EVALUATIONS).optional(),
  // Options are open-ended (AuthZEN §7.1.2): the ones not known here are ignored.
  options: z.looseObject({ evaluations_semantic: Semantic.optional() }).optional(),
});
const Page = z.strictObject({ token: z.string().max(256).optional(), next_token: z.string().max(256).optional().describe('accepted as token'), limit: z.int().min(1).max(1000).optional() });
const SubjectSearch = z.strictObject({ subject: z.strictObject({ type: typeName, id: z.string().max(512).optional().describe('ignored'), properties: properties.optional() }), action: Action, resource: Resource, context: Context.optional(), page: Page.optional() });
const ResourceSearch = z.strictObject({ subject: Subject, action: Action, resource: z.strictObject({ type: typeName, id: z.string().max(512).optional().describe('ignored'), properties: properties.optional() }), context: Context.optional(), page: Page.optional() });
const ActionSearch = z.strictObject({ subject: Subject, resource: Resource, context: Context.optional(), page: Page.optional() });

const Decision = z.object({ decision: z.boolean(), context: z.object({ reason: z.string().describe('subject_not_found | resource_not_found (unknown, or outside the asking app\'s boundary)') }).optional() });
const PageOut = z.object({ next_token: z.string().describe('empty on the last page'), count: z.int() });
const Entity = z.object({ type: z.string(), id: z.string() });
const Configuration = z.looseObject({
  policy_decision_point: z.string(),
  access_evaluation_endpoint: z.string(),
  access_evaluations_endpoint: z.string(),
  search_subject_endpoint: z.string(),
  search_resource_endpoint: z.string(),
  search_action_endpoint: z.string(),
});
const ERRORS = errors(400, 401, 403, 429);

/** The active policy version before deciding, for PEP caches (packages/middleware). */
function policyVersion(broker: Broker, reply: FastifyReply): void {
  const v = broker.pdp.policyVersion();
  if (v !== undefined) reply.header('portcullis-policy-version', String(v));
}

/** AuthZEN's request identifier: echoed back, and recorded with each evaluation. */
function requestId(req: FastifyRequest, reply: FastifyReply): string | undefined {
  const id = req.headers['x-request-id'];
  if (typeof id !== 'string' || !/^[\x21-\x7e]{1,128}$/.test(id)) return undefined;
  reply.header('x-request-id', id);
  return id;
}

export function authzenRoutes(app: FastifyInstance, broker: Broker): void {
  const pre = requireCaller(broker);
  const post = (url: string, operationId: string, summary: string, body: z.ZodType, ok: z.ZodType, handle: (req: FastifyRequest, reply: FastifyReply) => Promise<unknown>) =>
    app.post(url, { preHandler: pre, schema: { operationId, summary, tags: ['authzen'], body, response: { 200: ok, ...ERRORS } } }, handle);

  app.get(
    '/.well-known/authzen-configuration',
    { schema: { operationId: 'getAuthzenConfiguration', summary: 'AuthZEN policy decision point metadata (AuthZEN 1.0 §9)', tags: ['authzen'], response: { 200: Configuration, ...errors() } } },
    async (_req, reply) => reply.header('cache-control', 'public, max-age=300').send(broker.pdp.configuration()),
  );

  post(
    '/access/v1/evaluation',
    'authzenEvaluation',
    'May this subject do this action on this resource? (AuthZEN access evaluation; the caller needs pdp.query and names only its own boundary; bearer: session token or API key)',
    Evaluation,
    Decision,
    async (req, reply) => {
      policyVersion(broker, reply);
      return broker.pdp.evaluate(callerOf(req), req.body as AzEvaluation, requestId(req, reply));
    },
  );

  post(
    '/access/v1/evaluations',
    'authzenEvaluations',
    `Up to ${MAX_EVALUATIONS} evaluations; top-level subject/action/resource/context are each item's defaults; options.evaluations_semantic: execute_all (default), deny_on_first_deny, permit_on_first_permit`,
    Evaluations,
    z.union([z.object({ evaluations: z.array(Decision) }), Decision]),
    async (req, reply) => {
      policyVersion(broker, reply);
      return broker.pdp.evaluations(callerOf(req), req.body as AzEvaluationsRequest, requestId(req, reply));
    },
  );

  /** One search (AuthZEN §8): POST /access/v1/search/<what>, the caller's query, `results` of `item` and a page. */
  const search = <Q>(what: 'subject' | 'resource' | 'action', summary: string, body: z.ZodType, item: z.ZodType, run: (caller: ReturnType<typeof callerOf>, query: Q, id: string | undefined) => Promise<unknown>) =>
    post(`/access/v1/search/${what}`, `authzenSearch${what[0]!.toUpperCase()}${what.slice(1)}`, summary, body, z.object({ results: z.array(item), page: PageOut }), async (req, reply) =>
      run(callerOf(req), req.body as Q, requestId(req, reply)),
    );

  search<AzSubjectSearch>('subject', "The subjects of a type (declared identities of the caller's boundary) allowed the action on the resource; paged", SubjectSearch, Entity, (c, q, id) =>
    broker.pdp.searchSubjects(c, q, id),
  );
  search<AzResourceSearch>('resource', "The resources of a type (declared resources of the caller's boundary) the subject is allowed the action on; paged", ResourceSearch, Entity, (c, q, id) =>
    broker.pdp.searchResources(c, q, id),
  );
  search<AzActionSearch>('action', 'The actions (of the schema, for these types) the subject is allowed on the resource; paged', ActionSearch, z.object({ name: z.string() }), (c, q, id) =>
    broker.pdp.searchActions(c, q, id),
  );
}
