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
const OTHER = 'workload:other/acme/x';

const POLICY = `
@id("api-gets-orders-tokens")
permit (principal == Workload::"workload:github/acme/api", action == Action::"credential.issue", resource == Api::"orders-api");

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

  // ── The test receivers Portcullis transmits to (RFC 8935: 202 on success, 400 with err on refusal). ──
  const receivers: Server[] = [];
  const makeReceiver = async (answer: (n: number) => { status: number; body?: string }) => {
    const got: Received[] = [];
    let waiting: { n: number; resolve: () => void }[] = [];
    const server = createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => (body += c));
      req.on('end', () => {
        got.push({ token: body, auth: req.headers.authorization, type: req.headers['content-type'] });
        const a = answer(got.length);
        res.writeHead(a.status, { 'content-type': 'application/json' }).end(a.body ?? '');
        waiting = waiting.filter((w) => (got.length >= w.n ? (w.resolve(), false) : true));
      });
    });
    receivers.push(server);
    const port = await listen(server);
    return { got, url: `http://127.0.0.1:${port}/events`, until: (n: number) => (got.length >= n ? Promise.resolve() : new Promise<void>((resolve) => waiting.push({ n, resolve }))) };
  };
  const main = await makeReceiver(() => ({ status: 202 }));
  const flaky = await makeReceiver((n) => ({ status: n === 1 ? 503 : 202 }));
  const refusing = await makeReceiver(() => ({ status: 400, body: JSON.stringify({ err: 'invalid_audience', description: 'not me' }) }));
  const keysOnly = await makeReceiver(() => ({ status: 202 }));
  const received = main.got;

  t.after(async () => {
    await new Promise<void>((r) => jwksServer.close(() => r()));
    for (const r of receivers) await new Promise<void>((done) => r.close(() => done()));
  });
  const h: Harness = await startHarness(
    `targets:
  - { name: orders-api, kind: api, audience: https://orders.example.test, scopes: [orders:read], max_ttl: 30m, default_ttl: 10m }
signals:
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
        endpoint: ${main.url}
        audience: ${RECEIVER_AUD}
        bearer_env: PCX_SSF_OUT
      - { name: flaky, endpoint: "${flaky.url}", audience: https://flaky.test, events: [session-revoked] }
      - { name: refusing, endpoint: "${refusing.url}", audience: https://refusing.test, events: [session-revoked] }
      - { name: keys-only, endpoint: "${keysOnly.url}", audience: https://keys.test, events: [credential-change] }
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
      resources: '  - { type: Api, id: orders-api, boundary: application, environment: prod }',
    },
  );
  t.after(() => h.close());
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
    await refused(await set({ event: 'credential-change', payload: {} }), 'invalid_request');
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
    const forged = await hh.post('/v1/authorize', { action: 'db.select', resource: { type: 'Database', id: 'orders' }, context: { purpose: { reason: 'report' }, signals: { device_compliance: 'compliant' } } }, token);
    assert.equal(forged.status, 400, 'context.signals is set by the server only');
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

  await t.test('a credential-change ends the subject\'s leases and sessions', async () => {
    const token = await hh.loginCi();
    const issued = await hh.post('/v1/credentials', { target: 'orders-api', scopes: ['orders:read'], reason: 'sync' }, token);
    assert.equal(issued.status, 201, JSON.stringify(issued.body));
    const leaseId = (issued.body as { lease: { id: string } }).lease.id;
    assert.equal((await hh.running.broker.credentials.get(leaseId)).status, 'active');
    const r = await push(await set({ event: 'credential-change', payload: { credential_type: 'x509', change_type: 'revoke' } }));
    assert.equal(r.status, 202, JSON.stringify(r.body));
    assert.equal((await hh.running.broker.credentials.get(leaseId)).status, 'revoked');
    assert.equal((await readOrders(token)).status, 401);
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
    const s = await hh.post(`/v1/identities/${encodeURIComponent(API)}/suspend`, { reason: 'compromised runner' }, admin);
    assert.equal(s.status, 200, JSON.stringify(s.body));
    await main.until(1);
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

  await t.test('deliveries are retried until accepted; a receiver\'s RFC 8935 refusal is not retried', async () => {
    await flaky.until(2);
    assert.equal(flaky.got.length, 2);
    assert.equal(flaky.got[0]!.token, flaky.got[1]!.token, 'the same SET is sent again');
    assert.equal(flaky.got[0]!.auth, undefined, 'no push secret configured for it');
    let records: { type: string; payload: Record<string, unknown> }[] = [];
    for (let i = 0; i < 100; i++) {
      records = (await hh.running.broker.audit.query({ stream: 'admin', subject: API, limit: 1000 })).filter((e) => e.type === 'signal.sent' || e.type === 'signal.send_failed');
      if (records.length >= 3) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const by = (name: string) => records.find((e) => e.payload.receiver === name);
    assert.equal(by('flaky')?.type, 'signal.sent');
    assert.equal(by('flaky')?.payload.attempts, 2);
    assert.equal(by('refusing')?.type, 'signal.send_failed');
    assert.equal(by('refusing')?.payload.error, 'HTTP 400 err=invalid_audience');
    assert.equal(refusing.got.length, 1);
    assert.equal(keysOnly.got.length, 0, 'it subscribed to credential-change only');
  });

  await t.test('revoking an API key pushes a credential-change to the receivers that subscribed to it', async () => {
    const admin = await hh.admin();
    const key = await hh.post('/v1/apikeys', { identity: OTHER, ttl: '1d' }, admin);
    assert.equal(key.status, 201, JSON.stringify(key.body));
    const id = (key.body as { id: string }).id;
    assert.equal((await hh.post(`/v1/apikeys/${id}/revoke`, { reason: 'leaked in a log' }, admin)).status, 200);
    await keysOnly.until(1);
    await main.until(2);
    const jwks = createRemoteJWKSet(new URL(`${hh.url}/.well-known/jwks.json`));
    const { payload } = await jwtVerify(keysOnly.got[0]!.token, jwks, { audience: 'https://keys.test', typ: 'secevent+jwt', currentDate: new Date(hh.clock.now()) });
    const ev = (payload.events as Record<string, Record<string, unknown>>)[`${CAEP}credential-change`]!;
    assert.equal(ev.change_type, 'revoke');
    assert.equal(ev.credential_type, 'api-key');
    assert.deepEqual((payload.sub_id as { sub: string }).sub, OTHER);
  });

  await t.test('a flood of unauthenticated pushes is limited per address (429, audited once); transmitters are not', async () => {
    const token = await set({ event: 'assurance-level-change', payload: { current_level: 'aal1' } });
    let limited = 0;
    for (let i = 0; i < 130; i++) if ((await push(token, 'Bearer wrong-wrong-wrong-wrong')).status === 429) limited++;
    assert.ok(limited >= 8, `limited ${limited}`);
    assert.equal((await push(token)).status, 202, 'the configured transmitter still gets through');
    assert.equal((await hh.running.broker.audit.query({ stream: 'authn', type: 'signal.rate_limited' })).length, 1);
  });
});
