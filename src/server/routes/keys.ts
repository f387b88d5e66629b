// The broker's signing keys: list and rotate (the old key keeps verifying for an overlap).
import type { FastifyInstance } from 'fastify';
import type { Broker } from '../../broker/index.ts';
import { callerOf, requireSession } from '../auth.ts';
import { keyDto, keyRotationDto } from '../dto.ts';

export function keyRoutes(app: FastifyInstance, broker: Broker): void {
  const session = requireSession(broker);
  const keys = broker.admin.keys;
  app.get('/v1/keys', { preHandler: session, schema: { summary: 'Signing keys (public parts and status)', tags: ['keys'] } }, async (req) => ({ keys: (await keys.list(callerOf(req))).map(keyDto) }));
  app.post(
    '/v1/keys/rotate',
    {
      preHandler: session,
      schema: {
        summary: 'Rotate a signing key; live tokens keep verifying until they expire',
        tags: ['keys'],
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['purpose'],
          properties: { purpose: { type: 'string', enum: ['session', 'audit', 'token'] } },
        },
      },
    },
    async (req) => keyRotationDto(await keys.rotate(callerOf(req), (req.body as { purpose: 'session' | 'audit' | 'token' }).purpose)),
  );
}
