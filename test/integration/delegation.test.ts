// RFC 8693 delegation at /oauth2/token over HTTP: agents act for a workload through a chain of
// token exchanges, scope narrows at every hop, policies see the chain, and a small resource
// server verifies the final token against /.well-known/jwks.json and sees `act`.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { createRemoteJWKSet } from 'jose';
import { verifyAccessToken } from '../../src/credentials/issuers/api/access-token.ts';
import { startServer } from '../credentials/server.ts';
import type { TestServer } from '../credentials/server.ts';
import type { Json } from '../json.ts';

const API = 'workload:github/acme/api';
const AUD = 'https://orders.acme.test';
const AT = 'urn:ietf:params:oauth:token-type:access_token';
const GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';

describe('RFC 8693 delegation at /oauth2/token', () => {
  let s: TestServer;
  let rs: Server;
  let rsUrl = '';
  before(async () => {
    s = await startServer({
      resources: '  - { type: Api, id: orders-api, boundary: application, environment: prod }',
      targets: `  - { name: orders-api, kind: api, audience: ${AUD}, scopes: [orders:read, orders:write, orders:refund], max_ttl: 30m, default_ttl: 10m, max_delegation_depth: 3 }`,
      policies: `
@id("own-tokens")
permit (principal, action == Action::"credential.issue", resource == Api::"orders-api")
when { context.delegation.depth == 0 && context.purpose has reason };

@id("api-may-be-delegated")
permit (principal == Workload::"${API}", action == Action::"credential.issue", resource == Api::"orders-api")
when { context.delegation.depth > 0 };

@id("rogue-never-acts")
forbid (principal, action == Action::"credential.issue", resource == Api::"orders-api")
when { context.delegation.actors.contains("workload:github/acme/rogue") };
`,
    });
    // The example resource server: verifies tokens with the broker's published keys only.
    const jwks = createRemoteJWKSet(new URL(`${s.url}/.well-known/jwks.json`));
    rs = createServer(async (req, res) => {
      const need = req.url === '/refunds' ? ['orders:refund'] : ['orders:read'];
      try {
        const t = await verifyAccessToken(String(req.headers.authorization).replace(/^Bearer /, ''), jwks, { issuer: s.url, audience: AUD, requiredScopes: need, currentDate: new Date(s.clock.now()) });
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ sub: t.sub, scopes: t.scopes, act: t.act ?? null }));
      } catch (e) {
        res.writeHead((e as { status?: number }).status ?? 401).end(JSON.stringify({ error: (e as Error).message }));
      }
    });
    await new Promise<void>((r) => rs.listen(0, '127.0.0.1', r));
    rsUrl = `http://127.0.0.1:${(rs.address() as { port: number }).port}`;
  });
  after(async () => {
    await new Promise((r) => rs?.close(r));
    await s?.close();
  });

  /** An access token for the caller's own use of the API. */
  async function ownToken(repository: string, scopes: string[]): Promise<string> {
    const session = await s.login(repository);
    const r = await s.call('POST', '/v1/credentials', { target: 'orders-api', scopes, reason: 'own use', ttl: '15m' }, session);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body.credential.access_token as string;
  }

  const exchange = (subject: string, actor: string, extra: Record<string, string> = {}) =>
    s.form('/oauth2/token', { grant_type: GRANT, subject_token: subject, subject_token_type: AT, actor_token: actor, actor_token_type: AT, audience: 'orders-api', ...extra });

  const callRs = async (token: string, path = '/orders') => {
    const r = await fetch(rsUrl + path, { headers: { authorization: `Bearer ${token}` } });
    return { status: r.status, body: await r.json() as Json };
  };

  it('a three-hop chain narrows scope at each hop; the resource server sees act; a fourth hop and widening are refused', async () => {
    const subject = await ownToken('acme/api', ['orders:read', 'orders:write', 'orders:refund']);
    const agent1 = await ownToken('acme/agent-1', ['orders:read', 'orders:write']);
    const agent2 = await ownToken('acme/agent-2', ['orders:read', 'orders:write', 'orders:refund']);
    const agent3 = await ownToken('acme/agent-3', ['orders:read']);
    const agent4 = await ownToken('acme/agent-4', ['orders:read']);

    // Hop 1: the intersection of subject and actor, by default.
    const h1 = await exchange(subject, agent1);
    assert.equal(h1.status, 200, JSON.stringify(h1.body));
    assert.equal(h1.body.issued_token_type, AT);
    assert.equal(h1.body.scope, 'orders:read orders:write');

    // Hop 2 may not widen back to what the subject held originally.
    const widen = await exchange(h1.body.access_token, agent2, { scope: 'orders:read orders:refund' });
    assert.equal(widen.status, 400);
    assert.equal(widen.body.error, 'invalid_scope');
    const h2 = await exchange(h1.body.access_token, agent2, { scope: 'orders:read' });
    assert.equal(h2.status, 200, JSON.stringify(h2.body));
    assert.equal(h2.body.scope, 'orders:read');

    // Hop 3 reaches max_delegation_depth.
    const h3 = await exchange(h2.body.access_token, agent3, { resource: AUD });
    assert.equal(h3.status, 200, JSON.stringify(h3.body));
    const seen = await callRs(h3.body.access_token);
    assert.equal(seen.status, 200, JSON.stringify(seen.body));
    assert.equal(seen.body.sub, API);
    assert.deepEqual(seen.body.scopes, ['orders:read']);
    assert.deepEqual(seen.body.act, { sub: 'workload:github/acme/agent-3', act: { sub: 'workload:github/acme/agent-2', act: { sub: 'workload:github/acme/agent-1' } } });
    assert.equal((await callRs(h3.body.access_token, '/refunds')).status, 403, 'the attenuated token cannot refund');
    assert.equal((await callRs(subject, '/refunds')).status, 200);

    const h4 = await exchange(h3.body.access_token, agent4);
    assert.equal(h4.status, 400);
    assert.equal(h4.body.error, 'invalid_grant');
    assert.match(h4.body.error_description, /exceeds the limit of 3/);

    // The chain is in the audit with the issuance.
    await s.running.broker.audit.flush();
    const issued = (await s.running.broker.audit.query({ stream: 'admin', type: 'credential.issued' })).filter((e) => e.payload.delegation !== undefined);
    assert.equal(issued.length, 3);
    assert.deepEqual((issued.at(-1)!.payload.delegation as { actors: string[] }).actors, ['workload:github/acme/agent-3', 'workload:github/acme/agent-2', 'workload:github/acme/agent-1']);
    const audit = JSON.stringify(await s.running.broker.audit.query({ stream: 'admin' }));
    assert.ok(!audit.includes(h3.body.access_token) && !audit.includes(subject), 'no token in the audit');

    // Revoking hop 1 takes the tokens exchanged from it along.
    const admin = await s.admin();
    const lease = (await s.running.broker.credentials.list({ target: 'orders-api' })).find((l) => l.params.actors !== undefined && (l.params.actors as string[]).length === 1)!;
    assert.equal((await s.call('POST', '/v1/revocations', { selector: { lease: lease.id }, reason: 'agent-1 misbehaved' }, admin)).status, 200);
    const after = await exchange(h2.body.access_token, agent3);
    assert.equal(after.body.error, 'invalid_grant');
  });

  it('policies see the chain in context.delegation: a forbidden actor is refused', async () => {
    const subject = await ownToken('acme/api', ['orders:read']);
    const rogue = await ownToken('acme/rogue', ['orders:read']);
    const r = await exchange(subject, rogue);
    assert.equal(r.status, 400);
    assert.equal(r.body.error, 'invalid_grant');
    assert.match(r.body.decision_id, /^[0-9a-f-]{36}$/);
  });

  it('errors follow RFC 6749 §5.2', async () => {
    const subject = await ownToken('acme/api', ['orders:read']);
    const actor = await ownToken('acme/agent-1', ['orders:write']);
    const session = await s.login('acme/agent-1');
    const cases: [Record<string, string>, string, number?][] = [
      [{ audience: 'billing-api' }, 'invalid_target'],
      [{ audience: 'orders-api', resource: 'https://elsewhere.test' }, 'invalid_target'],
      [{ audience: '' }, 'invalid_request'],
      [{ actor_token: session, actor_token_type: 'urn:ietf:params:oauth:token-type:jwt' }, 'invalid_request'],
      [{ actor_token: session }, 'invalid_grant'],
      [{ subject_token: 'not-a-token' }, 'invalid_grant'],
      [{ scope: 'orders:read' }, 'invalid_scope'], // no scope in common
    ];
    for (const [extra, error] of cases) {
      const r = await s.form('/oauth2/token', { grant_type: GRANT, subject_token: subject, subject_token_type: AT, actor_token: actor, actor_token_type: AT, audience: 'orders-api', ...extra });
      assert.equal(r.status, 400, JSON.stringify({ extra: Object.keys(extra), body: r.body }));
      assert.equal(r.body.error, error, JSON.stringify({ extra: Object.keys(extra), body: r.body }));
      assert.equal(typeof r.body.error_description, 'string');
    }
    const noActor = await s.form('/oauth2/token', { grant_type: GRANT, subject_token: subject, subject_token_type: AT, audience: 'orders-api' });
    assert.equal(noActor.body.error, 'invalid_request');
  });
});
