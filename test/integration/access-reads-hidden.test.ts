// Hidden access rows never show through a by-id step-up answer or a filtered list's cursor: with
// access.read behind a step-up, a hidden id answers as an unknown one; a filtered list's next_after
// is sealed (bound to its caller) and only such a cursor is taken there (docs/access.md).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Account } from '../access/idp.ts';
import { startHumanHarness } from './human-harness.ts';
import type { HumanHarness } from './human-harness.ts';

const ACCOUNTS: Account[] = [
  { sub: 'u-alice', email: 'alice@example.com', password: 'alice-pw', otp: '111111', groups: ['engineering'] },
  { sub: 'u-dave', email: 'dave@example.com', password: 'dave-pw', otp: '444444', groups: ['engineering'] },
];
// A common hardening: reading the access domain needs a fresh MFA login (for everyone).
const POLICIES = `
@id("people-request")
permit (principal is User, action == Action::"access.request", resource);
@id("engineers-break-glass")
permit (principal in Team::"engineering", action == Action::"breakglass.use", resource == Database::"orders");
@id("access-reads-need-mfa")
@stepUp("mfa")
forbid (principal is User, action == Action::"access.read", resource)
unless { context.authn.mfa };
`;
const ACCESS = `  rules: []
  break_glass:
    max_duration: 30m`;
const UNKNOWN_REQ = 'req_00000000-0000-4000-8000-000000000000';
const UNKNOWN_GRANT = 'grt_00000000-0000-4000-8000-000000000000';

describe('hidden access rows: by-id answers under a step-up, sealed cursors', () => {
  let h: HumanHarness;
  const t: Record<string, string> = {};
  let rA: string;
  let gBG: string;
  before(async () => {
    h = await startHumanHarness({ accounts: ACCOUNTS, access: ACCESS, policies: POLICIES });
    for (const a of ACCOUNTS) t[a.email.split('@')[0]!] = (await h.login(a.email)).token;
    const res = await h.post('/v1/access-requests', { role: 'reports', duration: '1h', reason: 'alice private' }, t.alice!);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    rA = res.body.id as string;
    const bg = await h.post('/v1/break-glass', { target: 'Database::"orders"', reason: 'orders down, INC-1', duration: '10m' }, t.alice!);
    assert.equal(bg.status, 201, JSON.stringify(bg.body));
    gBG = bg.body.grant.id as string;
    assert.equal((await h.post(`/v1/break-glass/${gBG}/end`, { reason: 'over' }, t.alice!)).status, 200);
  });
  after(async () => { await h?.close(); });

  it('by id, a hidden request answers exactly like an unknown id even when access.read wants a step-up', async () => {
    const unknown = await h.get(`/v1/access-requests/${UNKNOWN_REQ}`, t.dave!);
    const hidden = await h.get(`/v1/access-requests/${rA}`, t.dave!);
    const uRev = await h.post(`/v1/break-glass/${UNKNOWN_GRANT}/review`, { summary: 'x' }, t.dave!);
    const hRev = await h.post(`/v1/break-glass/${gBG}/review`, { summary: 'x' }, t.dave!);
    assert.equal(hidden.status, 404, JSON.stringify(hidden.body));
    assert.equal(hidden.status, unknown.status, 'GET /v1/access-requests/:id');
    assert.equal(hRev.status, uRev.status, 'POST /v1/break-glass/:id/review');
    // A list still asks for the step-up (it is the way in there).
    assert.equal((await h.get('/v1/access-requests?mine=false', t.dave!)).status, 401);
  });

  it("a filtered list's next_after is sealed to its caller: no hidden row's id or time, no plain cursor taken, no one else's", async () => {
    const actor = { id: 'user:alice@example.com', authn: { method: 'oidc' as const, trust: 'sso', mfa: false, assurance: 'high' as const, auth_time: Math.floor(Date.now() / 1000) } };
    const hidden: string[] = [];
    for (let i = 0; i < 1001; i++) {
      h.clock.set(h.clock.now() + 1);
      hidden.push((await h.running.broker.access.createRequest(actor, { target: { kind: 'role', role: 'reports' }, duration_ms: 3_600_000, reason: `hidden ${i}` })).id);
    }
    // dave passes the step-up; he still has no access.read, so his list is filtered.
    const dave = (await h.login('dave@example.com', { otp: '444444', stepUp: { mfa: true } })).token;
    const page = await h.get('/v1/access-requests?mine=false&limit=1', dave);
    assert.equal(page.status, 200, JSON.stringify(page.body));
    assert.deepEqual(page.body.requests, []);
    const next = page.body.next_after as string;
    assert.match(next, /^s\.[A-Za-z0-9_-]+$/, 'the scan stopped at a hidden row: the cursor is sealed');
    for (const id of hidden) assert.ok(!next.includes(id.slice(4)));
    // Following it goes on where the scan stopped.
    const more = await h.get(`/v1/access-requests?mine=false&limit=1&after=${next}`, dave);
    assert.equal(more.status, 200, JSON.stringify(more.body));
    assert.deepEqual(more.body.requests, []);
    // A plain cursor (aiming a scan at a chosen time) is refused on a filtered list; so is a
    // sealed cursor given to someone else, or an altered one.
    const plain = `${Date.now()}.${hidden[500]}`;
    assert.equal((await h.get(`/v1/access-requests?mine=false&limit=1&after=${plain}`, dave)).status, 400);
    const alice = (await h.login('alice@example.com', { otp: '111111', stepUp: { mfa: true } })).token;
    assert.equal((await h.get(`/v1/access-requests?reviewable=true&after=${next}`, alice)).status, 400, "another caller's cursor");
    const altered = next.slice(0, -2) + (next.endsWith('A') ? 'B' : 'A') + next.slice(-1);
    assert.equal((await h.get(`/v1/access-requests?mine=false&limit=1&after=${altered}`, dave)).status, 400);
    // One's own list keeps plain cursors.
    const own = await h.get('/v1/access-requests?limit=1', alice);
    assert.match(own.body.next_after as string, /^\d+\.req_/);
  });
});
