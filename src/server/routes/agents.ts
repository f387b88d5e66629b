// AI agents (docs/agents.md): agent profiles (sponsor, model, tools) and assignments — made by the
// delegating user for their own agent use, listed, ended. The broker decides (agent.manage,
// assignment.create / read / end); this file parses, calls and serializes.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { AssignRequest, Broker } from '../../broker/index.ts';
import { callerOf, requireSession } from '../auth.ts';
import { agentDto, assignmentDto } from '../dto.ts';
import { Identity, SESSION_ERRORS, duration, errors, time } from '../schemas.ts';

const Assignment = z.object({
  id: z.string(),
  agent: z.string(),
  delegator: z.string().describe('the human the agent acts for: `sub` of the tokens issued under it'),
  sponsor: z.string().describe('the human accountable for the agent, when the assignment was made'),
  intent: z.string(),
  tools: z.array(z.string()),
  audiences: z.array(z.string()).describe('RFC 8707 resource indicators a token may be issued for, one per token'),
  status: z.enum(['active', 'ended', 'expired']),
  depth: z.int().describe('1: the agent acts for the delegator; 2: a sub-agent of that agent; …'),
  parent: z.string().optional(),
  created_at: time,
  expires_at: time,
  ended_at: time.optional(),
  ended_reason: z.string().optional(),
});
const Agent = z.object({
  identity: Identity,
  sponsor: z.string().nullable().describe('null: none set (a finding; no assignment can be made)'),
  model: z.string().nullable(),
  provider: z.string().nullable(),
  tools: z.array(z.string()).describe('what the agent may ever reach: "server/tool" or "server/*"; empty: not limited by the profile'),
  profile_updated_at: time.optional(),
});
const agentId = z.string().min(1).max(300);
const assignmentId = z.string().min(1).max(64);
const tool = z.string().min(1).max(200);
const audience = z.string().min(1).max(512);

export function agentRoutes(app: FastifyInstance, broker: Broker): void {
  const session = requireSession(broker);
  const agents = broker.admin.agents;

  app.get(
    '/v1/agents',
    {
      preHandler: session,
      schema: { operationId: 'listAgents', summary: 'Every agent with its sponsor, model and tools (identity.read)', tags: ['agents'], response: { 200: z.object({ agents: z.array(Agent) }), ...errors(...SESSION_ERRORS) } },
    },
    async (req) => ({ agents: (await agents.list(callerOf(req))).map(agentDto) }),
  );

  app.get(
    '/v1/agents/:id',
    {
      preHandler: session,
      schema: { operationId: 'getAgent', summary: 'One agent and its profile (the agent itself, its sponsor, or identity.read)', tags: ['agents'], params: z.object({ id: agentId }), response: { 200: Agent, ...errors(...SESSION_ERRORS, 404) } },
    },
    async (req) => agentDto(await agents.get(callerOf(req), (req.params as { id: string }).id)),
  );

  app.put(
    '/v1/agents/:id',
    {
      preHandler: session,
      schema: {
        operationId: 'setAgentProfile',
        summary: "Set an agent's sponsor (a human in the inventory), model, provider and the tools it may ever reach (agent.manage; never by the agent itself)",
        tags: ['agents'],
        params: z.object({ id: agentId }),
        body: z.strictObject({
          sponsor: z.string().min(1).max(300),
          model: z.string().min(1).max(128).nullable().optional(),
          provider: z.string().min(1).max(128).nullable().optional(),
          tools: z.array(tool).max(64).optional(),
        }),
        response: { 200: Agent, ...errors(...SESSION_ERRORS, 404) },
      },
    },
    async (req) => {
      const b = req.body as { sponsor: string; model?: string | null; provider?: string | null; tools?: string[] };
      return agentDto(await agents.setProfile(callerOf(req), (req.params as { id: string }).id, b));
    },
  );

  app.post(
    '/v1/agents/:id/assignments',
    {
      preHandler: session,
      schema: {
        operationId: 'createAssignment',
        summary: 'Give an agent an assignment: it acts for you (the caller) with this intent, these tools and audiences, until it ends (assignment.create). With `parent`, an agent hands part of its own assignment to a sub-agent',
        tags: ['agents'],
        params: z.object({ id: agentId }),
        body: z.strictObject({
          intent: z.string().min(1).max(500),
          tools: z.array(tool).min(1).max(64),
          audiences: z.array(audience).min(1).max(8),
          ttl: duration.optional(),
          parent: assignmentId.optional(),
        }),
        response: { 201: z.object({ assignment: Assignment }), ...errors(...SESSION_ERRORS, 404, 409) },
      },
    },
    async (req, reply) => {
      const a = await agents.assign(callerOf(req), (req.params as { id: string }).id, req.body as AssignRequest);
      return reply.code(201).send({ assignment: assignmentDto(a) });
    },
  );

  const listQuery = z.strictObject({ mine: z.enum(['true', 'false']).optional(), live: z.enum(['true', 'false']).optional(), delegator: z.string().max(300).optional() });
  const queryOf = (q: { mine?: string; live?: string; delegator?: string }) => ({ mine: q.mine === 'true', live: q.live === 'true', ...(q.delegator !== undefined && { delegator: q.delegator }) });
  app.get(
    '/v1/agents/:id/assignments',
    {
      preHandler: session,
      schema: {
        operationId: 'listAgentAssignments',
        summary: "An agent's assignments, newest first: mine=true, those you are a party to (delegator, agent, sponsor); otherwise assignment.read on the agent",
        tags: ['agents'],
        params: z.object({ id: agentId }),
        querystring: listQuery,
        response: { 200: z.object({ assignments: z.array(Assignment) }), ...errors(...SESSION_ERRORS) },
      },
    },
    async (req) => {
      const rows = await agents.assignments(callerOf(req), { ...queryOf(req.query as Record<string, string>), agent: (req.params as { id: string }).id });
      return { assignments: rows.map(assignmentDto) };
    },
  );

  app.get(
    '/v1/assignments',
    {
      preHandler: session,
      schema: {
        operationId: 'listAssignments',
        summary: 'Assignments of every agent, newest first: mine=true, those you are a party to (delegator, agent, sponsor); otherwise assignment.read',
        tags: ['agents'],
        querystring: listQuery,
        response: { 200: z.object({ assignments: z.array(Assignment) }), ...errors(...SESSION_ERRORS) },
      },
    },
    async (req) => {
      return { assignments: (await agents.assignments(callerOf(req), queryOf(req.query as Record<string, string>))).map(assignmentDto) };
    },
  );

  app.get(
    '/v1/assignments/:id',
    {
      preHandler: session,
      schema: { operationId: 'getAssignment', summary: 'One assignment (a party to it, or assignment.read)', tags: ['agents'], params: z.object({ id: assignmentId }), response: { 200: z.object({ assignment: Assignment }), ...errors(...SESSION_ERRORS, 404) } },
    },
    async (req) => ({ assignment: assignmentDto(await agents.assignment(callerOf(req), (req.params as { id: string }).id)) }),
  );

  app.post(
    '/v1/assignments/:id/end',
    {
      preHandler: session,
      schema: {
        operationId: 'endAssignment',
        summary: 'End an assignment now, with its sub-assignments: every token issued under them is revoked and live gateway sessions on them end (its delegator, agent or sponsor; anyone else assignment.end)',
        tags: ['agents'],
        params: z.object({ id: assignmentId }),
        body: z.strictObject({ reason: z.string().min(1).max(500) }),
        response: { 200: z.object({ assignment: Assignment }), ...errors(...SESSION_ERRORS, 404) },
      },
    },
    async (req) => ({ assignment: assignmentDto(await agents.end(callerOf(req), (req.params as { id: string }).id, (req.body as { reason: string }).reason)) }),
  );
}
