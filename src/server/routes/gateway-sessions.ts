// Gateway sessions (issue #11, docs/gateways.md): list, show with their records and verification,
// the recording as JSON lines, terminate. The broker decides (session.read / session.terminate).
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Broker, GatewaySessionQuery } from '../../broker/index.ts';
import { callerOf, requireSession } from '../auth.ts';
import { auditVerificationDto } from '../dto.ts';
import { AuditRecord, SESSION_ERRORS, errors, optionalBody, time } from '../schemas.ts';

const GatewaySession = z.object({
  id: z.string(),
  gateway: z.string(),
  kind: z.string(),
  target: z.string(),
  identity: z.string(),
  started_at: time,
  ended_at: time.optional(),
  end_reason: z.string().optional(),
  live: z.boolean().describe('no session.end yet (it may live on another replica)'),
  here: z.boolean().describe('live on the replica that answered'),
  lease: z.string().optional(),
  grant: z.string().optional(),
  records: z.int().optional(),
  start: z.record(z.string(), z.unknown()).describe('the session.start record’s payload'),
});
const idParam = z.object({ id: z.string().max(64) });

export function gatewaySessionRoutes(app: FastifyInstance, broker: Broker): void {
  const session = requireSession(broker);
  const sessions = broker.admin.gatewaySessions;

  app.get(
    '/v1/gateways',
    {
      preHandler: session,
      schema: {
        operationId: 'listGateways',
        summary: 'Configured session gateways and where they listen',
        tags: ['sessions'],
        response: { 200: z.object({ gateways: z.array(z.object({ name: z.string(), kind: z.string(), target: z.string(), host: z.string(), port: z.int(), tls: z.boolean(), host_key: z.string().optional(), resource: z.string().optional().describe('kind mcp: its resource identifier (RFC 8707), the URL clients connect to and name in a token exchange') })) }), ...errors(401) },
      },
    },
    async () => ({ gateways: broker.gateways() }),
  );

  app.get(
    '/v1/sessions',
    {
      preHandler: session,
      schema: {
        operationId: 'listGatewaySessions',
        summary: 'Gateway sessions, newest first: your own (mine=true), or anyone’s by identity / target / gateway (session.read)',
        tags: ['sessions'],
        querystring: z.strictObject({
          mine: z.enum(['true', 'false']).optional(),
          identity: z.string().max(300).optional(),
          target: z.string().max(128).optional(),
          gateway: z.string().max(64).optional(),
          live: z.enum(['true', 'false']).optional(),
          limit: z.string().regex(/^\d{1,4}$/, 'must be a number up to 9999').optional(),
        }),
        response: { 200: z.object({ sessions: z.array(GatewaySession) }), ...errors(...SESSION_ERRORS) },
      },
    },
    async (req) => {
      const q = req.query as Record<string, string | undefined>;
      const query: GatewaySessionQuery = {
        mine: q.mine === 'true',
        ...(q.identity !== undefined && { identity: q.identity }),
        ...(q.target !== undefined && { target: q.target }),
        ...(q.gateway !== undefined && { gateway: q.gateway }),
        ...(q.live !== undefined && { live: q.live === 'true' }),
        ...(q.limit !== undefined && { limit: Number(q.limit) }),
      };
      return { sessions: await sessions.list(callerOf(req), query) };
    },
  );

  app.get(
    '/v1/sessions/:id',
    {
      preHandler: session,
      schema: {
        operationId: 'getGatewaySession',
        summary: 'One gateway session: metadata, its records (statements, commands) and their verification (session.read)',
        tags: ['sessions'],
        params: idParam,
        querystring: z.strictObject({ verify: z.enum(['true', 'false']).optional() }),
        response: {
          200: z.object({
            session: GatewaySession,
            records: z.array(AuditRecord),
            verification: z.object({ ok: z.boolean(), records: z.int(), missing: z.array(z.int()), complete: z.boolean(), reason: z.string().optional(), stream: z.record(z.string(), z.unknown()) }).optional(),
          }),
          ...errors(...SESSION_ERRORS, 404),
        },
      },
    },
    async (req) => {
      const { id } = req.params as { id: string };
      const c = callerOf(req);
      const got = await sessions.get(c, id);
      if ((req.query as { verify?: string }).verify !== 'true') return got;
      const v = await sessions.verify(c, id);
      const stream = auditVerificationDto({ ok: v.stream.ok, streams: [v.stream] }).streams[0]!;
      return { ...got, verification: { ok: v.ok, records: v.records, missing: v.missing, complete: v.complete, ...(v.reason !== undefined && { reason: v.reason }), stream } };
    },
  );

  app.get(
    '/v1/sessions/:id/recording',
    {
      preHandler: session,
      schema: {
        operationId: 'getGatewaySessionRecording',
        summary: 'A gateway session’s recording as JSON lines, one record each, in order (session.read)',
        tags: ['sessions'],
        params: idParam,
        response: { 200: { description: 'NDJSON', content: { 'application/x-ndjson': { schema: z.string() } } }, ...errors(...SESSION_ERRORS, 404) },
      },
    },
    async (req, reply) => {
      const { id } = req.params as { id: string };
      const records = await sessions.recording(callerOf(req), id);
      return reply.type('application/x-ndjson').header('cache-control', 'no-store').send(records.map((r) => `${JSON.stringify(r)}\n`).join(''));
    },
  );

  app.post(
    '/v1/sessions/:id/terminate',
    {
      preHandler: session,
      schema: {
        operationId: 'terminateGatewaySession',
        summary: 'End a live gateway session wherever it lives (its upstream lease is revoked); another identity’s needs session.terminate',
        tags: ['sessions'],
        params: idParam,
        body: optionalBody({ reason: z.string().max(1024).optional() }),
        response: { 200: z.object({ session: z.string(), here: z.boolean(), lease: z.string().optional() }), ...errors(...SESSION_ERRORS, 404) },
      },
    },
    async (req) => {
      const { id } = req.params as { id: string };
      return sessions.terminate(callerOf(req), id, (req.body as { reason?: string } | undefined)?.reason);
    },
  );
}
