// Type-level checks of the generated client (compiled by test/client/sdk.test.ts with tsc): real
// paths, parameters and bodies compile; wrong ones do not (each @ts-expect-error must fire).
import { createPortcullisClient, unwrap } from '../src/index.ts';
import type { Schema } from '../src/index.ts';

export async function typed(): Promise<void> {
  const client = createPortcullisClient({ baseUrl: 'http://127.0.0.1:7070', token: 't' });
  const identity: Schema<'Identity'> = await unwrap(client.GET('/v1/identities/{id}', { params: { path: { id: 'workload:x' } } }));
  const kind: 'workload' | 'agent' | 'service-account' | 'user' | 'human' = identity.kind;
  const decision = await unwrap(client.POST('/v1/authorize', { body: { action: 'db.select', resource: { type: 'Database', id: 'orders' } } }));
  const allowed: 'allow' | 'deny' = decision.decision;
  const listed = await unwrap(client.GET('/v1/identities', { params: { query: { status: 'active' } } }));
  listed.identities.map((i) => i.id.toUpperCase());
  void kind;
  void allowed;

  // @ts-expect-error: no such path
  await client.GET('/v1/no-such-path');
  // @ts-expect-error: the path parameter is required
  await client.GET('/v1/identities/{id}', { params: { path: {} } });
  // @ts-expect-error: status is an enum
  await client.GET('/v1/identities', { params: { query: { status: 'sleeping' } } });
  // @ts-expect-error: reason is a string
  await client.POST('/v1/identities/{id}/suspend', { params: { path: { id: 'x' } }, body: { reason: 42 } });
  // An optional body may be left out.
  await client.POST('/v1/identities/{id}/suspend', { params: { path: { id: 'x' } } });
  // @ts-expect-error: Identity has no such member
  void identity.password;
}
