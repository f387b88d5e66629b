// Item 8.24 over real HTTP with a real OpenID provider: e-mail addresses that change under Unicode
// NFKC normalization or case folding are refused with 401 (audited as non_canonical_identity) and
// never become or reach another account; the redirect URI of /v1/auth/login obeys the rules of
// configured ones.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Account } from '../access/idp.ts';
import { REDIRECT, startHumanHarness } from './human-harness.ts';
import type { HumanHarness } from './human-harness.ts';
import type { Json } from '../json.ts';

const ACCOUNTS: Account[] = [
  { sub: 'u-kelly', email: 'kelly@example.com', password: 'kelly-pw', otp: '111111', groups: ['engineering'] },
  { sub: 'u-kelvin', email: '\u212Aelly@example.com', password: 'kelvin-pw', otp: '222222', groups: ['dba'] },
  { sub: 'u-upper', email: 'Kelly@example.com', password: 'upper-pw', otp: '333333', groups: ['dba'] },
  { sub: 'u-wide', email: '\uFF4Belly@example.com', password: 'wide-pw', otp: '444444', groups: ['dba'] },
  { sub: 'u-lig', email: 'je\uFB00@example.com', password: 'lig-pw', otp: '555555', groups: ['dba'] },
];

let h: HumanHarness;
before(async () => {
  h = await startHumanHarness({ accounts: ACCOUNTS, access: '  require_ticket: false', policies: '' });
});
after(async () => {
  await h?.close();
});

test('non-canonical e-mail identities are refused with 401 and never merged into an account', async () => {
  const kelly = await h.login('kelly@example.com');
  assert.equal(kelly.identity.id, 'user:kelly@example.com');
  for (const a of ACCOUNTS.slice(1)) {
    await assert.rejects(h.login(a.email), (e: Error & { response?: { status: number; body: Json } }) => {
      assert.equal(e.response?.status, 401, `${a.sub}: ${e.message}`);
      assert.ok(!JSON.stringify(e.response?.body).includes('kelly@example.com'), 'no account named in the answer');
      return true;
    });
  }
  const admin = await h.admin();
  const ids = await h.get('/v1/identities', admin);
  assert.equal(ids.status, 200);
  const users = (ids.body.identities ?? ids.body.items ?? ids.body) as { id: string }[];
  const kellys = users.filter((i) => /^user:/.test(i.id) && i.id !== 'user:admin');
  assert.deepEqual(kellys.map((i) => i.id), ['user:kelly@example.com'], 'one account, nothing registered for the variants');
  // The kelly account did not pick up the variants' groups (no merge through the sign-in sync).
  const one = await h.get(`/v1/identities/${encodeURIComponent('user:kelly@example.com')}`, admin);
  assert.deepEqual(one.body.parents ?? one.body.identity?.parents, [{ type: 'Team', id: 'engineering' }]);
  const failures = await h.get('/v1/audit/authn?type=authn.failure', admin);
  const reasons = (failures.body.events as { payload: { reason: string } }[]).map((e) => e.payload.reason);
  assert.equal(reasons.filter((r) => r === 'non_canonical_identity').length, ACCOUNTS.length - 1);
});

test('/v1/auth/login refuses redirect URIs a configured one could not be (userinfo, fragment, non-canonical)', async () => {
  const start = (uri: string) => h.get(`/v1/auth/login?${new URLSearchParams({ redirect_uri: uri })}`);
  assert.equal((await start(REDIRECT)).status, 200);
  for (const uri of [
    'http://user:pw@127.0.0.1:53682/callback',
    'http://@127.0.0.1:53682/callback',
    'http://127.0.0.1:53682/callback#',
    'http://127.0.0.1:53682/callback#x',
    'http://127.1:53682/callback',
    'http://127.0.0.1:53682/a/../callback',
    'http://127.0.0.1:53682/callback?',
    'https://evil.example/callback',
  ]) {
    const r = await start(uri);
    assert.equal(r.status, 400, uri);
    assert.match(JSON.stringify(r.body), /redirect_uri/);
  }
});
