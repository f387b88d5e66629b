// Who reads what in the access domain (docs/access.md "Who reads what"), over HTTP with real
// sign-ins: a person with no rights sees none of others' requests, grants or break-glass reviews
// (lists leave them out; by id they answer like an unknown id); an approver sees exactly the
// requests policy lets it review and its inbox holds only what it could act on; `access.read`
// sees everything; and each list call records one authz decision, however many rows it filters.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Account } from '../access/idp.ts';
import { startHumanHarness } from './human-harness.ts';
import type { HumanHarness } from './human-harness.ts';
import type { Json } from '../json.ts';

const ACCOUNTS: Account[] = [
  { sub: 'u-alice', email: 'alice@example.com', password: 'alice-pw', otp: '111111', groups: ['engineering'] },
  { sub: 'u-bob', email: 'bob@example.com', password: 'bob-pw', otp: '222222', groups: ['dba'] },
  { sub: 'u-carol', email: 'carol@example.com', password: 'carol-pw', otp: '333333', groups: ['dba'] },
  { sub: 'u-dave', email: 'dave@example.com', password: 'dave-pw', otp: '444444', groups: ['engineering'] },
  { sub: 'u-erin', email: 'erin@example.com', password: 'erin-pw', otp: '555555', groups: ['audit'] },
];

const POLICIES = `
@id("people-request")
permit (principal is User, action == Action::"access.request", resource);

@id("dba-approves-prod-databases")
permit (principal in Team::"dba", action == Action::"access.approve", resource is Database)
when { resource has environment && resource.environment == "prod" };

@id("dba-approves-orders-writer")
permit (principal in Team::"dba", action == Action::"access.approve", resource == AccessRequest::"role:orders-writer");

@id("engineers-break-glass")
permit (principal in Team::"engineering", action == Action::"breakglass.use", resource == Database::"orders");

@id("auditors-read-access")
permit (principal in Team::"audit", action == Action::"access.read", resource);
`;

const ACCESS = `  rules:
    - name: orders-writer-two-dbas
      match: { role: orders-writer }
      approvals: 2
    - name: prod-databases
      match: { resource_type: Database, environment: prod }
      approvals: 1
      max_duration: 4h
  break_glass:
    max_duration: 30m`;

const ALICE = 'user:alice@example.com';
const ORDERS = 'Database::"orders"';
const UNKNOWN_REQ = 'req_00000000-0000-4000-8000-000000000000';
const UNKNOWN_GRANT = 'grt_00000000-0000-4000-8000-000000000000';

describe('who reads what in the access domain', () => {
  let h: HumanHarness;
  const t: Record<string, string> = {};
  // rA: alice, role orders-writer (dba may approve), pending. rB: alice, role reports (nobody may
  // approve), pending. rC: alice, db.admin on orders (dba), approved by bob → grant gC. rD: dave,
  // role reports. rE: bob, role orders-writer (carol may approve; never bob). gBG: alice's
  // break-glass on orders, ended, review open.
  const r: Record<string, string> = {};
  let gC: string;
  let gBG: string;

  const ids = (body: Json, key: 'requests' | 'grants' | 'reviews') => (body[key] as { id: string; grant_id?: string }[]).map((x) => (key === 'reviews' ? x.grant_id! : x.id)).sort();
  const ask = async (body: Record<string, unknown>, token: string) => {
    const res = await h.post('/v1/access-requests', { duration: '1h', reason: 'access reads test', ...body }, token);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return res.body.id as string;
  };
  const authzCount = async (identity: string) => {
    await h.running.broker.audit.flush();
    return (await h.running.broker.audit.query({ stream: 'authz', identity, limit: 10_000 })).length;
  };

  before(async () => {
    h = await startHumanHarness({ accounts: ACCOUNTS, access: ACCESS, policies: POLICIES });
    for (const a of ACCOUNTS) t[a.email.split('@')[0]!] = (await h.login(a.email)).token;
    r.A = await ask({ role: 'orders-writer' }, t.alice!);
    r.B = await ask({ role: 'reports' }, t.alice!);
    r.C = await ask({ resource: ORDERS, actions: ['db.admin'] }, t.alice!);
    r.D = await ask({ role: 'reports' }, t.dave!);
    r.E = await ask({ role: 'orders-writer' }, t.bob!);
    const approved = await h.post(`/v1/access-requests/${r.C}/approve`, { comment: 'ok' }, t.bob!);
    assert.equal(approved.body.status, 'approved', JSON.stringify(approved.body));
    gC = approved.body.grant_id as string;
    const bg = await h.post('/v1/break-glass', { target: ORDERS, reason: 'orders down, INC-1', duration: '10m' }, t.alice!);
    assert.equal(bg.status, 201, JSON.stringify(bg.body));
    gBG = bg.body.grant.id as string;
    assert.equal((await h.post(`/v1/break-glass/${gBG}/end`, { reason: 'over' }, t.alice!)).status, 200);
  });
  after(async () => {
    await h?.close();
  });

  it('a person with no rights sees only their own: lists leave others out, by id they are unknown ids', async () => {
    const dave = t.dave!;
    for (const q of ['mine=false', `requester=${encodeURIComponent(ALICE)}`, 'mine=false&status=pending', 'limit=5&mine=false']) {
      const res = await h.get(`/v1/access-requests?${q}`, dave);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.deepEqual(ids(res.body, 'requests'), q.startsWith('requester') ? [] : [r.D], `${q}: ${JSON.stringify(res.body)}`);
    }
    assert.deepEqual(ids((await h.get('/v1/access-requests?reviewable=true', dave)).body, 'requests'), [], 'nothing to review');
    assert.deepEqual(ids((await h.get('/v1/access-requests', dave)).body, 'requests'), [r.D], 'his own');
    for (const q of ['all=true', 'all=true&active=true', `identity=${encodeURIComponent(ALICE)}`]) {
      const res = await h.get(`/v1/grants?${q}`, dave);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.deepEqual(ids(res.body, 'grants'), [], `grants ${q}: ${JSON.stringify(res.body)}`);
    }
    for (const q of ['', '?status=open']) assert.deepEqual(ids((await h.get(`/v1/break-glass/reviews${q}`, dave)).body, 'reviews'), [], `reviews${q}`);

    // By id: alice's request answers exactly like one that does not exist (status and body but the id).
    const same = (body: Json, id: string) => JSON.stringify(body).replaceAll(id, 'ID');
    const unknown = await h.get(`/v1/access-requests/${UNKNOWN_REQ}`, dave);
    assert.equal(unknown.status, 404);
    for (const id of [r.A, r.B, r.C]) {
      const res = await h.get(`/v1/access-requests/${id}`, dave);
      assert.equal(res.status, 404, JSON.stringify(res.body));
      assert.equal(same(res.body, id!), same(unknown.body, UNKNOWN_REQ));
      for (const verb of ['approve', 'deny', 'comment']) {
        const act = await h.post(`/v1/access-requests/${id}/${verb}`, verb === 'comment' ? { text: 'hello' } : {}, dave);
        assert.equal(act.status, 404, `${verb} ${id}: ${JSON.stringify(act.body)}`);
      }
    }
    const unknownGrant = await h.post(`/v1/grants/${UNKNOWN_GRANT}/revoke`, { reason: 'x' }, dave);
    assert.equal(unknownGrant.status, 404);
    const revoke = await h.post(`/v1/grants/${gC}/revoke`, { reason: 'x' }, dave);
    assert.equal(revoke.status, 404, JSON.stringify(revoke.body));
    assert.equal(same(revoke.body, gC), same(unknownGrant.body, UNKNOWN_GRANT));
    assert.equal((await h.post(`/v1/break-glass/${gBG}/end`, { reason: 'x' }, dave)).status, 404);
    // Nor may he close its after-action review (a write, not only a read).
    const review = await h.post(`/v1/break-glass/${gBG}/review`, { summary: 'nothing to see here' }, dave);
    assert.equal(review.status, 404, JSON.stringify(review.body));
    assert.deepEqual(ids((await h.get('/v1/break-glass/reviews?status=open', t.erin!)).body, 'reviews'), [gBG], 'the review is still open');
    assert.equal((await h.running.broker.access.grants.get(gC)).status, 'active', 'nothing changed');
  });

  it('an approver sees exactly the requests policy lets it review; its inbox holds only what it could act on', async () => {
    const bob = t.bob!;
    // rA: may approve, pending. rB, rD: nobody may approve. rC: approved (he approved it). rE: his own.
    assert.deepEqual(ids((await h.get('/v1/access-requests?reviewable=true', bob)).body, 'requests'), [r.A]);
    assert.deepEqual(ids((await h.get('/v1/access-requests?reviewable=true&status=pending', bob)).body, 'requests'), [r.A]);
    assert.deepEqual(ids((await h.get('/v1/access-requests?mine=false', bob)).body, 'requests'), [r.A, r.C, r.E].sort());
    assert.deepEqual(ids((await h.get(`/v1/access-requests?requester=${encodeURIComponent(ALICE)}`, bob)).body, 'requests'), [r.A, r.C].sort());
    // carol may review bob's own request; bob never.
    assert.deepEqual(ids((await h.get('/v1/access-requests?reviewable=true', t.carol!)).body, 'requests'), [r.A, r.E].sort());
    for (const id of [r.A, r.C, r.E]) assert.equal((await h.get(`/v1/access-requests/${id}`, bob)).status, 200, id);
    for (const id of [r.B, r.D]) assert.equal((await h.get(`/v1/access-requests/${id}`, bob)).status, 404, id);
    // Grants and break-glass reviews of what he may approve (Database::"orders"), none of the rest.
    assert.deepEqual(ids((await h.get('/v1/grants?all=true', bob)).body, 'grants'), [gBG, gC].sort());
    assert.deepEqual(ids((await h.get('/v1/break-glass/reviews?status=open', bob)).body, 'reviews'), [gBG]);

    // Each list records one authz decision, whatever it filtered out (the approver checks are unrecorded).
    const before = await authzCount('user:bob@example.com');
    await h.get('/v1/access-requests?mine=false', bob);
    await h.get('/v1/access-requests?reviewable=true', bob);
    await h.get('/v1/grants?all=true', bob);
    assert.equal((await authzCount('user:bob@example.com')) - before, 3, 'one recorded decision per list call');

    // Once he has approved a request needing two, it leaves his inbox but not carol's; denied, hers too.
    const twoStep = await ask({ role: 'orders-writer', reason: 'second look' }, t.dave!);
    const inbox = async (token: string) => ids((await h.get('/v1/access-requests?reviewable=true', token)).body, 'requests');
    assert.ok((await inbox(bob)).includes(twoStep));
    assert.equal((await h.post(`/v1/access-requests/${twoStep}/comment`, { text: 'looking' }, bob)).status, 200);
    const one = await h.post(`/v1/access-requests/${twoStep}/approve`, { comment: 'fine by me' }, bob);
    assert.equal(one.body.status, 'pending', JSON.stringify(one.body));
    assert.ok(!(await inbox(bob)).includes(twoStep), 'approved by him: nothing left for him to do');
    assert.ok((await inbox(t.carol!)).includes(twoStep), 'carol may still act on it');
    assert.ok(ids((await h.get('/v1/access-requests?mine=false', bob)).body, 'requests').includes(twoStep), 'still visible to him');
    assert.equal((await h.post(`/v1/access-requests/${twoStep}/deny`, { comment: 'not now' }, t.carol!)).status, 200);
    assert.ok(!(await inbox(t.carol!)).includes(twoStep), 'decided: no longer reviewable');
  });

  it('pages newest first with limit and after; an inbox finds what the caller may act on behind more than a store batch it may not', async () => {
    // bob, page by page: every request he may see, once, in order.
    const seen: string[] = [];
    let after: string | null = null;
    for (let i = 0; i < 20; i++) {
      const page = await h.get(`/v1/access-requests?mine=false&limit=2${after ? `&after=${encodeURIComponent(after)}` : ''}`, t.bob!);
      assert.equal(page.status, 200, JSON.stringify(page.body));
      seen.push(...(page.body.requests as { id: string }[]).map((x) => x.id));
      after = page.body.next_after as string | null;
      if (after === null) break;
    }
    const whole = (await h.get('/v1/access-requests?mine=false', t.bob!)).body.requests as { id: string }[];
    assert.deepEqual(seen, whole.map((x) => x.id), 'pages of 2 add up to the whole list, in order');
    assert.ok(seen.length >= 3);
    assert.equal((await h.get('/v1/access-requests?mine=false&after=nonsense', t.bob!)).status, 400);
    // Grants page the same way, filtered (bob) or whole (erin, access.read).
    for (const [token, q] of [[t.bob!, 'all=true'], [t.erin!, `identity=${encodeURIComponent(ALICE)}`]] as const) {
      const got: string[] = [];
      let next: string | null = null;
      for (let i = 0; i < 10; i++) {
        const page = await h.get(`/v1/grants?${q}&limit=1${next ? `&after=${encodeURIComponent(next)}` : ''}`, token);
        assert.equal(page.status, 200, JSON.stringify(page.body));
        got.push(...(page.body.grants as { id: string }[]).map((g) => g.id));
        next = page.body.next_after as string | null;
        if (next === null) break;
      }
      assert.deepEqual(got.sort(), [gBG, gC].sort(), `grants ${q} page by page`);
    }

    // 250 newer requests bob may not review (more than one batch of 200) hide alice's older one
    // only from a list that stops at the store's first rows.
    const actor = { id: 'user:dave@example.com', authn: { method: 'oidc' as const, trust: 'sso', mfa: false, assurance: 'high' as const, auth_time: Math.floor(Date.now() / 1000) } };
    h.clock.set(h.clock.now() + 1000);
    const older = await ask({ role: 'orders-writer', reason: 'behind the crowd' }, t.alice!);
    for (let i = 0; i < 250; i++) {
      h.clock.set(h.clock.now() + 1);
      await h.running.broker.access.createRequest(actor, { target: { kind: 'role', role: 'reports' }, duration_ms: 3_600_000, reason: `crowd ${i}` });
    }
    assert.ok(ids((await h.get('/v1/access-requests?reviewable=true&limit=1', t.bob!)).body, 'requests').includes(older), 'found behind 250 it may not review');
    const theirs = await h.get('/v1/access-requests?mine=false&limit=1', t.bob!);
    assert.deepEqual(ids(theirs.body, 'requests'), [older], 'the newest he may see, past the crowd');
    assert.equal((await h.get('/v1/access-requests?mine=false&limit=1', t.dave!)).body.requests.length, 1, 'dave sees his own crowd');
  });

  it('access.read sees everything, and reviews nothing it may not approve', async () => {
    const erin = t.erin!;
    const all = ids((await h.get('/v1/access-requests?mine=false&limit=1000', erin)).body, 'requests');
    for (const id of Object.values(r)) assert.ok(all.includes(id), `erin sees ${id}`);
    assert.deepEqual(ids((await h.get('/v1/access-requests?reviewable=true', erin)).body, 'requests'), []);
    for (const id of Object.values(r)) assert.equal((await h.get(`/v1/access-requests/${id}`, erin)).status, 200, id);
    assert.deepEqual(ids((await h.get(`/v1/grants?identity=${encodeURIComponent(ALICE)}`, erin)).body, 'grants'), [gBG, gC].sort());
    assert.ok(ids((await h.get('/v1/break-glass/reviews', erin)).body, 'reviews').includes(gBG));
    // Her lists are decided like anyone's: one recorded access.read each.
    await h.running.broker.audit.flush();
    const reads = (await h.running.broker.audit.query({ stream: 'authz', identity: 'user:erin@example.com', limit: 1000 })).filter((e) => e.payload.action === 'access.read');
    assert.ok(reads.length > 0 && reads.every((e) => e.decision === 'allow'));
  });
  it('suspending an identity ends every active grant it holds, beyond the first page of 500 (last: suspends dave)', async () => {
    const dave = 'user:dave@example.com';
    const grants = h.running.broker.access.grants;
    const start = h.clock.now();
    const made: string[] = [];
    for (let i = 0; i < 501; i++) {
      made.push((await grants.insert({ kind: 'request', identityId: dave, requestId: null, target: { kind: 'role', role: 'reports' }, what: 'role reports', startAt: start + i, endAt: start + 3_600_000, sessionBound: false, reason: `grant ${i}` })).id);
    }
    const admin = await h.admin();
    const res = await h.post(`/v1/identities/${encodeURIComponent(dave)}/suspend`, { reason: 'laptop stolen' }, admin);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const still = [];
    for (const id of made) if ((await grants.get(id)).status === 'active') still.push(id);
    assert.deepEqual(still, [], 'no grant survives the suspension (the oldest was on the second page)');
  });
});
