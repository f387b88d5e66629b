// AI agents over HTTP against a real server (docs/agents.md): an agent without a sponsor is a
// finding; a user gives an agent an assignment; the agent gets an assignment-scoped token by
// RFC 8693 (act chain, asg, aud = one resource) and hands part of it to a sub-agent; the token is
// refused at another audience; and the kill switch — ending the assignment, suspending the agent,
// offboarding its sponsor, suspending the delegating user — stops its tokens at once and ends a
// live gateway session hanging on the assignment.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { decodeJwt } from 'jose';
import { ISSUER2, startHarness } from '../integration/harness.ts';
import type { Harness } from '../integration/harness.ts';
import { BrokerGatewayHost } from '../../src/broker/gateway-host.ts';
import type { GatewayHostDeps } from '../../src/broker/gateway-host.ts';
import type { Json } from '../json.ts';

const CRM = 'https://mcp.crm.test/mcp';
const DOCS = 'https://mcp.docs.test/mcp';
const JWT = 'urn:ietf:params:oauth:token-type:jwt';
const AT = 'urn:ietf:params:oauth:token-type:access_token';
const GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const CLI = join(import.meta.dirname, '..', '..', 'src', 'cli', 'main.ts');
const run = promisify(execFile);

const trust = (name: string, identity: string, kind: string, boundary: string, extra = '') => (jwks2: string) => `
  - name: ${name}
    kind: oidc
    issuer: ${ISSUER2}/${name}
    jwks_uri: ${jwks2}
    audiences: [portcullis]
    algorithms: [ES256]
    identity: "${identity}"
    identity_kind: ${kind}
    boundary: ${boundary}
    environment: prod
${extra}`;

const POLICIES = `
@id("users-assign-their-agents")
permit (principal is User, action == Action::"assignment.create", resource is Identity)
when { resource.kind == "agent" && context has assignment && context.assignment.depth == 1 && context.assignment.ttlSeconds <= 7200 };

@id("agents-hand-on-one-level")
permit (principal is Agent, action == Action::"assignment.create", resource is Identity)
when { resource.kind == "agent" && context has assignment && context.assignment.depth == 2 };

@id("tokens-for-agents-acting-for-users")
permit (principal is User, action == Action::"credential.issue", resource is Api)
when { context.delegation.depth > 0 };

@id("agent-managers")
permit (principal in Team::"ai-admins", action in [Action::"agent.manage", Action::"identity.read"], resource);
`;

describe('agents, assignments and assignment-scoped tokens over HTTP', () => {
  let h: Harness;
  let admin: string;
  const sessions = new Map<string, string>();

  /** A session through the named trust (registers the identity on first login). */
  const login = async (trustName: string, claims: Record<string, unknown>): Promise<string> => {
    const r = await h.post('/v1/auth/token', { token: await h.token2({ iss: `${ISSUER2}/${trustName}`, ...claims }) });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.session_token as string;
  };
  const user = async (name: string) => {
    if (!sessions.has(name)) sessions.set(name, await login('users', { email: `${name}@example.com` }));
    return sessions.get(name)!;
  };
  const agent = async (name: string) => {
    if (!sessions.has(`agent:${name}`)) sessions.set(`agent:${name}`, await login('agents', { agent: name }));
    return sessions.get(`agent:${name}`)!;
  };
  const form = async (path: string, fields: Record<string, string>, token?: string) => {
    const res = await fetch(h.url + path, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...(token && { authorization: `Bearer ${token}` }) },
      body: new URLSearchParams(fields).toString(),
    });
    return { status: res.status, body: (await res.json()) as Json };
  };
  const exchange = (fields: Record<string, string>) => form('/oauth2/token', { grant_type: GRANT, subject_token_type: JWT, actor_token_type: JWT, ...fields });
  const introspect = async (token: string, resource?: string) => {
    const r = await form('/oauth2/introspect', { token, ...(resource && { resource }) }, admin);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body;
  };
  const setSponsor = async (agentId: string, sponsor: string, tools = ['crm/*', 'docs/*']) => {
    const r = await h.put(`/v1/agents/${encodeURIComponent(agentId)}`, { sponsor, model: 'claude-sonnet-4', provider: 'anthropic', tools }, admin);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body;
  };
  const assign = async (token: string, agentId: string, body: Record<string, unknown>) => h.post(`/v1/agents/${encodeURIComponent(agentId)}/assignments`, body, token);
  /** An assignment of `agentId` by `delegator`, and its token for CRM. */
  const assignedToken = async (delegator: string, agentName: string) => {
    const r = await assign(await user(delegator), `agent:${agentName}`, { intent: 'look up the customer of ticket 42', tools: ['crm/search'], audiences: [CRM], ttl: '30m' });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const asg = r.body.assignment.id as string;
    const t = await exchange({ assignment: asg, subject_token: await user(delegator), actor_token: await agent(agentName), resource: CRM });
    assert.equal(t.status, 200, JSON.stringify(t.body));
    return { asg, token: t.body.access_token as string };
  };

  before(async () => {
    h = await startHarness(
      `targets:
  - { name: crm-mcp, kind: api, audience: "${CRM}", scopes: [mcp], max_ttl: 30m, default_ttl: 10m, max_delegation_depth: 3 }
  - { name: docs-mcp, kind: api, audience: "${DOCS}", scopes: [mcp], max_ttl: 30m, default_ttl: 10m }
`,
      {},
      undefined,
      {
        trusts: (jwks2) =>
          trust('users', 'user:{email}', 'user', 'application', '    shared_namespace: true\n')(jwks2) +
          trust('ops', 'user:ops/{email}', 'user', 'ai-platform', '    shared_namespace: true\n')(jwks2) +
          trust('agents', 'agent:{agent}', 'agent', 'ai-platform', '    owner: team:ai\n')(jwks2),
        policies: POLICIES,
        resources: `  - { type: Api, id: crm-mcp, boundary: application, environment: prod }
  - { type: Api, id: docs-mcp, boundary: application, environment: prod }`,
      },
    );
    admin = await h.admin();
  });
  after(async () => {
    await h?.close();
  });

  it('an agent without a sponsor is a finding; its sponsor must be a human; then it appears with model and tools', async () => {
    await agent('helper');
    await user('sam');
    const findings = async () => ((await h.get('/v1/findings', admin)).body.findings as { code: string; subject: string }[]).filter((f) => f.code === 'agent.no_sponsor').map((f) => f.subject);
    assert.ok((await findings()).includes('agent:helper'), 'no sponsor: a finding');
    const refused = await assign(await user('alice'), 'agent:helper', { intent: 'x', tools: ['crm/search'], audiences: [CRM] });
    assert.equal(refused.status, 409, 'no assignment for an agent nobody answers for');
    assert.match(String(refused.body.detail), /no sponsor/);
    const notHuman = await h.put('/v1/agents/agent%3Ahelper', { sponsor: 'agent:helper' }, admin);
    assert.equal(notHuman.status, 400);
    assert.equal(notHuman.body.field, 'sponsor');
    const set = await setSponsor('agent:helper', 'user:sam@example.com');
    assert.equal(set.sponsor, 'user:sam@example.com');
    assert.deepEqual(set.tools, ['crm/*', 'docs/*']);
    assert.ok(!(await findings()).includes('agent:helper'), 'the finding is gone');
    const self = await h.put('/v1/agents/agent%3Ahelper', { sponsor: 'user:sam@example.com', tools: ['crm/*', 'payments/*'] }, await agent('helper'));
    assert.equal(self.status, 404, 'an agent never rewrites its own profile (and may not even see it through agent.manage)');
    await h.running.broker.audit.flush();
    const events = await h.running.broker.audit.query({ stream: 'admin', type: 'agent.profile_set', limit: 10 });
    assert.equal(events.length, 1);
    assert.equal(events[0]!.payload.sponsor, 'user:sam@example.com');
  });

  it('alice gives the agent an assignment; the agent exchanges for a token bound to one audience with act and asg; nothing else gets one', async () => {
    await agent('other');
    const alice = await user('alice');
    const r = await assign(alice, 'agent:helper', { intent: 'summarise ticket 42 for the customer', tools: ['crm/search', 'crm/read_ticket'], audiences: [CRM, DOCS], ttl: '20m' });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const a = r.body.assignment;
    assert.equal(a.delegator, 'user:alice@example.com');
    assert.equal(a.sponsor, 'user:sam@example.com');
    assert.equal(a.depth, 1);
    assert.equal(a.status, 'active');
    const wider = await assign(alice, 'agent:helper', { intent: 'x', tools: ['payments/refund'], audiences: [CRM] });
    assert.equal(wider.status, 400, 'beyond the tools the profile lets it reach');
    const long = await assign(alice, 'agent:helper', { intent: 'x', tools: ['crm/search'], audiences: [CRM], ttl: '3h' });
    assert.equal(long.status, 404, 'policy decides (ttl over 2h is not permitted; alice may not read the agent, so 404)');
    const unknownAud = await assign(alice, 'agent:helper', { intent: 'x', tools: ['crm/search'], audiences: ['https://elsewhere.test/mcp'] });
    assert.equal(unknownAud.status, 400);

    const ok = await exchange({ assignment: a.id, subject_token: alice, actor_token: await agent('helper'), resource: CRM });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    const claims = decodeJwt(ok.body.access_token as string);
    assert.equal(claims.aud, CRM, 'aud is that one resource');
    assert.equal(claims.sub, 'user:alice@example.com');
    assert.deepEqual(claims.act, { sub: 'agent:helper' });
    assert.equal(claims.asg, a.id);
    assert.ok((claims.exp as number) * 1000 <= Date.parse(a.expires_at), 'never outlives the assignment');
    const live = await introspect(ok.body.access_token as string, CRM);
    assert.equal(live.active, true);
    assert.equal(live.asg, a.id);
    assert.deepEqual(await introspect(ok.body.access_token as string, DOCS), { active: false }, 'never active at another audience');

    const cases: [string, Record<string, string>, string][] = [
      ['resource outside the assignment', { assignment: a.id, subject_token: alice, actor_token: await agent('helper'), resource: 'https://orders.acme.test' }, 'invalid_target'],
      ['no resource', { assignment: a.id, subject_token: alice, actor_token: await agent('helper') }, 'invalid_target'],
      ['another user as subject', { assignment: a.id, subject_token: await user('bob'), actor_token: await agent('helper'), resource: CRM }, 'invalid_grant'],
      ['another agent as actor', { assignment: a.id, subject_token: alice, actor_token: await agent('other'), resource: CRM }, 'invalid_grant'],
      ['the user as actor', { assignment: a.id, subject_token: alice, actor_token: alice, resource: CRM }, 'invalid_grant'],
      ['an unknown assignment', { assignment: 'asg_AAAAAAAAAAAAAAAAAAAA', subject_token: alice, actor_token: await agent('helper'), resource: CRM }, 'invalid_grant'],
      ['garbage assignment', { assignment: "' OR 1=1 --", subject_token: alice, actor_token: await agent('helper'), resource: CRM }, 'invalid_grant'],
    ];
    for (const [what, fields, error] of cases) {
      const res = await exchange(fields);
      assert.equal(res.status, 400, what);
      assert.equal(res.body.error, error, `${what}: ${JSON.stringify(res.body)}`);
    }
    // The token as a subject for the same assignment again (it is delegated already): refused.
    const again = await exchange({ assignment: a.id, subject_token: ok.body.access_token as string, subject_token_type: AT, actor_token: await agent('helper'), resource: CRM });
    assert.equal(again.body.error, 'invalid_grant');
  });

  it('an agent hands a narrower part to a sub-agent: depth 2 in the chain, never wider, and ending the parent ends both', async () => {
    await agent('sub');
    await setSponsor('agent:sub', 'user:sam@example.com', ['crm/*']);
    const { asg, token } = await assignedToken('alice', 'helper');
    const helper = await agent('helper');
    const wider = await assign(helper, 'agent:sub', { intent: 'search', tools: ['crm/*'], audiences: [CRM], parent: asg });
    assert.equal(wider.status, 400, 'crm/* is wider than crm/search');
    const otherAud = await assign(helper, 'agent:sub', { intent: 'search', tools: ['crm/search'], audiences: [DOCS], parent: asg });
    assert.equal(otherAud.status, 400);
    const notMine = await assign(await agent('other'), 'agent:sub', { intent: 'search', tools: ['crm/search'], audiences: [CRM], parent: asg });
    assert.equal(notMine.status, 400, 'only the assignment’s agent hands it on');
    const own = await assign(helper, 'agent:sub', { intent: 'search', tools: ['crm/search'], audiences: [CRM] });
    assert.equal(own.status, 404, 'an agent makes no assignment of its own (policy permits agents depth 2 only; the hard rule stands behind it)');
    const sub = await assign(helper, 'agent:sub', { intent: 'search the CRM for the customer', tools: ['crm/search'], audiences: [CRM], parent: asg });
    assert.equal(sub.status, 201, JSON.stringify(sub.body));
    assert.equal(sub.body.assignment.depth, 2);
    assert.equal(sub.body.assignment.delegator, 'user:alice@example.com');
    const subAsg = sub.body.assignment.id as string;

    const bySession = await exchange({ assignment: subAsg, subject_token: await user('alice'), actor_token: await agent('sub'), resource: CRM });
    assert.equal(bySession.body.error, 'invalid_grant', "a sub-assignment's subject is its parent's token");
    const t2 = await exchange({ assignment: subAsg, subject_token: token, subject_token_type: AT, actor_token: await agent('sub'), resource: CRM });
    assert.equal(t2.status, 200, JSON.stringify(t2.body));
    const c2 = decodeJwt(t2.body.access_token as string);
    assert.deepEqual(c2.act, { sub: 'agent:sub', act: { sub: 'agent:helper' } }, 'the chain: user → helper → sub');
    assert.equal(c2.asg, subAsg);
    assert.equal(c2.sub, 'user:alice@example.com');

    // Kill switch: alice ends the parent assignment.
    const end = await h.post(`/v1/assignments/${asg}/end`, { reason: 'done' }, await user('alice'));
    assert.equal(end.status, 200, JSON.stringify(end.body));
    assert.equal(end.body.assignment.status, 'ended');
    assert.deepEqual(await introspect(token), { active: false }, 'the token stopped working');
    assert.deepEqual(await introspect(t2.body.access_token as string), { active: false }, 'and the sub-agent’s');
    assert.equal((await h.get(`/v1/assignments/${subAsg}`, await user('alice'))).body.assignment.status, 'ended', 'the sub-assignment ended with it');
    const after = await exchange({ assignment: asg, subject_token: await user('alice'), actor_token: helper, resource: CRM });
    assert.equal(after.body.error, 'invalid_grant', 'no new token under an ended assignment');
    const leases = await h.running.broker.credentials.list({ identityId: 'user:alice@example.com', kind: 'api' }, 100);
    for (const l of leases.filter((x) => x.params.asg === asg || x.params.asg === subAsg)) assert.equal(l.status, 'revoked', `lease ${l.id} revoked`);
  });

  it('the parties see their assignments; others need assignment.read; an unknown id answers like a forbidden one', async () => {
    const { asg } = await assignedToken('alice', 'helper');
    const mine = await h.get('/v1/assignments?mine=true&live=true', await user('alice'));
    assert.ok((mine.body.assignments as { id: string }[]).some((a) => a.id === asg));
    const sponsorView = await h.get('/v1/assignments?mine=true', await user('sam'));
    assert.ok((sponsorView.body.assignments as { id: string }[]).some((a) => a.id === asg), 'the sponsor sees it');
    assert.equal((await h.get('/v1/assignments', await user('bob'))).status, 403);
    assert.equal((await h.get(`/v1/assignments/${asg}`, await user('bob'))).status, 404);
    assert.equal((await h.get('/v1/assignments/asg_AAAAAAAAAAAAAAAAAAAA', await user('bob'))).status, 404);
    assert.equal((await h.post(`/v1/assignments/${asg}/end`, { reason: 'x' }, await user('bob'))).status, 404, 'bob may not end it');
    const bySponsor = await h.post(`/v1/assignments/${asg}/end`, { reason: 'sponsor pulls the plug' }, await user('sam'));
    assert.equal(bySponsor.status, 200, 'the sponsor may end it');
  });

  it('kill switch: suspending the agent ends its assignments and tokens', async () => {
    await agent('doomed');
    await setSponsor('agent:doomed', 'user:sam@example.com');
    const { asg, token } = await assignedToken('alice', 'doomed');
    assert.equal((await introspect(token)).active, true);
    const r = await h.post('/v1/identities/agent%3Adoomed/suspend', { reason: 'misbehaving' }, admin);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(await introspect(token), { active: false });
    assert.equal((await h.get(`/v1/assignments/${asg}`, await user('alice'))).body.assignment.status, 'ended');
  });

  it('kill switch: offboarding the sponsor suspends their agents (audited) and stops their tokens', async () => {
    await user('tess');
    await agent('tess-bot');
    await setSponsor('agent:tess-bot', 'user:tess@example.com');
    const { asg, token } = await assignedToken('alice', 'tess-bot');
    const r = await h.post('/v1/identities/user%3Atess%40example.com/offboard', { reason: 'left the company' }, admin);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(h.running.broker.identities.get('agent:tess-bot')!.status, 'suspended');
    assert.deepEqual(await introspect(token), { active: false });
    assert.equal((await h.get(`/v1/assignments/${asg}`, await user('alice'))).body.assignment.status, 'ended');
    await h.running.broker.audit.flush();
    const suspended = (await h.running.broker.audit.query({ stream: 'admin', type: 'identity.suspended', limit: 50 })).find((e) => e.subject === 'agent:tess-bot');
    assert.ok(suspended, 'the suspension is audited');
    assert.equal(suspended!.actor, 'system:agents');
    assert.match(String(suspended!.payload.reason), /sponsor user:tess@example.com is offboarded/);
  });

  it('a live gateway session hanging on an assignment ends when the assignment ends', async () => {
    const { asg } = await assignedToken('alice', 'helper');
    const b = h.running.broker;
    // The broker's own host, over this server's services (authentication and issuance are not used here).
    const deps = { config: b.config, clock: b.clock, audit: b.audit, identities: b.identities, sessions: b.sessions, apikeys: b.apikeys, credentials: b.credentials, access: b.access, agents: b.agents };
    const host = new BrokerGatewayHost({ ...deps, changes: b.store.changes, log: () => {} } as unknown as GatewayHostDeps);
    host.sessions.start();
    try {
      let ended: (reason: string) => void = () => {};
      const terminated = new Promise<string>((r) => (ended = r));
      host.sessions.register({
        id: 'gws_AAAAAAAAAAAAAAAAAAAA', gateway: 'mcp', kind: 'mcp', target: 'crm-mcp', sourceIp: '127.0.0.1',
        hangs: { identityId: 'user:alice@example.com', leaseIds: [], grantIds: [], assignmentId: asg },
        terminate: (reason) => ended(reason),
      });
      await host.sessions.check();
      assert.equal(host.sessions.size, 1, 'lives while the assignment does');
      assert.equal((await host.assignment(asg))?.status, 'active');
      const r = await h.post(`/v1/assignments/${asg}/end`, { reason: 'kill switch' }, await user('alice'));
      assert.equal(r.status, 200);
      assert.match(await terminated, new RegExp(`assignment ${asg} ended`));
    } finally {
      await host.sessions.stop();
    }
  });

  it('the CLI: agents show, assign, assignments, end (--json, and a refusal that names the field)', async () => {
    const home = mkdtempSync(join(tmpdir(), 'pcx-agents-cli-'));
    const cli = async (token: string, ...args: string[]) => {
      const env: NodeJS.ProcessEnv = { ...process.env, PORTCULLIS_ADDR: h.url, PORTCULLIS_TOKEN: token, PORTCULLIS_HOME: home };
      try {
        const r = await run(process.execPath, [CLI, 'agents', ...args], { env, encoding: 'utf8' });
        return { code: 0, out: r.stdout, err: r.stderr };
      } catch (e) {
        const x = e as { code: number; stdout: string; stderr: string };
        return { code: x.code, out: x.stdout, err: x.stderr };
      }
    };
    try {
      const shown = await cli(admin, 'show', 'agent:helper', '--json');
      assert.equal(shown.code, 0, shown.err);
      assert.equal(JSON.parse(shown.out).sponsor, 'user:sam@example.com');
      const alice = await user('alice');
      const made = await cli(alice, 'assign', 'agent:helper', '--intent', 'triage ticket 7', '--tool', 'crm/search,crm/read_ticket', '--audience', CRM, '--ttl', '10m', '--json');
      assert.equal(made.code, 0, made.err);
      const a = JSON.parse(made.out).assignment;
      assert.deepEqual(a.tools, ['crm/read_ticket', 'crm/search']);
      const listed = await cli(alice, 'assignments', '--live', '--json');
      assert.ok(JSON.parse(listed.out).assignments.some((x: { id: string }) => x.id === a.id));
      const human = await cli(alice, 'assignments', 'agent:helper');
      assert.match(human.out, new RegExp(a.id));
      const ended = await cli(alice, 'end', a.id, '--reason', 'done', '--json');
      assert.equal(ended.code, 0, ended.err);
      assert.equal(JSON.parse(ended.out).assignment.status, 'ended');
      const bad = await cli(alice, 'assign', 'agent:helper', '--intent', 'x', '--tool', 'not-a-tool', '--audience', CRM);
      assert.notEqual(bad.code, 0);
      assert.match(bad.err, /tools/);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });

  it('kill switch: suspending the delegating user stops the tokens issued for them', async () => {
    const { asg, token } = await assignedToken('carol', 'helper');
    const r = await h.post('/v1/identities/user%3Acarol%40example.com/suspend', { reason: 'account compromised' }, admin);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(await introspect(token), { active: false });
    assert.equal((await h.running.broker.agents.get(asg))?.status, 'ended');
  });

  it('a platform operator (ai-platform) cannot reach customer data through an agent: the boundary guard refuses the token', async () => {
    const ops = await login('ops', { email: 'olga@example.com' });
    const r = await assign(ops, 'agent:helper', { intent: 'just checking', tools: ['crm/search'], audiences: [CRM] });
    assert.equal(r.status, 201, 'she may make an assignment for her own agent use');
    const t = await exchange({ assignment: r.body.assignment.id as string, subject_token: ops, actor_token: await agent('helper'), resource: CRM });
    assert.equal(t.status, 400);
    assert.equal(t.body.error, 'invalid_grant');
    assert.ok(t.body.decision_id, 'a recorded deny');
    await h.running.broker.audit.flush();
    const deny = (await h.running.broker.audit.query({ stream: 'authz', decision: 'deny', identity: 'user:ops/olga@example.com', limit: 10 })).find((e) => e.payload.action === 'credential.issue');
    assert.deepEqual(deny?.payload.reasons, ['system:boundary-guard']);
  });
});
