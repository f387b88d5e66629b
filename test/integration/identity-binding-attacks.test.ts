// Issue 8.1, second round: variants an outside review tries against identity binding, over real
// HTTP with a second, independent issuer — look-alikes of reserved ids, claim values of every
// shape, separators that let two subjects of one issuer share an id, bindings of reserved ids,
// and two SPIFFE trusts claiming one trust domain.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ISSUER2, allTrusts as all, startSecondIssuer as start, trust2 } from './harness.ts';
import type { Harness, HarnessOptions } from './harness.ts';

/** Starts and closes at once; the start error, or undefined (a failing test leaves no server running). */
const startError = (o: HarnessOptions): Promise<Error | undefined> => start(o).then(async (h) => void (await h.close()), (e: Error) => e);

describe('identity binding at config load (review variants)', () => {
  it('placeholders separated by anything but "/" or ":" are refused: two subjects of one issuer would share an id', async () => {
    for (const t of ['workload:gitlab/{org}-{repo}', 'workload:gitlab/{org}.{repo}', 'workload:gitlab/{org}@{repo}', 'workload:gitlab/{a}/{b}_{c}']) {
      const e = await startError({ trusts: trust2('gl', t) });
      assert.ok(e && /trusts\[1\]\.identity/.test(e.message) && /could not be told apart/.test(e.message), `${t}: ${e?.message ?? 'started'}`);
    }
    for (const t of ['workload:gitlab/{org}/{repo}', 'workload:gitlab/{org}:{repo}', 'workload:gitlab/{org}/x-{repo}']) {
      const h = await start({ trusts: trust2('gl', t) });
      await h.close();
    }
  });
  it('two SPIFFE trusts for one trust domain are refused (proofs are routed by domain)', async () => {
    const spiffe = (name: string, bundle: string) => `  - { name: ${name}, kind: spiffe, trust_domain: dup.example.test, bundle: ${bundle} }\n`;
    const e = await startError({ trusts: spiffe('s1', './bundle.json') + spiffe('s2', 'portcullis') });
    assert.ok(e && /trusts\[2\]\.trust_domain/.test(e.message) && /already the trust s1/.test(e.message), e?.message ?? 'started');
  });
  it('reserved look-alikes in a template prefix are refused (case-insensitive)', async () => {
    const e = await startError({ trusts: trust2('gl', 'System:{p}') });
    assert.match(e?.message ?? 'started', /reserved/);
  });
});

describe('identity binding over HTTP (review variants)', () => {
  let h: Harness;
  before(async () => {
    h = await start({
      trusts: all(
        trust2('sso2', 'user:{email}', { kind: 'user', suffix: '/sso' }),
        trust2('gl', 'workload:gitlab/{org}/{repo}', { suffix: '/gl' }),
      ),
      identities: '  - { id: "workload:gitlab/acme/issued-only", kind: workload, boundary: application, environment: prod, trusts: [] }',
    });
  });
  after(async () => {
    await h?.close();
  });

  async function lastFailure(): Promise<Record<string, unknown>> {
    await h.running.broker.audit.flush();
    return (await h.running.broker.audit.query({ stream: 'authn', type: 'authn.failure', order: 'desc', limit: 1 }))[0]!.payload;
  }
  async function refused(claims: Record<string, unknown>, reason: string, what = JSON.stringify(claims)) {
    const r = await h.post('/v1/auth/token', { token: await h.token2(claims) });
    assert.equal(r.status, 401, `${what}: ${JSON.stringify(r.body)}`);
    assert.equal((await lastFailure()).reason, reason, what);
  }

  it('user:{email} never yields a case variant of the bootstrap administrator (reserved_identity)', async () => {
    await h.admin();
    for (const email of ['ADMIN', 'Admin', 'aDmIn']) await refused({ iss: `${ISSUER2}/sso`, email }, 'reserved_identity', email);
    assert.equal(h.running.broker.identities.get('user:ADMIN'), undefined);
  });
  it('claim values of every other shape are refused (bad_identity_claim), never registered', async () => {
    const before = h.running.broker.identities.list().length;
    const values: unknown[] = [
      ['admin'], 1, 0, true, null, { a: 'b' }, '', ' admin', 'admin ', 'ad\u0000min', 'ad\nmin', 'user\uFF1Aadmin', 'admin\uFF0Fx',
      'user%3Aadmin', '%2e%2e', 'a/../b', './x', 'x/', '/x', 'x//y', 'ａｄｍｉｎ', 'adm\u0131n', 'a'.repeat(201), 'x:y',
    ];
    for (const email of values) await refused({ iss: `${ISSUER2}/sso`, email }, 'bad_identity_claim', JSON.stringify(email));
    for (const org of ['a/b', 'a:b', ['acme'], 'acme\u0000']) await refused({ iss: `${ISSUER2}/gl`, org, repo: 'x' }, 'bad_identity_claim', JSON.stringify(org));
    await refused({ iss: `${ISSUER2}/gl`, org: 'acme', repo: 'x'.repeat(240) }, 'bad_identity_claim', 'id longer than 256');
    assert.equal(h.running.broker.identities.list().length, before, 'nothing registered');
  });
  it('an identity declared with trusts: [] is proved only by credentials Portcullis issues', async () => {
    await refused({ iss: `${ISSUER2}/gl`, org: 'acme', repo: 'issued-only' }, 'identity_trust_mismatch');
  });
  it('no trust can be bound to a reserved id or its look-alike, by declaration or by the bind route', async () => {
    const admin = await h.admin();
    for (const id of ['user:admin', 'user:ADMIN']) {
      const r = await h.put(`/v1/identities/${encodeURIComponent(id)}/trusts`, { trusts: ['sso2'] }, admin);
      assert.ok(r.status === 400 || r.status === 404, `${id}: ${JSON.stringify(r.body)}`);
    }
    const d = await h.post('/v1/identities', { id: 'user:Admin', kind: 'user', boundary: 'application', environment: 'prod', trusts: ['sso2'] }, admin);
    assert.equal(d.status, 400, JSON.stringify(d.body));
    assert.match(d.body.detail, /cannot produce/);
    // Declared without trusts it is bound to none (Portcullis-issued credentials only), and the issuer is refused.
    const ok = await h.post('/v1/identities', { id: 'user:Admin', kind: 'user', boundary: 'application', environment: 'prod' }, admin);
    assert.equal(ok.status, 201, JSON.stringify(ok.body));
    assert.deepEqual(ok.body.bound_trusts, []);
    await refused({ iss: `${ISSUER2}/sso`, email: 'Admin' }, 'reserved_identity');
    assert.deepEqual(h.running.broker.identities.require('user:admin').bound_trusts, []);
  });
});

describe('identity binding: two shared-namespace trusts racing the first login of one new id', () => {
  let h: Harness;
  before(async () => {
    h = await start({ ciExtra: '    shared_namespace: true', apiExtra: '    trusts: [ci]', trusts: trust2('ci2', 'workload:github/{project_path}', { extra: '    shared_namespace: true' }) });
  });
  after(async () => {
    await h?.close();
  });

  it('exactly one trust registers (and is bound to) the id; the other is refused, whoever comes first', async () => {
    for (let n = 0; n < 6; n++) {
      const repo = `acme/race-${n}`;
      const tokens = [await h.ciToken({ repository: repo }), await h.token2({ project_path: repo })];
      if (n % 2 === 1) tokens.reverse();
      const replies = await Promise.all(tokens.map((token) => h.post('/v1/auth/token', { token })));
      const statuses = replies.map((r) => r.status).sort();
      assert.deepEqual(statuses, [200, 401], `${repo}: ${JSON.stringify(replies.map((r) => r.body))}`);
      const winner = replies.find((r) => r.status === 200)!.body.identity;
      assert.equal(winner.id, `workload:github/${repo}`);
      assert.equal(winner.bound_trusts.length, 1);
      assert.deepEqual(h.running.broker.identities.require(winner.id).bound_trusts, winner.bound_trusts);
      // The loser keeps being refused afterwards.
      const loserToken = winner.bound_trusts[0] === 'ci' ? await h.token2({ project_path: repo }) : await h.ciToken({ repository: repo });
      assert.equal((await h.post('/v1/auth/token', { token: loserToken })).status, 401);
    }
  });
});
