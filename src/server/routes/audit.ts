// Audit: query, follow (NDJSON stream), export, online verification.
import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { Broker } from '../../broker/index.ts';
import type { AuditStreamName } from '../../audit/types.ts';
import type { StreamQuery } from '../../broker/index.ts';
import { InvalidInput } from '../../common/errors.ts';
import { callerOf, requireSession } from '../auth.ts';
import { auditVerificationDto } from '../dto.ts';
import { z } from 'zod';
import { AuditRecord, AuditVerification, Jwks, SESSION_ERRORS, auditStream, errors } from '../schemas.ts';

const ndjson = { 'application/x-ndjson': { schema: z.string().describe('one audit record a line') } };

const time = z.string().max(40).optional();

export function auditRoutes(app: FastifyInstance, broker: Broker): void {
  const session = requireSession(broker);
  const audit = broker.admin.audit;
  // Followers stream until the client leaves; on shutdown they end at once (a follower is never
  // "in flight": nothing it waits for will complete).
  const followers = new Set<AbortController>();
  app.addHook('preClose', async () => {
    for (const f of followers) f.abort();
  });

  // Public keys only, apart from /.well-known/jwks.json (relying parties must never trust a
  // checkpoint key for tokens); public like a JWKS so anyone holding witnessed checkpoints can check them.
  app.get('/v1/audit/keys', { schema: { operationId: 'getAuditKeys', summary: 'Audit checkpoint public keys (every one ever used, with status) for offline verification', tags: ['audit'], response: { 200: Jwks, ...errors() } } }, async (_req, reply) => {
    return reply.header('cache-control', 'public, max-age=60').send(broker.auditKeys());
  });

  app.get('/v1/audit/verify', { preHandler: session, schema: { operationId: 'verifyAudit', summary: 'Verify every stream: hash chain, checkpoints, head', tags: ['audit'], response: { 200: AuditVerification, ...errors(401, 403) } } }, async (req) => auditVerificationDto(await audit.verify(callerOf(req))));

  app.get(
    '/v1/audit/:stream',
    {
      preHandler: session,
      schema: {
        operationId: 'queryAudit',
        summary: 'Query a stream; `follow=true` streams new events as NDJSON, `format=ndjson` exports',
        tags: ['audit'],
        params: z.object({ stream: auditStream }),
        querystring: z.strictObject({
          since: time,
          until: time,
          identity: z.string().max(300).optional(),
          boundary: z.string().max(64).optional(),
          decision: z.enum(['allow', 'deny']).optional(),
          type: z.string().max(128).optional(),
          after: z.string().regex(/^\d{1,15}$/, 'must be a sequence number').optional(),
          limit: z.string().regex(/^\d{1,4}$/, 'must be a number up to 9999').optional(),
          order: z.enum(['asc', 'desc']).optional().describe('asc (default): oldest first; desc: newest first (JSON answers; with after: the newest after it)'),
          follow: z.enum(['true', 'false']).optional(),
          format: z.enum(['json', 'ndjson']).optional(),
        }),
        response: { 200: { description: 'Events (JSON), or NDJSON with format=ndjson / follow=true', content: { 'application/json': { schema: z.object({ events: z.array(AuditRecord) }) }, ...ndjson } }, ...errors(...SESSION_ERRORS) },
      },
    },
    async (req, reply) => {
      const stream = (req.params as { stream: AuditStreamName }).stream;
      const q = req.query as Record<string, string | undefined>;
      const query: StreamQuery = {
        stream,
        ...(q.since !== undefined && { since: isoOrFail(q.since, 'since') }),
        ...(q.until !== undefined && { until: isoOrFail(q.until, 'until') }),
        ...(q.identity !== undefined && { identity: q.identity }),
        ...(q.boundary !== undefined && { boundary: q.boundary }),
        ...(q.decision !== undefined && { decision: q.decision as 'allow' | 'deny' }),
        ...(q.type !== undefined && { type: q.type }),
        ...(q.after !== undefined && { afterSeq: Number(q.after) }),
      };
      if (q.follow === 'true') {
        const abort = new AbortController();
        const events = await audit.follow(callerOf(req), { ...query, signal: abort.signal });
        followers.add(abort);
        req.raw.on('close', () => {
          abort.abort();
          followers.delete(abort);
        });
        reply.hijack();
        reply.raw.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
        reply.raw.flushHeaders();
        for await (const r of events) {
          if (!reply.raw.write(`${JSON.stringify(r)}\n`)) await new Promise((res) => reply.raw.once('drain', res));
        }
        reply.raw.end();
        return;
      }
      if (q.format === 'ndjson') {
        const lines = await audit.exportJsonLines(callerOf(req), query);
        return reply.type('application/x-ndjson').send(Readable.from(lines));
      }
      const limit = q.limit === undefined ? 100 : Math.min(Number(q.limit), 1000);
      return { events: await audit.query(callerOf(req), { ...query, limit, ...(q.order !== undefined && { order: q.order as 'asc' | 'desc' }) }) };
    },
  );
}

function isoOrFail(v: string, field: string): string {
  if (Number.isNaN(Date.parse(v))) throw new InvalidInput(`${field} must be an ISO-8601 time`, field);
  return new Date(v).toISOString();
}
