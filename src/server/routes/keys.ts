// The broker's signing keys: list and rotate (the old key keeps verifying for an overlap).
import type { FastifyInstance } from 'fastify';
import type { Broker } from '../../broker/index.ts';
import { callerOf, requireSession } from '../auth.ts';
import { keyDto, keyRotationDto } from '../dto.ts';
import { z } from 'zod';
import { Key, SESSION_ERRORS, errors } from '../schemas.ts';

export function keyRoutes(app: FastifyInstance, broker: Broker): void {
  const session = requireSession(broker);
  const keys = broker.admin.keys;
  app.get('/v1/keys', { preHandler: session, schema: { operationId: 'listKeys', summary: 'Signing keys (public parts and status)', tags: ['keys'], response: { 200: z.object({ keys: z.array(Key) }), ...errors(401, 403) } } }, async (req) => ({ keys: (await keys.list(callerOf(req))).map(keyDto) }));
  app.post(
    '/v1/keys/rotate',
    {
      preHandler: session,
      schema: {
        operationId: 'rotateKey',
        summary: 'Rotate a signing key; live tokens keep verifying until they expire',
        tags: ['keys'],
        body: z.strictObject({ purpose: z.enum(['session', 'audit', 'token']) }),
        response: { 200: z.object({ active: Key, previous: Key.nullable() }), ...errors(...SESSION_ERRORS) },
      },
    },
    async (req) => keyRotationDto(await keys.rotate(callerOf(req), (req.body as { purpose: 'session' | 'audit' | 'token' }).purpose)),
  );
}
