// Audit: query, follow (NDJSON stream), export, online verification.
import type { FastifyInstance } from 'fastify';
import type { Broker } from '../../broker/index.ts';
import { AUDIT_STREAMS } from '../../audit/types.ts';
import type { AuditStreamName } from '../../audit/types.ts';
import type { StreamQuery } from '../../broker/index.ts';
import { InvalidInput } from '../../common/errors.ts';
import { callerOf, requireSession } from '../auth.ts';
import { auditVerificationDto } from '../dto.ts';

const time = { type: 'string', maxLength: 40 } as const;

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
  app.get('/v1/audit/keys', { schema: { summary: 'Audit checkpoint public keys (every one ever used, with status) for offline verification', tags: ['audit'] } }, async (_req, reply) => {
    return reply.header('cache-control', 'public, max-age=60').send(broker.auditKeys());
  });

  app.get('/v1/audit/verify', { preHandler: session, schema: { summary: 'Verify every stream: hash chain, checkpoints, head', tags: ['audit'] } }, async (req) => auditVerificationDto(await audit.verify(callerOf(req))));

  app.get(
    '/v1/audit/:stream',
    {
      preHandler: session,
      schema: {
        summary: 'Query a stream; `follow=true` streams new events as NDJSON, `format=ndjson` exports',
        tags: ['audit'],
        params: { type: 'object', required: ['stream'], properties: { stream: { type: 'string', enum: [...AUDIT_STREAMS] } } },
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            since: time,
            until: time,
            identity: { type: 'string', maxLength: 300 },
            boundary: { type: 'string', maxLength: 64 },
            decision: { type: 'string', enum: ['allow', 'deny'] },
            type: { type: 'string', maxLength: 128 },
            after: { type: 'string', pattern: '^\\d{1,15}$' },
            limit: { type: 'string', pattern: '^\\d{1,4}$' },
            follow: { type: 'string', enum: ['true', 'false'] },
            format: { type: 'string', enum: ['json', 'ndjson'] },
          },
        },
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
        return reply.type('application/x-ndjson').send(lines);
      }
      const limit = q.limit === undefined ? 100 : Math.min(Number(q.limit), 1000);
      return { events: await audit.query(callerOf(req), { ...query, limit }) };
    },
  );
}

function isoOrFail(v: string, field: string): string {
  if (Number.isNaN(Date.parse(v))) throw new InvalidInput(`${field} must be an ISO-8601 time`, field);
  return new Date(v).toISOString();
}
