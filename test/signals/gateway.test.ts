// A signed CAEP session-revoked ends a live gateway session of its subject: the PostgreSQL gateway
// session hangs on the identity's login, and the revocation reaches it through the same path as an
// administrator's (real PostgreSQL, node-postgres, a real Portcullis server, real JWS).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { randomUUID } from 'node:crypto';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey } from 'jose';
import { startGatewayFixture, type GatewayFixture } from '../integration/gateway-postgres-helpers.ts';

const TX = 'https://idp.gateway-signals.test';
const SECRET = 'gateway-push-secret-0123456789';
const key = await generateKeyPair('ES256');
const jwk = { ...(await exportJWK(key.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
const jwks = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] })));
let f: GatewayFixture;

before(async () => {
  await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', r));
  const port = (jwks.address() as { port: number }).port;
  process.env.PCX_SSF_GW_PUSH = SECRET; // read by the config loader with the rest of the environment
  // A top-level section after the gateway entry (the fixture appends this YAML as it is).
  f = await startGatewayFixture({
    gatewayYaml: `signals:
  receiver:
    transmitters:
      - { name: idp, issuer: ${TX}, jwks_uri: "http://127.0.0.1:${port}/jwks", algorithms: [ES256], trust: ci, push_auth: { bearer_env: PCX_SSF_GW_PUSH } }
`,
  });
});

after(async () => {
  await f?.close();
  await new Promise<void>((r) => jwks.close(() => r()));
});

test('a session-revoked SET ends the subject\'s live PostgreSQL gateway session', async () => {
  const c = await f.client(await f.token());
  assert.equal((await c.query('SELECT 1 AS one')).rows[0].one, 1);
  const q = c.query('SELECT pg_sleep(30)').then(() => undefined, (e: Error & { code?: string }) => e);
  const ended = new Promise<Error & { code?: string }>((r) => c.once('error', r));
  await new Promise((r) => setTimeout(r, 200));
  const now = Math.floor(f.h.clock.now() / 1000);
  const set = await new SignJWT({ iss: TX, aud: f.h.running.broker.issuer, jti: randomUUID(), sub_id: { format: 'opaque', id: 'workload:github/acme/api' }, events: { 'https://schemas.openid.net/secevent/caep/event-type/session-revoked': { event_timestamp: now } } })
    .setProtectedHeader({ alg: 'ES256', kid: 'k1', typ: 'secevent+jwt' })
    .setIssuedAt(now)
    .sign(key.privateKey as CryptoKey);
  const res = await fetch(`${f.h.url}/v1/signals/events`, { method: 'POST', headers: { authorization: `Bearer ${SECRET}`, 'content-type': 'application/secevent+jwt' }, body: set });
  assert.equal(res.status, 202, await res.text());
  const err = (await Promise.race([q, ended]))!;
  assert.ok(err, 'the query did not finish normally');
  assert.equal(err.code, '57P01', err.message);
  assert.match(err.message, /login session was revoked/);
});
