// RFC 9068 access tokens and RFC 8693 delegation, checked by a small resource server over real
// HTTP that verifies tokens against the broker's JWKS (jose createRemoteJWKSet).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { createRemoteJWKSet, decodeProtectedHeader, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { ManualClock } from '../../src/common/clock.ts';
import { AuthenticationFailed, Forbidden, PortcullisError } from '../../src/common/errors.ts';
import { actorsOf, delegate, exchange, verifyAccessToken } from '../../src/credentials/issuers/api/access-token.ts';
import type { ActClaim } from '../../src/credentials/issuers/api/access-token.ts';
import { validateTargets } from '../../src/credentials/config.ts';
import { createCredentialService } from '../../src/credentials/service.ts';
import type { CredentialService } from '../../src/credentials/service.ts';
import type { JwtSigner } from '../../src/credentials/types.ts';
import { MemoryAudit, TablePolicy, sqliteLeases } from './helpers.ts';

const ISS = 'https://portcullis.test';
let broker: Server;
let api: Server;
let apiUrl = '';
let signer: JwtSigner;
let svc: CredentialService;
let audit: MemoryAudit;
let policy: TablePolicy;

const targets = validateTargets([
  { name: 'orders-api', kind: 'api', audience: 'https://orders.example', scopes: ['orders:read', 'orders:write', 'refunds:write'], max_ttl: '15m', default_ttl: '5m', max_delegation_depth: 3 },
  { name: 'billing-api', kind: 'api', audience: 'https://billing.example', scopes: ['billing:read'], max_ttl: '15m' },
]);

function listen(s: Server): Promise<string> {
  return new Promise((resolve) => s.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(s.address() as { port: number }).port}`)));
}

before(async () => {
  const { privateKey, publicKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
  const kid = 'broker-key-1';
  signer = {
    kid,
    alg: 'EdDSA',
    sign: (claims, header) => new SignJWT(claims).setProtectedHeader({ ...header, alg: 'EdDSA', kid }).sign(privateKey),
  };
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'EdDSA', use: 'sig' };
  // The broker's /.well-known/jwks.json.
  broker = createServer((req, res) => {
    if (req.url === '/.well-known/jwks.json') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys: [jwk] }));
    } else res.writeHead(404).end();
  });
  const brokerUrl = await listen(broker);
  const jwks = createRemoteJWKSet(new URL(`${brokerUrl}/.well-known/jwks.json`));
  // The example resource server: GET /orders needs orders:read, POST /refunds needs refunds:write.
  api = createServer(async (req, res) => {
    const need = req.method === 'GET' && req.url === '/orders' ? ['orders:read'] : req.method === 'POST' && req.url === '/refunds' ? ['refunds:write'] : null;
    if (!need) return void res.writeHead(404).end();
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
    try {
      const t = await verifyAccessToken(token, jwks, { issuer: ISS, audience: 'https://orders.example', requiredScopes: need });
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ sub: t.sub, actors: actorsOf(t.act) }));
    } catch (e) {
      const status = e instanceof AuthenticationFailed ? 401 : e instanceof Forbidden ? 403 : 500;
      res.writeHead(status, { 'www-authenticate': `Bearer error="${status === 401 ? 'invalid_token' : 'insufficient_scope'}"` }).end();
    }
  });
  apiUrl = await listen(api);
  audit = new MemoryAudit();
  policy = new TablePolicy();
  svc = createCredentialService({ leases: sqliteLeases(), audit, decide: policy.decide, targets, signer, issuerUrl: ISS });
  for (const id of ['user:alice@example.com', 'agent:a', 'agent:b']) {
    policy.allow(id, 'Api::orders-api');
    policy.allow(id, 'Api::billing-api');
  }
});

after(async () => {
  await svc?.stop();
  broker?.closeAllConnections();
  api?.closeAllConnections();
  await Promise.all([broker, api].map((s) => new Promise((r) => s?.close(r))));
});

async function call(method: string, path: string, token: string): Promise<{ status: number; body: unknown }> {
  const r = await fetch(`${apiUrl}${path}`, { method, headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(5000) });
  return { status: r.status, body: r.status === 200 ? await r.json() : null };
}

describe('RFC 9068 access tokens', () => {
  test('a token carries the profile claims and works at the resource server, within its scope', async () => {
    const { lease, credential } = await svc.issue({ identityId: 'user:alice@example.com', target: 'orders-api', params: { scopes: ['orders:read'] }, purpose: 'dashboard' });
    const token = credential.access_token as string;
    audit.secrets.push(token);
    assert.equal(decodeProtectedHeader(token).typ, 'at+jwt');
    const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString());
    assert.deepEqual(Object.keys(claims).sort(), ['aud', 'client_id', 'exp', 'iat', 'iss', 'jti', 'scope', 'sub']);
    assert.equal(claims.aud, 'https://orders.example');
    assert.equal(claims.exp - claims.iat, 300);
    assert.equal(claims.jti, lease.handle);
    assert.equal((await call('GET', '/orders', token)).status, 200);
    assert.equal((await call('POST', '/refunds', token)).status, 403, 'scope-bound');
    assert.equal((await svc.introspect('api', claims.jti)).active, true);
    await svc.revoke({ lease: lease.id }, { by: 'user:alice@example.com', reason: 'logout' });
    assert.equal((await svc.introspect('api', claims.jti)).active, false);
  });

  test('audience-bound and expiring: other audiences and expired tokens get 401', async () => {
    const other = await svc.issue({ identityId: 'user:alice@example.com', target: 'billing-api', params: { scopes: 'billing:read' }, purpose: 'billing' });
    assert.equal((await call('GET', '/orders', other.credential.access_token as string)).status, 401);
    const past = createCredentialService({
      leases: sqliteLeases(), audit: new MemoryAudit(), decide: policy.decide, targets, signer, issuerUrl: ISS,
      clock: new ManualClock(Date.now() - 3_600_000),
    });
    const old = await past.issue({ identityId: 'user:alice@example.com', target: 'orders-api', params: { scopes: ['orders:read'] }, purpose: 'old' });
    assert.equal((await call('GET', '/orders', old.credential.access_token as string)).status, 401);
    await past.stop();
    // A token stamped in the future (a skewed or forged issuer clock) is refused too.
    const ahead = createCredentialService({
      leases: sqliteLeases(), audit: new MemoryAudit(), decide: policy.decide, targets, signer, issuerUrl: ISS,
      clock: new ManualClock(Date.now() + 120_000),
    });
    const early = await ahead.issue({ identityId: 'user:alice@example.com', target: 'orders-api', params: { scopes: ['orders:read'] }, purpose: 'early' });
    assert.equal((await call('GET', '/orders', early.credential.access_token as string)).status, 401);
    await ahead.stop();
    await assert.rejects(svc.issue({ identityId: 'user:alice@example.com', target: 'orders-api', params: { scopes: ['admin'] }, purpose: 'x' }), /not offered/);
    await assert.rejects(svc.issue({ identityId: 'user:alice@example.com', target: 'orders-api', ttl: '1h', params: { scopes: ['orders:read'] }, purpose: 'x' }), /max_ttl/);
  });
});

describe('RFC 8693 delegation', () => {
  test('pure delegate(): intersection at every hop, nested act, depth cap, widening refused', () => {
    const hop1 = delegate({ subject: { identityId: 'user:u', scopes: ['a', 'b', 'c'] }, actor: { identityId: 'agent:1', scopes: ['a', 'b'] }, maxDepth: 2 });
    assert.deepEqual(hop1.scopes, ['a', 'b']);
    assert.deepEqual(hop1.act, { sub: 'agent:1' });
    const hop2 = delegate({ subject: { identityId: 'user:u', scopes: hop1.scopes, act: hop1.act }, actor: { identityId: 'agent:2', scopes: ['b', 'c'] }, maxDepth: 2 });
    assert.deepEqual(hop2.scopes, ['b']);
    assert.deepEqual(hop2.act, { sub: 'agent:2', act: { sub: 'agent:1' } });
    assert.deepEqual(hop2.actors, ['agent:2', 'agent:1']);
    assert.throws(() => delegate({ subject: { identityId: 'user:u', scopes: hop2.scopes, act: hop2.act }, actor: { identityId: 'agent:3', scopes: ['b'] }, maxDepth: 2 }), /exceeds the limit of 2/);
    assert.throws(() => delegate({ subject: { identityId: 'user:u', scopes: ['a'] }, actor: { identityId: 'agent:1', scopes: ['a', 'b'] }, requested: ['a', 'b'], maxDepth: 2 }), /may not widen scope: b/);
    assert.throws(() => delegate({ subject: { identityId: 'user:u', scopes: ['a'] }, actor: { identityId: 'agent:1', scopes: ['b'] }, maxDepth: 2 }), /no scope in common/);
  });

  test('issue #8 item 4: a lease under a grant never outlives it (notAfter), nor does a token exchanged from it, renewals included', async () => {
    const jwks = createRemoteJWKSet(new URL(`${apiUrl.replace(/:\d+$/, `:${(broker.address() as { port: number }).port}`)}/.well-known/jwks.json`));
    const notAfter = Date.now() + 120_000;
    const t0 = await svc.issue({ identityId: 'user:alice@example.com', target: 'orders-api', params: { scopes: ['orders:read'] }, purpose: 'under a grant', grantId: 'grt_review', notAfter });
    assert.ok(t0.lease.expiresAt <= notAfter && t0.lease.maxExpiresAt <= notAfter, 'the lease is cut to the grant end');
    const v0 = await verifyAccessToken(t0.credential.access_token as string, jwks, { issuer: ISS, audience: 'https://orders.example' });
    const t1 = await exchange(svc, { target: 'orders-api', subject: { identityId: v0.sub, scopes: v0.scopes, jti: v0.jti }, actor: { identityId: 'agent:a', scopes: ['orders:read'] }, purpose: 'triage' });
    assert.equal(t1.lease.grantId, 'grt_review', 'the exchanged token ends with the same grant');
    assert.ok(t1.lease.maxExpiresAt <= notAfter, 'and is never renewable past it');
    await assert.rejects(svc.renew(t1.lease.id, { ttl: '5m' }), /maximum lifetime/);
    await svc.revoke({ lease: t0.lease.id }, { by: 'user:alice@example.com', reason: 'done' });
  });

  test('a three-hop chain narrows at each hop, is seen by policy, audit and the resource server; a fourth hop is refused', async () => {
    const jwks = createRemoteJWKSet(new URL(`${apiUrl.replace(/:\d+$/, `:${(broker.address() as { port: number }).port}`)}/.well-known/jwks.json`));
    const verify = (t: string) => verifyAccessToken(t, jwks, { issuer: ISS, audience: 'https://orders.example' });
    const asSubject = async (t: string) => {
      const v = await verify(t);
      return { identityId: v.sub, scopes: v.scopes, jti: v.jti, ...(v.act ? { act: v.act } : {}) };
    };
    const t0 = await svc.issue({ identityId: 'user:alice@example.com', target: 'orders-api', params: { scopes: ['orders:read', 'orders:write', 'refunds:write'] }, purpose: 'support case 7' });
    // Hop 1: support agent A may read and write orders.
    const t1 = await exchange(svc, {
      target: 'orders-api', subject: await asSubject(t0.credential.access_token as string),
      actor: { identityId: 'agent:a', scopes: ['orders:read', 'orders:write'] }, purpose: 'triage',
    });
    assert.equal(t1.lease.permission, 'orders:read orders:write');
    assert.deepEqual(policy.requests.at(-1)!.delegation, { actors: ['agent:a'], depth: 1 });
    // Hop 2: tool agent B may read orders and write refunds → only orders:read survives.
    const t2 = await exchange(svc, {
      target: 'orders-api', subject: await asSubject(t1.credential.access_token as string),
      actor: { identityId: 'agent:b', scopes: ['orders:read', 'refunds:write'] }, purpose: 'lookup',
    });
    assert.equal(t2.lease.permission, 'orders:read');
    // B trying to widen to refunds:write (which alice has but A did not pass on) is refused.
    await assert.rejects(
      exchange(svc, { target: 'orders-api', subject: await asSubject(t1.credential.access_token as string), actor: { identityId: 'agent:b', scopes: ['orders:read', 'refunds:write'] }, scopes: ['refunds:write'], purpose: 'widen' }),
      (e: unknown) => e instanceof Forbidden && /widen/.test((e as Error).message),
    );
    // Hop 3: service C.
    policy.allow('user:alice@example.com', 'Api::orders-api');
    const t3 = await exchange(svc, {
      target: 'orders-api', subject: await asSubject(t2.credential.access_token as string),
      actor: { identityId: 'agent:c', scopes: ['orders:read'] }, purpose: 'fetch',
    });
    const v3 = await verify(t3.credential.access_token as string);
    assert.deepEqual(v3.act, { sub: 'agent:c', act: { sub: 'agent:b', act: { sub: 'agent:a' } } } satisfies ActClaim);
    assert.deepEqual(v3.scopes, ['orders:read']);
    assert.deepEqual(policy.requests.at(-1)!.delegation, { actors: ['agent:c', 'agent:b', 'agent:a'], depth: 3 });
    const r = await call('GET', '/orders', t3.credential.access_token as string);
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { sub: 'user:alice@example.com', actors: ['agent:c', 'agent:b', 'agent:a'] });
    assert.equal((await call('POST', '/refunds', t3.credential.access_token as string)).status, 403);
    const ev = audit.ofType('credential.issued').find((e) => e.payload.lease === t3.lease.id)!;
    assert.deepEqual(ev.payload.delegation, { actors: ['agent:c', 'agent:b', 'agent:a'], depth: 3 });
    assert.equal(ev.actor, 'agent:c');
    assert.equal(ev.subject, 'user:alice@example.com');
    // Hop 4 exceeds max_delegation_depth 3.
    await assert.rejects(
      exchange(svc, { target: 'orders-api', subject: await asSubject(t3.credential.access_token as string), actor: { identityId: 'agent:d', scopes: ['orders:read'] }, purpose: 'too deep' }),
      /exceeds the limit of 3/,
    );
    // Policy decides on the chain: deny and nothing is issued.
    policy.deny('user:alice@example.com', 'Api::orders-api');
    await assert.rejects(
      exchange(svc, { target: 'orders-api', subject: await asSubject(t1.credential.access_token as string), actor: { identityId: 'agent:b', scopes: ['orders:read'] }, purpose: 'denied' }),
      (e: unknown) => e instanceof PortcullisError && e.code === 'forbidden' && typeof e.extra.decision_id === 'string',
    );
    policy.allow('user:alice@example.com', 'Api::orders-api');
    // Revoking the original token revokes everything derived from it.
    await svc.revoke({ lease: t0.lease.id }, { by: 'user:secops', reason: 'session hijack' });
    for (const t of [t1, t2, t3]) assert.equal((await svc.get(t.lease.id)).status, 'revoked');
    assert.equal((await svc.get(t3.lease.id)).revokeReason, `parent lease ${t2.lease.id} revoked`);
    await assert.rejects(
      exchange(svc, { target: 'orders-api', subject: await asSubject(t0.credential.access_token as string), actor: { identityId: 'agent:a', scopes: ['orders:read'] }, purpose: 'after revoke' }),
      /revoked or has expired/,
    );
  });
});
