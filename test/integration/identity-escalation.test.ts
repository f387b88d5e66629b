// Issue #8 item 6 over HTTP (real broker, real CI tokens): memberships (Role/Team parents), owner
// and boundary are `identity.membership.write`, never `identity.manage`; and whatever policy
// says, nobody changes their own, adds parents to what they control, takes control of a member,
// declares a controlled identity with parents, owns itself or closes an owner loop.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness } from './harness.ts';
import type { Harness } from './harness.ts';
import type { Json } from '../json.ts';

const POLICIES = `
@id("ci-manages-identities")
permit (principal, action == Action::"identity.manage", resource is Identity)
when { principal == Workload::"workload:github/acme/api" || principal == Workload::"workload:github/acme/web" };

@id("api-writes-memberships")
permit (principal == Workload::"workload:github/acme/api", action == Action::"identity.membership.write", resource is Identity);
`;
const API = 'workload:github/acme/api';
const ADMIN_ROLE = { type: 'Role', id: 'portcullis-admin' };

describe('no self-escalation over HTTP (8.6)', () => {
  let h: Harness;
  let admin: string;
  let api: string;
  let web: string;
  const patch = async (id: string, body: unknown, token: string) => {
    const res = await fetch(`${h.url}/v1/identities/${encodeURIComponent(id)}`, { method: 'PATCH', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as Json };
  };
  const declare = (body: Record<string, unknown>, token: string) => h.post('/v1/identities', { kind: 'workload', boundary: 'application', environment: 'prod', ...body }, token);

  before(async () => {
    h = await startHarness('', {}, Date.parse('2026-03-02T10:00:00Z'), { policies: POLICIES });
    admin = await h.admin();
    api = await h.loginCi();
    web = await h.loginCi({ repository: 'acme/web' });
    for (const [id, owner, parents] of [
      ['workload:github/acme/api-helper', API, []],
      ['workload:github/acme/privileged', 'team:ops', [{ type: 'Role', id: 'db-admin' }]],
      ['workload:github/acme/chain-a', 'team:ops', []],
    ] as const) {
      const r = await declare({ id, owner, parents }, admin);
      assert.equal(r.status, 201, JSON.stringify(r.body));
    }
  });
  after(() => h?.close());

  it('identity.manage never covers parents or owner', async () => {
    const own = await patch('workload:github/acme/web', { parents: [ADMIN_ROLE] }, web);
    assert.equal(own.status, 403);
    assert.equal(own.body.code, 'forbidden');
    assert.match(own.body.detail, /identity\.membership\.write/);
    assert.equal((await patch(API, { owner: 'workload:github/acme/web' }, web)).status, 403);
    assert.equal((await patch(API, { owner: null }, web)).status, 403, 'removing an owner is a membership change too');
    assert.equal((await declare({ id: 'workload:github/acme/web-2', owner: 'team:web', parents: [ADMIN_ROLE] }, web)).status, 403);
    assert.equal((await patch(API, { purpose: 'deploys the payments api' }, web)).status, 200, 'the other fields stay identity.manage');
    assert.equal((await declare({ id: 'workload:github/acme/web-3', owner: 'team:web' }, web)).status, 201);
  });

  it('hard rules hold even where policy allows identity.membership.write', async () => {
    const refused = async (what: string, p: Promise<{ status: number; body: Json }>) => {
      const r = await p;
      assert.equal(r.status, 403, `${what}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.code, 'self_escalation', what);
    };
    await refused('itself into a role', patch(API, { parents: [ADMIN_ROLE] }, api));
    await refused('itself into a team', patch(API, { parents: [{ type: 'Team', id: 'payments' }] }, api));
    await refused('its own owner', patch(API, { owner: 'workload:github/acme/web' }, api));
    await refused('a workload it owns into a role', patch('workload:github/acme/api-helper', { parents: [ADMIN_ROLE] }, api));
    await refused('declaring a workload it owns with a role', declare({ id: 'workload:github/acme/api-2', owner: API, parents: [ADMIN_ROLE] }, api));
    await refused('declaring one owned through a chain', declare({ id: 'workload:github/acme/api-3', owner: 'workload:github/acme/api-helper', parents: [ADMIN_ROLE] }, api));
    await refused('taking ownership of a role member', patch('workload:github/acme/privileged', { owner: API }, api));
    await refused('an administrator on itself', patch('user:admin', { parents: [ADMIN_ROLE, { type: 'Team', id: 'x' }] }, admin));

    const self = await patch('workload:github/acme/chain-a', { owner: 'workload:github/acme/chain-a' }, api);
    assert.equal(self.status, 400);
    assert.equal(self.body.field, 'owner');
    assert.equal((await patch('workload:github/acme/chain-a', { owner: 'workload:github/acme/privileged' }, admin)).status, 200);
    const loop = await patch('workload:github/acme/privileged', { owner: 'workload:github/acme/chain-a' }, admin);
    assert.equal(loop.status, 400, JSON.stringify(loop.body));
    assert.equal(loop.body.field, 'owner');

    // Where api controls nothing, policy decides: removing a member of db-admin is fine.
    assert.equal((await patch('workload:github/acme/privileged', { parents: [] }, api)).status, 200);
    const mine = await h.get(`/v1/identities/${encodeURIComponent(API)}`, admin);
    assert.deepEqual(mine.body.parents, []);
    assert.equal(mine.body.owner, 'team:payments');
    const helper = await h.get(`/v1/identities/${encodeURIComponent('workload:github/acme/api-helper')}`, admin);
    assert.deepEqual(helper.body.parents, []);
    assert.equal((await h.get(`/v1/identities/${encodeURIComponent('workload:github/acme/api-2')}`, admin)).status, 404, 'nothing persisted');
  });
});
