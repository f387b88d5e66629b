// Issue #8 items 4, 5, 6, 8 over HTTP against the real broker, a real OpenID provider (SSO
// logins), real CI tokens (workloads) and a real PostgreSQL target:
// - a credential request is governed by the prod-database rule of the resource its target guards,
//   and a credential issued under the grant ends with the grant;
// - separation of duties counts accountable humans (a workload owned by bob is bob);
// - memberships/owner are `identity.membership.write`, and nobody escalates themselves;
// - a blank or invisible reason/ticket is no purpose on every path.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Account } from '../access/idp.ts';
import { startPostgres } from '../credentials/helpers.ts';
import type { TestPostgres } from '../credentials/helpers.ts';
import { ordersDbTarget } from './harness.ts';
import { startHumanHarness } from './human-harness.ts';
import type { HumanHarness } from './human-harness.ts';
import type { Json } from '../json.ts';

const ACCOUNTS: Account[] = [
  { sub: 'u-alice', email: 'alice@example.com', password: 'alice-pw', otp: '111111', groups: ['engineering'] },
  { sub: 'u-bob', email: 'bob@example.com', password: 'bob-pw', otp: '222222', groups: ['dba'] },
  { sub: 'u-carol', email: 'carol@example.com', password: 'carol-pw', otp: '333333', groups: ['dba', 'oncall'] },
  { sub: 'u-dave', email: 'dave@example.com', password: 'dave-pw', otp: '444444', groups: ['engineering'] },
];

const POLICIES = `
@id("anyone-requests")
permit (principal, action == Action::"access.request", resource);

@id("dba-approves-prod")
permit (principal in Team::"dba", action == Action::"access.approve", resource is Database)
when { resource.environment == "prod" };

@id("readwrite-under-grant")
permit (principal is User, action == Action::"credential.issue", resource == Database::"orders-db")
when { context.grants.contains("credential:orders-db:readwrite") && context.credential.permission == "readwrite" };

@id("oncall-break-glass")
permit (principal in Team::"oncall", action == Action::"breakglass.use", resource == Database::"orders");

@id("engineers-manage-identities")
permit (principal in Team::"engineering", action == Action::"identity.manage", resource is Identity);
`;

const ACCESS = `  rules:
    - name: prod-databases
      match: { resource_type: Database, environment: prod }
      approvals: 2
      max_duration: 4h
  webhooks:
    endpoints:
      - { name: chat, url: "{{WEBHOOK_URL}}", secret_env: WEBHOOK_SECRET }`;

const BLANKS = ['   ', '\u200b', '\u00a0\u3000', '\u2060\ufeff', '\u3164', '\t'];
const id = (s: string) => encodeURIComponent(s);

describe('access hardening over HTTP (issue #8 items 4, 5, 6, 8)', () => {
  let pgsrv: TestPostgres;
  let h: HumanHarness;
  const t: Record<string, string> = {};
  const patch = async (path: string, body: unknown, token: string) => {
    const res = await fetch(h.url + path, { method: 'PATCH', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as Json };
  };

  before(async () => {
    pgsrv = await startPostgres();
    h = await startHumanHarness({ accounts: ACCOUNTS, access: ACCESS, policies: POLICIES, extraYaml: ordersDbTarget(pgsrv).yaml, extraEnv: ordersDbTarget(pgsrv).env });
    t.admin = await h.admin();
    for (const a of ACCOUNTS) t[a.email.split('@')[0]!] = (await h.login(a.email, { otp: a.otp })).token;
    // Workloads owned by people, in the dba team (so policy alone would let them approve).
    for (const [wid, owner] of [['workload:github/acme/bob-tool', 'user:bob@example.com'], ['workload:github/acme/alice-tool', 'user:alice@example.com'], ['workload:github/acme/dave-tool', 'user:dave@example.com']] as const) {
      const r = await h.post('/v1/identities', { id: wid, kind: 'workload', boundary: 'application', environment: 'prod', owner, parents: [{ type: 'Team', id: 'dba' }] }, t.admin);
      assert.equal(r.status, 201, JSON.stringify(r.body));
    }
    t.bobTool = await h.loginCi({ repository: 'acme/bob-tool' });
    t.aliceTool = await h.loginCi({ repository: 'acme/alice-tool' });
  });
  after(async () => {
    await h?.close();
    await pgsrv?.stop();
  });

  it('8.4 + 8.5: a credential request is governed by its target resource; approvals count distinct accountable humans; the lease ends with the grant', async () => {
    const created = await h.post('/v1/access-requests', { credential: { target: 'orders-db', permission: 'readwrite' }, duration: '20m', reason: 'repair orders index' }, t.alice!);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.required_approvals, 2, 'the prod-database rule governs credential: {target: orders-db}');
    assert.deepEqual(created.body.rules, ['prod-databases']);
    const rid = created.body.id as string;
    const tooLong = await h.post('/v1/access-requests', { credential: { target: 'orders-db' }, duration: '5h', reason: 'x' }, t.alice!);
    assert.equal(tooLong.status, 400);
    assert.equal(tooLong.body.field, 'duration');
    const elsewhere = await h.post('/v1/access-requests', { credential: { target: 'orders-db', resource: 'Database::"analytics"' }, duration: '1h', reason: 'x' }, t.alice!);
    assert.equal(elsewhere.status, 400);
    assert.equal(elsewhere.body.field, 'credential.resource');

    const own = await h.post(`/v1/access-requests/${rid}/approve`, {}, t.aliceTool!);
    // Policy would let her workload approve, so it may see the request (docs/access.md "Who reads
    // what") and gets the precise refusal; without the separation-of-duties check this would be a 200.
    assert.equal(own.status, 403, 'alice through her workload');
    assert.equal(own.body.why, 'same_accountable_human');
    const first = await h.post(`/v1/access-requests/${rid}/approve`, {}, t.bobTool!);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(first.body.status, 'pending');
    const again = await h.post(`/v1/access-requests/${rid}/approve`, {}, t.bob!);
    assert.equal(again.status, 403, 'bob already approved through his workload');
    assert.equal(again.body.why, 'already_approved_by_this_human');
    const second = await h.post(`/v1/access-requests/${rid}/approve`, {}, t.carol!);
    assert.equal(second.body.status, 'approved', JSON.stringify(second.body));
    const grant = await h.running.broker.access.grants.get(second.body.grant_id);

    const issued = await h.post('/v1/credentials', { target: 'orders-db', permission: 'readwrite', ttl: '1h', reason: 'repair orders index' }, t.alice!);
    assert.equal(issued.status, 201, JSON.stringify(issued.body));
    assert.equal(issued.body.lease.grant_id, grant.id);
    assert.ok(Date.parse(issued.body.lease.expires_at) <= Date.parse(grant.end_at), 'a credential under a 20 min grant does not outlive it');
  });

  it('8.6: memberships and owner are identity.membership.write; nobody escalates themselves', async () => {
    const dave = t.dave!;
    const self = `/v1/identities/${id('user:dave@example.com')}`;
    const toAdmin = { parents: [{ type: 'Team', id: 'engineering' }, { type: 'Role', id: 'portcullis-admin' }] };
    // identity.manage alone (engineering may manage identities) never covers memberships or owner.
    const denied = await patch(self, toAdmin, dave);
    assert.equal(denied.status, 403);
    assert.equal(denied.body.code, 'forbidden');
    assert.match(denied.body.detail ?? denied.body.title ?? '', /identity\.membership\.write/);
    assert.equal((await patch(`/v1/identities/${id('workload:github/acme/api')}`, { owner: 'user:dave@example.com' }, dave)).status, 403);
    assert.equal((await patch(`/v1/identities/${id('workload:github/acme/api')}`, { purpose: 'deploys the payments api (v2)' }, dave)).status, 200, 'identity.manage still covers purpose');
    const declareAdmin = await h.post('/v1/identities', { id: 'workload:github/acme/dave-2', kind: 'workload', boundary: 'application', environment: 'prod', owner: 'user:dave@example.com', parents: [{ type: 'Role', id: 'portcullis-admin' }] }, dave);
    assert.equal(declareAdmin.status, 403);

    // Now policy grants dave identity.membership.write on every identity: the hard rules still hold.
    const policies = await h.get('/v1/policies', t.admin);
    const files = policies.body.files.filter((f: { origin: string }) => f.origin === 'api').map((f: { name: string; text: string }) => ({ name: f.name, text: f.text }));
    files.push({ name: 'dave.cedar', text: '@id("dave-memberships")\npermit (principal == User::"user:dave@example.com", action == Action::"identity.membership.write", resource is Identity);\n' });
    const put = await fetch(`${h.url}/v1/policies`, { method: 'PUT', headers: { 'content-type': 'application/json', authorization: `Bearer ${t.admin}` }, body: JSON.stringify({ files, reason: 'dave manages memberships' }) });
    assert.equal(put.status, 200, await put.text());

    const cases: [string, string, unknown][] = [
      ['own role', self, toAdmin],
      ['own owner', self, { owner: 'user:alice@example.com' }],
      ['own workload into a role', `/v1/identities/${id('workload:github/acme/dave-tool')}`, { parents: [{ type: 'Team', id: 'dba' }, { type: 'Role', id: 'portcullis-admin' }] }],
      ['taking ownership of a member of dba', `/v1/identities/${id('workload:github/acme/bob-tool')}`, { owner: 'user:dave@example.com' }],
    ];
    for (const [what, path, body] of cases) {
      const r = await patch(path, body, dave);
      assert.equal(r.status, 403, `${what}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.code, 'self_escalation', what);
    }
    const declared = await h.post('/v1/identities', { id: 'workload:github/acme/dave-3', kind: 'workload', boundary: 'application', environment: 'prod', owner: 'user:dave@example.com', parents: [{ type: 'Role', id: 'portcullis-admin' }] }, dave);
    assert.equal(declared.status, 403, 'declaring an identity you own with an admin role');
    assert.equal(declared.body.code, 'self_escalation');
    const adminSelf = await patch(`/v1/identities/${id('user:admin')}`, { parents: [{ type: 'Role', id: 'portcullis-admin' }, { type: 'Team', id: 'dba' }] }, t.admin!);
    assert.equal(adminSelf.body.code, 'self_escalation', 'even an administrator');

    const ownsItself = await patch(`/v1/identities/${id('workload:github/acme/alice-tool')}`, { owner: 'workload:github/acme/alice-tool' }, dave);
    assert.equal(ownsItself.status, 400);
    assert.equal(ownsItself.body.field, 'owner');
    assert.equal((await patch(`/v1/identities/${id('workload:github/acme/alice-tool')}`, { owner: 'workload:github/acme/bob-tool' }, t.admin!)).status, 200);
    const loop = await patch(`/v1/identities/${id('workload:github/acme/bob-tool')}`, { owner: 'workload:github/acme/alice-tool' }, t.admin!);
    assert.equal(loop.status, 400, 'owner chains never loop');
    assert.equal(loop.body.field, 'owner');

    // Allowed where dave controls nothing: another person's workload.
    const ok = await patch(`/v1/identities/${id('workload:github/acme/api')}`, { parents: [{ type: 'Team', id: 'payments' }] }, dave);
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    // And dave is still no administrator.
    assert.equal((await h.get('/v1/audit/admin', dave)).status, 403);
    const me = await h.get(`/v1/identities/${id('user:dave@example.com')}`, t.admin);
    assert.deepEqual(me.body.parents, [{ type: 'Team', id: 'engineering' }]);
    await h.running.broker.audit.flush();
    assert.ok(!(await h.running.broker.audit.query({ stream: 'admin', type: 'identity.updated' })).some((e) => e.subject === 'user:dave@example.com' && e.actor === 'user:dave@example.com'));
  });

  it('8.8: a blank or invisible reason or ticket is no purpose — authorize, batch, credential issue, access requests, break-glass', async () => {
    const api = await h.loginCi();
    const read = (reason: string) => ({ action: 'db.select', resource: { type: 'Database', id: 'orders' }, context: { purpose: { reason } } });
    assert.equal((await h.post('/v1/authorize', read('nightly report'), api)).body.decision, 'allow');
    for (const blank of BLANKS) {
      const one = await h.post('/v1/authorize', read(blank), api);
      assert.equal(one.status, 200);
      assert.equal(one.body.decision, 'deny', `authorize: ${JSON.stringify(blank)}`);
      const batch = await h.post('/v1/authorize/batch', { requests: [read(blank), read('nightly report')] }, api);
      assert.deepEqual(batch.body.decisions.map((d: { decision: string }) => d.decision), ['deny', 'allow'], `batch: ${JSON.stringify(blank)}`);
      const cred = await h.post('/v1/credentials', { target: 'orders-db', permission: 'readonly', ttl: '5m', reason: blank }, api);
      assert.equal(cred.status, 400, `credential: ${JSON.stringify(blank)}`);
      assert.equal(cred.body.field, 'reason');
      const req = await h.post('/v1/access-requests', { role: 'orders-writer', duration: '30m', reason: blank }, t.alice!);
      assert.equal(req.status, 400, `request: ${JSON.stringify(blank)}`);
      assert.equal(req.body.field, 'reason');
      const bg = await h.post('/v1/break-glass', { target: 'Database::"orders"', reason: blank }, t.carol!);
      assert.equal(bg.status, 400, `break-glass: ${JSON.stringify(blank)}`);
      assert.equal(bg.body.field, 'reason');
    }
    const cred = await h.post('/v1/credentials', { target: 'orders-db', permission: 'readonly', ttl: '5m', reason: 'nightly report' }, api);
    assert.equal(cred.status, 201, JSON.stringify(cred.body));
  });
});
