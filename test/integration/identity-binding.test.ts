// Issue 8.1 over real HTTP: a second OIDC issuer (its own key and JWKS server) must never log in
// as an identity bound to another trust, whatever its template and claims say.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { ISSUER2, allTrusts as all, startSecondIssuer as start, trust2 } from './harness.ts';
import type { Harness } from './harness.ts';
import { TEST_STORE } from '../store/pg.ts';

const API = 'workload:github/acme/api';
const SHARED = '    shared_namespace: true';


async function lastFailure(h: Harness): Promise<Record<string, unknown>> {
  await h.running.broker.audit.flush();
  const e = (await h.running.broker.audit.query({ stream: 'authn', type: 'authn.failure', order: 'desc', limit: 1 }))[0];
  assert.ok(e, 'a failure is on record');
  return e.payload;
}

async function refused(h: Harness, token: string, reason: string) {
  const r = await h.post('/v1/auth/token', { token });
  assert.equal(r.status, 401, JSON.stringify(r.body));
  assert.ok(!JSON.stringify(r.body).includes(reason), 'the caller sees a generic 401, not the reason');
  assert.equal((await lastFailure(h)).reason, reason);
}

async function loggedIn(h: Harness, token: string): Promise<string> {
  const r = await h.post('/v1/auth/token', { token });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.identity.id as string;
}

describe('identity binding at config load', () => {
  it('a second issuer templating workload:github/… is refused, naming both trusts', async () => {
    await assert.rejects(start({ trusts: trust2('ci2', 'workload:github/{project_path}') }), (e: Error) => /trusts ci \("workload:github\/\{repository\}"\) and ci2/.test(e.message) && /trusts\[0\]\.shared_namespace/.test(e.message));
  });
  it('prefix-of-prefix overlaps too (workload:git… and workload:{x}); disjoint prefixes do not', async () => {
    await assert.rejects(start({ trusts: trust2('ci2', 'workload:git{x}') }), /overlap/);
    await assert.rejects(start({ trusts: trust2('ci2', 'workload:{x}') }), /overlap/);
    const h = await start({ trusts: trust2('ci2', 'workload:gitlab/{x}') });
    await h.close();
  });
  it('shared_namespace on one side only is refused (both sides must declare it)', async () => {
    await assert.rejects(start({ trusts: trust2('ci2', 'workload:github/{project_path}', { extra: SHARED }) }), /missing on ci\b/);
    await assert.rejects(start({ ciExtra: SHARED, trusts: trust2('ci2', 'workload:github/{project_path}') }), /missing on ci2/);
  });
  it('kind mismatch and reserved templates are refused', async () => {
    await assert.rejects(start({ trusts: trust2('ci2', 'workload:gitlab/{p}', { kind: 'user' }) }), /must start with "user:"/);
    await assert.rejects(start({ trusts: trust2('ci2', 'user:{p}') }), /must start with "workload:"/);
    await assert.rejects(start({ trusts: trust2('ci2', 'system:{p}') }), /reserved/);
  });
  it('a declared identity two trusts can produce must name its trusts (error names both); unknown or unfit names are refused', async () => {
    const shared = { ciExtra: SHARED, trusts: trust2('ci2', 'workload:github/{project_path}', { extra: SHARED }) };
    await assert.rejects(start(shared), (e: Error) => /trusts ci and ci2 can both produce identity workload:github\/acme\/api/.test(e.message));
    await assert.rejects(start({ trusts: trust2('ci2', 'workload:gitlab/{p}'), apiExtra: '    trusts: [nope]' }), /no trust named "nope"/);
    await assert.rejects(start({ trusts: trust2('ci2', 'workload:gitlab/{p}'), apiExtra: '    trusts: [ci2]' }), /ci2 cannot produce identity workload:github\/acme\/api/);
  });
});

describe('identity binding over HTTP (shared namespace on both sides)', () => {
  let h: Harness;
  before(async () => {
    h = await start({
      ciExtra: SHARED,
      apiExtra: '    trusts: [ci]',
      trusts: all(
        trust2('ci2', 'workload:github/{project_path}', { extra: SHARED }),
        trust2('sso2', 'user:{email}', { kind: 'user', suffix: '/sso' }),
        trust2('gitlab', 'workload:gitlab/{org}/{repo}', { suffix: '/gitlab' }),
      ),
      identities: `  - { id: "workload:github/acme/deploy", kind: workload, boundary: application, environment: prod, trusts: [ci2] }
  - { id: "workload:gitlab/acme/lone", kind: workload, boundary: application, environment: prod }`,
    });
  });
  after(async () => {
    await h?.close();
  });

  it('the second issuer cannot become the identity declared for the first (identity_trust_mismatch); the first still can', async () => {
    await refused(h, await h.token2({ project_path: 'acme/api', sub: 'x' }), 'identity_trust_mismatch');
    assert.equal(await loggedIn(h, await h.ciToken()), API);
  });
  it('declared with trusts: [ci2] — ci2 logs in, ci is refused', async () => {
    assert.equal(await loggedIn(h, await h.token2({ project_path: 'acme/deploy' })), 'workload:github/acme/deploy');
    await refused(h, await h.ciToken({ repository: 'acme/deploy' }), 'identity_trust_mismatch');
  });
  it('declared without trusts is bound to the one trust that can produce it', async () => {
    const id = h.running.broker.identities.require('workload:gitlab/acme/lone');
    assert.deepEqual(id.bound_trusts, ['gitlab']);
    assert.equal(await loggedIn(h, await h.token2({ iss: `${ISSUER2}/gitlab`, org: 'acme', repo: 'lone' })), 'workload:gitlab/acme/lone');
  });
  it('a registered identity is bound to the trust that registered it, in both directions', async () => {
    assert.equal(await loggedIn(h, await h.ciToken({ repository: 'acme/first-by-ci' })), 'workload:github/acme/first-by-ci');
    await refused(h, await h.token2({ project_path: 'acme/first-by-ci' }), 'identity_trust_mismatch');
    assert.equal(await loggedIn(h, await h.token2({ project_path: 'acme/first-by-ci2' })), 'workload:github/acme/first-by-ci2');
    await refused(h, await h.ciToken({ repository: 'acme/first-by-ci2' }), 'identity_trust_mismatch');
    assert.deepEqual(h.running.broker.identities.require('workload:github/acme/first-by-ci2').bound_trusts, ['ci2']);
  });
  it('user:{email} with email "admin" (and other reserved ids) is refused as reserved_identity, never the bootstrap admin', async () => {
    await h.admin(); // user:admin exists
    await refused(h, await h.token2({ iss: `${ISSUER2}/sso`, email: 'admin' }), 'reserved_identity');
    assert.equal(await loggedIn(h, await h.token2({ iss: `${ISSUER2}/sso`, email: 'alice@example.com' })), 'user:alice@example.com');
  });
  it('a ":" in a claim is refused (bad_identity_claim), in any placeholder', async () => {
    await refused(h, await h.ciToken({ repository: 'acme/api:x' }), 'bad_identity_claim');
    await refused(h, await h.token2({ iss: `${ISSUER2}/sso`, email: 'user:admin' }), 'bad_identity_claim');
    await refused(h, await h.token2({ iss: `${ISSUER2}/gitlab`, org: 'ac:me', repo: 'x' }), 'bad_identity_claim');
  });
  it('{org}/{repo}: "/" only in the last placeholder, so org "a/b" + repo "c" never equals org "a" + repo "b/c"', async () => {
    await refused(h, await h.token2({ iss: `${ISSUER2}/gitlab`, org: 'a/b', repo: 'c' }), 'bad_identity_claim');
    assert.equal(await loggedIn(h, await h.token2({ iss: `${ISSUER2}/gitlab`, org: 'a', repo: 'b/c' })), 'workload:gitlab/a/b/c');
    await refused(h, await h.token2({ iss: `${ISSUER2}/gitlab`, org: 'acme/lone', repo: 'x' }), 'bad_identity_claim');
  });
  it('an identity of another kind is refused (identity_kind_mismatch)', async () => {
    const admin = await h.admin();
    // Declared through the API as an agent under a workload: id → refused at declaration.
    const bad = await h.post('/v1/identities', { id: 'workload:gitlab/acme/odd', kind: 'agent', boundary: 'application', environment: 'prod' }, admin);
    assert.equal(bad.status, 400, JSON.stringify(bad.body));
    assert.match(bad.body.detail, /does not match/);
  });
  it('API declaration: implicit, explicit and ambiguous bindings; the bind route is audited', async () => {
    const admin = await h.admin();
    const amb = await h.post('/v1/identities', { id: 'workload:github/acme/svc', kind: 'workload', boundary: 'application', environment: 'prod' }, admin);
    assert.equal(amb.status, 400);
    assert.match(amb.body.detail, /ci and ci2 can both produce/);
    const ok = await h.post('/v1/identities', { id: 'workload:github/acme/svc', kind: 'workload', boundary: 'application', environment: 'prod', trusts: ['ci2'] }, admin);
    assert.equal(ok.status, 201, JSON.stringify(ok.body));
    assert.deepEqual(ok.body.bound_trusts, ['ci2']);
    await refused(h, await h.ciToken({ repository: 'acme/svc' }), 'identity_trust_mismatch');
    const rebind = await h.put('/v1/identities/workload%3Agithub%2Facme%2Fsvc/trusts', { trusts: ['ci'] }, admin);
    assert.equal(rebind.status, 200, JSON.stringify(rebind.body));
    assert.equal(await loggedIn(h, await h.ciToken({ repository: 'acme/svc' })), 'workload:github/acme/svc');
    const unfit = await h.put('/v1/identities/workload%3Agithub%2Facme%2Fsvc/trusts', { trusts: ['sso2'] }, admin);
    assert.equal(unfit.status, 400);
    await h.running.broker.audit.flush();
    const ev = await h.running.broker.audit.query({ stream: 'admin', type: 'identity.bound', subject: 'workload:github/acme/svc' });
    assert.equal(ev.length, 1);
    assert.deepEqual(ev[0]!.payload.to, ['ci']);
    // A non-admin is denied by Cedar.
    const bob = (await h.post('/v1/auth/token', { token: await h.token2({ iss: `${ISSUER2}/sso`, email: 'bob@example.com' }) })).body.session_token;
    assert.equal((await h.put('/v1/identities/workload%3Agithub%2Facme%2Fsvc/trusts', { trusts: ['ci2'] }, bob)).status, 404, 'no read rights: the same 404 as an unknown id (8.16)');
  });
});

describe('identity binding: migration of a store from before binding', { skip: TEST_STORE === 'postgres' ? 'rewrites an old SQLite store' : false }, () => {
  it('binds from the registering trust and the audit trail, lists and refuses what it cannot bind until an administrator binds it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pcx-bind-'));
    try {
      // 1. The old world: one trust; an identity registered by it, one declared through the API.
      let h = await start({ dir, trusts: trust2('ci2', 'workload:gitlab/{p}') });
      const admin = await h.admin();
      assert.equal(await loggedIn(h, await h.ciToken({ repository: 'acme/old' })), 'workload:github/acme/old');
      assert.equal((await h.post('/v1/identities', { id: 'workload:github/acme/viaapi', kind: 'workload', boundary: 'application', environment: 'prod' }, admin)).status, 201);
      assert.equal((await h.post('/v1/identities', { id: 'workload:gitlab/used', kind: 'workload', boundary: 'application', environment: 'prod' }, admin)).status, 201);
      assert.equal(await loggedIn(h, await h.token2({ p: 'used' })), 'workload:gitlab/used');
      assert.equal(await loggedIn(h, await h.token2({ p: 'kind' })), 'workload:gitlab/kind');
      await h.close();
      // Make the store look like one from before binding: no bound_trusts, no registering trust recorded.
      const db = new DatabaseSync(join(dir, 'data', 'portcullis.db'));
      db.exec("UPDATE identities SET bound_trusts = NULL; UPDATE identities SET trust = NULL WHERE id = 'workload:github/acme/old'; UPDATE identities SET kind = 'agent' WHERE id = 'workload:gitlab/kind'");
      db.close();
      // 2. The new world: ci and ci2 share the github namespace.
      h = await start({ dir, ciExtra: SHARED, apiExtra: '    trusts: [ci]', trusts: all(trust2('ci2', 'workload:github/{p}', { extra: SHARED }), trust2('gl', 'workload:gitlab/{p}', { suffix: '/gl' })) });
      try {
        const ids = h.running.broker.identities;
        assert.deepEqual(ids.require('workload:github/acme/old').bound_trusts, ['ci'], 'from identity.registered in the admin stream');
        assert.deepEqual(ids.require('user:admin').bound_trusts, [], 'no trust can produce user:admin');
        assert.deepEqual(h.running.broker.unboundIdentities, ['workload:github/acme/viaapi'], 'ambiguous and never used: left unbound');
        assert.deepEqual(ids.require('workload:gitlab/used').bound_trusts, ['gl'], 'the one trust that can produce it now');
        await refused(h, await h.token2({ p: 'acme/old' }), 'identity_trust_mismatch');
        assert.equal(await loggedIn(h, await h.ciToken({ repository: 'acme/old' })), 'workload:github/acme/old');
        await refused(h, await h.ciToken({ repository: 'acme/viaapi' }), 'identity_unbound');
        await refused(h, await h.token2({ p: 'acme/viaapi' }), 'identity_unbound');
        // A stored row of another kind than the proof (from before kinds were checked) is refused.
        await refused(h, await h.token2({ iss: `${ISSUER2}/gl`, p: 'kind' }), 'identity_kind_mismatch');
        const secret = await h.running.broker.bootstrap(); // already spent in run 1: no new secret
        assert.equal(secret, undefined);
      } finally {
        await h.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
