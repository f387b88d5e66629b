// Shared Signals end to end over real HTTP on loopback: a transmitter and a receiver written to the
// specifications here (RFC 8417 SETs, RFC 8935 push, RFC 9493 subjects, CAEP events, real JWS with
// jose) against a real Portcullis server, over the run's store (SQLite, or PostgreSQL with
// PCX_TEST_STORE=postgres).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { randomUUID } from 'node:crypto';
import { SignJWT, createRemoteJWKSet, exportJWK, generateKeyPair, jwtVerify, type CryptoKey, type JWK } from 'jose';
import { ISSUER, startHarness, trust2, type Harness } from '../integration/harness.ts';

const TX_ISSUER = 'https://idp.signals.test';
const PUSH_SECRET = 'push-secret-0123456789abcdef';
const RECEIVER_AUD = 'https://receiver.signals.test';
const CAEP = 'https://schemas.openid.net/secevent/caep/event-type/';
const API = 'workload:github/acme/api';

const POLICY = `
@id("orders-refused-on-noncompliant-device")
forbid (principal, action == Action::"db.select", resource == Database::"orders")
when { context.signals.device_compliance == "not-compliant" };
`;

interface Received {
  token: string;
  auth: string | undefined;
  type: string | undefined;
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as { port: number }).port;
}

test('Shared Signals: receiver and transmitter over real HTTP', async (t) => {
  // ── The test transmitter's keys: one published in its JWKS, one not. ──
  const key = await generateKeyPair('ES256');
  const rogue = await generateKeyPair('ES256');
  const jwk: JWK = { ...(await exportJWK(key.publicKey)), kid: 'tx-1', alg: 'ES256', use: 'sig' };
  const jwksServer = createServer((req, res) => {
    res.writeHead(req.url === '/jwks' ? 200 : 404, { 'content-type': 'application/json' });
    res.end(req.url === '/jwks' ? JSON.stringify({ keys: [jwk] }) : '');
  });
  const jwksPort = await listen(jwksServer);

  // ── The test receiver Portcullis transmits to (RFC 8935: 202 on success). ──
  const received: Received[] = [];
  let notify: (() => void) | undefined;
  const receiver = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      received.push({ token: body, auth: req.headers.authorization, type: req.headers['content-type'] });
      res.writeHead(202).end();
      notify?.();
    });
  });
  const receiverPort = await listen(receiver);

  let h: Harness | undefined;
  t.after(async () => {
    await h?.close();
    await new Promise<void>((r) => jwksServer.close(() => r()));
    await new Promise<void>((r) => receiver.close(() => r()));
  });
  h = await startHarness(
    `signals:
  receiver:
    audience: https://portcullis.signals.test
    max_age: 10m
    transmitters:
      - name: idp
        issuer: ${TX_ISSUER}
        jwks_uri: http://127.0.0.1:${jwksPort}/jwks
        algorithms: [ES256]
        trust: ci
        push_auth: { bearer_env: PCX_SSF_PUSH }
  transmitter:
    receivers:
      - name: test-receiver
        endpoint: http://127.0.0.1:${receiverPort}/events
        audience: ${RECEIVER_AUD}
        bearer_env: PCX_SSF_OUT
    backoff_base: 50ms
`,
    { PCX_SSF_PUSH: PUSH_SECRET, PCX_SSF_OUT: 'outbound-secret-0123456789' },
    undefined,
    {
      trusts: trust2('other', 'workload:other/{repository}'),
      identities: `
  - id: workload:other/acme/x
    kind: workload
    boundary: application
    environment: prod`,
      policies: POLICY,
    },
  );
  const hh = h;
  const now = () => Math.floor(hh.clock.now() / 1000);

  const set = async (o: { event?: string; payload?: Record<string, unknown>; sub?: unknown; claims?: Record<string, unknown>; header?: Record<string, unknown>; signWith?: CryptoKey } = {}) => {
    const event = o.event ?? 'session-revoked';
    return new SignJWT({
      iss: TX_ISSUER,
      aud: 'https://portcullis.signals.test',
      jti: randomUUID(),
      sub_id: o.sub ?? { format: 'opaque', id: API },
      events: { [`${CAEP}${event}`]: { event_timestamp: now(), ...o.payload } },
      ...o.claims,
    })
      .setProtectedHeader({ alg: 'ES256', kid: 'tx-1', typ: 'secevent+jwt', ...o.header })
      .setIssuedAt(typeof o.claims?.iat === 'number' ? o.claims.iat : now())
      .sign(o.signWith ?? (key.privateKey as CryptoKey));
  };
  const push = async (token: string, auth: string | null = `Bearer ${PUSH_SECRET}`) => {
    const headers: Record<string, string> = { 'content-type': 'application/secevent+jwt' };
    if (auth !== null) headers.authorization = auth;
    const res = await fetch(`${hh.url}/v1/signals/events`, { method: 'POST', headers, body: token });
    const text = await res.text();
    return { status: res.status, body: text === '' ? undefined : (JSON.parse(text) as { err: string; description: string }) };
  };
  const refused = async (token: string, err: string, auth?: string | null) => {
    const r = await push(token, auth);
    assert.equal(r.status, 400, `expected 400 ${err}, got ${r.status} ${JSON.stringify(r.body)}`);
    assert.equal(r.body?.err, err, r.body?.description);
    assert.ok((r.body?.description ?? '').length > 0);
  };
  const readOrders = async (token: string) => hh.post('/v1/authorize', { action: 'db.select', resource: { type: 'Database', id: 'orders' }, context: { purpose: { reason: 'report' } } }, token);

  await t.test('the SSF configuration metadata names what is implemented', async () => {
    const r = await hh.get('/.well-known/ssf-configuration');
    assert.equal(r.status, 200);
    const m = r.body as Record<string, unknown>;
    assert.deepEqual(m.delivery_methods_supported, ['urn:ietf:rfc:8935']);
    assert.equal(m.jwks_uri, `${m.issuer as string}/.well-known/jwks.json`);
    assert.deepEqual(m.events_supported, [`${CAEP}session-revoked`, `${CAEP}credential-change`]);
  });

  await t.test('forged, unsigned, misaddressed and replayed SETs are refused with the RFC 8935 err', async () => {
    await refused(await set(), 'authentication_failed', null);
    await refused(await set(), 'authentication_failed', 'Bearer not-the-push-secret-at-all');
    await refused(await set({ claims: { aud: 'https://someone-else.test' } }), 'invalid_audience');
    await refused(await set({ claims: { iss: 'https://evil.test' } }), 'invalid_issuer');
    // alg none: an unsigned SET of the right shape.
    const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'secevent+jwt' })).toString('base64url')}.${Buffer.from(JSON.stringify({ iss: TX_ISSUER, aud: 'https://portcullis.signals.test', iat: now(), jti: randomUUID(), sub_id: { format: 'opaque', id: API }, events: { [`${CAEP}session-revoked`]: {} } })).toString('base64url')}.`;
    await refused(none, 'invalid_key');
    // HS256 with the push secret as the key: symmetric algorithms are never accepted.
    const hs = await new SignJWT({ iss: TX_ISSUER, aud: 'https://portcullis.signals.test', jti: randomUUID(), sub_id: { format: 'opaque', id: API }, events: { [`${CAEP}session-revoked`]: {} } })
      .setProtectedHeader({ alg: 'HS256', typ: 'secevent+jwt' })
      .setIssuedAt(now())
      .sign(new TextEncoder().encode(PUSH_SECRET));
    await refused(hs, 'invalid_key');
    // A key not in the transmitter's JWKS: under its own kid, and under the published kid.
    await refused(await set({ header: { kid: 'rogue-1' }, signWith: rogue.privateKey as CryptoKey }), 'invalid_key');
    await refused(await set({ signWith: rogue.privateKey as CryptoKey }), 'invalid_key');
    await refused(await set({ header: { typ: 'JWT' } }), 'invalid_request');
    await refused(await set({ claims: { iat: now() - 3600 } }), 'invalid_request');
    // A subject of another trust (bound to `other`, not to `ci`), and one that names nobody.
    await refused(await set({ sub: { format: 'opaque', id: 'workload:other/acme/x' } }), 'access_denied');
    await refused(await set({ sub: { format: 'opaque', id: 'workload:github/acme/nobody' } }), 'access_denied');
    await refused(await set({ sub: { format: 'iss_sub', iss: ISSUER, sub: 'x' } }), 'access_denied');
    // A replayed jti: the first is taken, the same SET again is refused.
    const once = await set({ event: 'assurance-level-change', payload: { namespace: 'NIST-AAL', current_level: 'aal2' } });
    assert.equal((await push(once)).status, 202);
    await refused(once, 'invalid_request');
  });

  await t.test('device compliance becomes context.signals for policy, newest event wins', async () => {
    const token = await hh.loginCi();
    assert.equal((await readOrders(token)).body.decision, 'allow', 'no signal yet: device_compliance is "unknown"');
    const t0 = now();
    assert.equal((await push(await set({ event: 'device-compliance-change', payload: { previous_status: 'compliant', current_status: 'not-compliant', event_timestamp: t0 } }))).status, 202);
    assert.equal((await readOrders(token)).body.decision, 'deny');
    // An older event arriving late changes nothing.
    assert.equal((await push(await set({ event: 'device-compliance-change', payload: { current_status: 'compliant', event_timestamp: t0 - 60 } }))).status, 202);
    assert.equal((await readOrders(token)).body.decision, 'deny');
    assert.equal((await push(await set({ event: 'device-compliance-change', payload: { current_status: 'compliant', event_timestamp: t0 + 1 } }))).status, 202);
    assert.equal((await readOrders(token)).body.decision, 'allow');
    assert.deepEqual(
      { ...hh.running.broker.signalFacts.of(API) },
      { assurance_level: 'aal2', assurance_level_at: hh.running.broker.signalFacts.of(API).assurance_level_at, device_compliance: 'compliant', device_compliant: true, device_compliance_at: t0 + 1 },
    );
  });

  await t.test('a signed session-revoked ends the subject\'s sessions: its token stops working', async () => {
    const token = await hh.loginCi();
    assert.equal((await readOrders(token)).status, 200);
    const r = await push(await set({ sub: { format: 'complex', user: { format: 'opaque', id: API }, session: { format: 'opaque', id: 'idp-session-1' } } }));
    assert.equal(r.status, 202, JSON.stringify(r.body));
    assert.equal((await readOrders(token)).status, 401);
    const accepted = await hh.running.broker.audit.query({ stream: 'authn', type: 'signal.received', subject: API });
    assert.ok(accepted.some((e) => e.payload.effect === 'access_ended' && e.payload.subject_format === 'complex/opaque'));
    // A received revocation is not echoed back out to the receivers.
    assert.equal(received.length, 0);
  });

  await t.test('every push is audited in the authn stream, never with the token', async () => {
    const refusedEvents = await hh.running.broker.audit.query({ stream: 'authn', type: 'signal.refused', limit: 1000 });
    const errs = new Set(refusedEvents.map((e) => e.payload.err));
    for (const err of ['authentication_failed', 'invalid_audience', 'invalid_issuer', 'invalid_key', 'invalid_request', 'access_denied']) assert.ok(errs.has(err), err);
    const all = JSON.stringify(await hh.running.broker.audit.query({ stream: 'authn', limit: 1000 }));
    assert.ok(!all.includes(PUSH_SECRET));
    assert.ok(!/eyJ[A-Za-z0-9_-]{10,}\.eyJ/.test(all), 'no SET in the audit records');
  });

  await t.test('Portcullis as transmitter: suspending an identity pushes a verifiable session-revoked SET', async () => {
    const admin = await hh.admin();
    const arrived = new Promise<void>((r) => (notify = r));
    const s = await hh.post(`/v1/identities/${encodeURIComponent(API)}/suspend`, { reason: 'compromised runner' }, admin);
    assert.equal(s.status, 200, JSON.stringify(s.body));
    await arrived;
    assert.equal(received.length, 1);
    const got = received[0]!;
    assert.equal(got.type, 'application/secevent+jwt');
    assert.equal(got.auth, 'Bearer outbound-secret-0123456789');
    const meta = (await hh.get('/.well-known/ssf-configuration')).body as { issuer: string; jwks_uri: string };
    const jwks = createRemoteJWKSet(new URL(`${hh.url}/.well-known/jwks.json`));
    const { payload, protectedHeader } = await jwtVerify(got.token, jwks, { issuer: meta.issuer, audience: RECEIVER_AUD, typ: 'secevent+jwt', currentDate: new Date(hh.clock.now()) });
    assert.equal(protectedHeader.alg, 'EdDSA');
    assert.equal(typeof payload.jti, 'string');
    assert.deepEqual(payload.sub_id, { format: 'iss_sub', iss: meta.issuer, sub: API });
    const events = payload.events as Record<string, Record<string, unknown>>;
    assert.deepEqual(Object.keys(events), [`${CAEP}session-revoked`]);
    assert.equal((events[`${CAEP}session-revoked`]!.reason_admin as { en: string }).en, 'compromised runner');
    // The delivery is on record (admin stream), with the SET's fingerprint only.
    let sent: unknown[] = [];
    for (let i = 0; i < 50 && sent.length === 0; i++) {
      sent = await hh.running.broker.audit.query({ stream: 'admin', type: 'signal.sent', subject: API });
      if (sent.length === 0) await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(sent.length, 1);
    assert.ok(!JSON.stringify(sent).includes(got.token));
  });
});
