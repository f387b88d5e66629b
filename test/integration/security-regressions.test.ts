// Security properties tested through the real parts (issue #8 item 27): the real decision point
// and HTTP routes with the real audit store refusing writes, the real spent bootstrap secret,
// a never-seen expired session token, and server-owned context keys inside the decision point.
// Each test has a positive control (the same path works when nothing is wrong), so a broken
// server cannot pass it by refusing everything.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { InvalidInput } from '../../src/common/errors.ts';
import { AUDIT_DB_FILE } from '../../src/store/sqlite/index.ts';
import { principalFacts } from '../../src/broker/authorization.ts';
import type { DecisionInput } from '../../src/policy/decision-point.ts';
import { startServer } from '../credentials/server.ts';
import type { TestServer } from '../credentials/server.ts';
import { userKey } from '../credentials/sshd.ts';
import { TEST_STORE, adminClient } from '../store/pg.ts';

const API = 'workload:github/acme/api';

const POLICIES = `
@id("ssh-web-1")
permit (principal == Workload::"${API}", action == Action::"credential.issue", resource == Host::"web-1")
when { context.credential.ttlSeconds <= 3600 };

@id("read-analytics")
permit (principal, action == Action::"db.select", resource == Database::"analytics");

// Each of these allows only when a server-owned context key holds a value the server never sets
// for this request: a caller that can set the key gets an allow.
@id("forged-authn") permit (principal, action == Action::"db.select", resource == Database::"vault") when { context.authn.method == "bootstrap" && context.authn.mfa };
@id("forged-break-glass") permit (principal, action == Action::"db.select", resource == Database::"vault") when { context.breakGlass };
@id("forged-grants") permit (principal, action == Action::"db.select", resource == Database::"vault") when { context.grants.contains("g-forged") };
@id("forged-delegation") permit (principal, action == Action::"db.select", resource == Database::"vault") when { context.delegation.actors.contains("user:admin") };
@id("forged-bridge") permit (principal, action == Action::"db.select", resource == Database::"vault") when { context.bridge };
@id("forged-request") permit (principal, action == Action::"db.select", resource == Database::"vault") when { context.request.sourceIp == ip("10.9.9.9") };
@id("forged-purpose") permit (principal, action == Action::"db.select", resource == Database::"vault") when { context.purpose has ticket && context.purpose.ticket == "CHG-forged" };
`;

describe('fail closed, spent secrets, expiry and server-owned context, through the real server', () => {
  let s: TestServer;
  let auditDb: DatabaseSync | undefined;
  let bootstrapSecret: string | undefined;

  /** Makes the real audit store refuse every write to the authz stream (a trigger, not a stand-in). */
  const authzAuditDown = async (down: boolean) => {
    if (TEST_STORE === 'sqlite') {
      auditDb!.exec(down
        ? `CREATE TRIGGER IF NOT EXISTS test_authz_down BEFORE INSERT ON audit_events WHEN NEW.stream = 'authz' BEGIN SELECT RAISE(ABORT, 'injected: audit store refuses writes'); END`
        : 'DROP TRIGGER IF EXISTS test_authz_down');
      return;
    }
    const c = await adminClient(new URL(s.storeUrl!).pathname.slice(1));
    try {
      await c.query(down
        ? `CREATE OR REPLACE FUNCTION test_authz_down() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected: audit store refuses writes'; END $$;
           CREATE OR REPLACE TRIGGER test_authz_down BEFORE INSERT ON audit_events FOR EACH ROW WHEN (NEW.stream = 'authz') EXECUTE FUNCTION test_authz_down()`
        : 'DROP TRIGGER IF EXISTS test_authz_down ON audit_events');
    } finally {
      await c.end();
    }
  };

  before(async () => {
    s = await startServer({
      resources: [
        '  - { type: Host, id: web-1, boundary: application, environment: prod }',
        '  - { type: Database, id: analytics, boundary: application, environment: prod }',
        '  - { type: Database, id: vault, boundary: application, environment: prod }',
      ].join('\n'),
      targets: `  - { name: web-1, kind: ssh, hosts: [127.0.0.1], principals: { "${API}": [deploy] }, max_ttl: 1h, default_ttl: 10m }`,
      policies: POLICIES,
    });
    // The first start made the one-time secret; a second call returns nothing, so take it now.
    bootstrapSecret = await s.running.broker.bootstrap();
    if (TEST_STORE === 'sqlite') {
      const path = join(s.dir, 'data', AUDIT_DB_FILE);
      assert.ok(existsSync(path), `audit store at ${path}`);
      auditDb = new DatabaseSync(path);
      auditDb.exec('PRAGMA busy_timeout = 5000');
    }
  });

  after(async () => {
    auditDb?.close();
    await s?.close();
  });

  it('audit down at the real decision point: /v1/authorize answers 503, never the allow', async () => {
    const session = await s.login('acme/api');
    const ask = () => s.call('POST', '/v1/authorize', { action: 'db.select', resource: { type: 'Database', id: 'analytics' } }, session);
    const ok = await ask();
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.decision, 'allow', 'positive control: the policy allows this request');
    await authzAuditDown(true);
    try {
      for (let i = 0; i < 3; i++) {
        const r = await ask();
        assert.equal(r.status, 503, JSON.stringify(r.body));
        assert.notEqual(r.body.decision, 'allow');
      }
      const batch = await s.call('POST', '/v1/authorize/batch', { requests: [{ action: 'db.select', resource: { type: 'Database', id: 'analytics' } }] }, session);
      assert.equal(batch.status, 503, JSON.stringify(batch.body));
      // The real decision point, called directly, rejects too (no stand-in `decide`).
      const identity = s.running.broker.identities.get(API)!;
      await assert.rejects(s.running.broker.decisions.decide({
        principal: principalFacts(identity), claims: {}, authn: { method: 'oidc', trust: 'ci', mfa: false, assurance: 'high', auth_time: Math.floor(s.clock.now() / 1000) },
        sourceIp: '127.0.0.1', action: 'db.select', resource: { type: 'Database', id: 'analytics' }, purpose: {},
      }), (e: Error) => e.name === 'Unavailable' || /audit/.test(e.message));
    } finally {
      await authzAuditDown(false);
    }
    assert.equal((await ask()).status, 200, 'the audit store is back: decisions flow again');
  });

  it('audit down while a credential is requested: 503, no certificate handed out, the lease is revoked and its serial in the KRL', async () => {
    const session = await s.login('acme/api');
    const { pub } = await userKey(s.dir, 'id_fail_closed');
    const ask = () => s.call('POST', '/v1/credentials', { target: 'web-1', reason: 'deploy', ttl: '10m', public_key: pub }, session);
    const ok = await ask();
    assert.equal(ok.status, 201, `positive control: ${JSON.stringify(ok.body)}`);
    assert.match(ok.body.credential.certificate, /^ssh-ed25519-cert-v01@openssh.com /);
    await authzAuditDown(true);
    let r;
    try {
      r = await ask();
    } finally {
      await authzAuditDown(false);
    }
    assert.equal(r.status, 503, JSON.stringify(r.body));
    assert.equal(r.body.credential, undefined);
    assert.doesNotMatch(JSON.stringify(r.body), /cert-v01|BEGIN/);
    const leases = (await s.running.broker.credentials.list()).filter((l) => l.target === 'web-1');
    assert.equal(leases.length, 2);
    const failed = leases.find((l) => l.id !== ok.body.lease.id)!;
    assert.notEqual(failed.status, 'active', 'the withdrawn lease is not active');
    const serials = readFileSync(`${s.running.broker.sshKrlPath}.spec`, 'utf8');
    assert.ok(failed.handle && serials.includes(`serial: ${failed.handle}`), 'the certificate made meanwhile is revoked in the KRL');
  });

  it('the real bootstrap secret works once; replaying the same secret is refused (audited bootstrap_used)', async () => {
    assert.ok(bootstrapSecret, 'the first start printed a bootstrap secret');
    const first = await s.call('POST', '/v1/auth/token', { bootstrap: bootstrapSecret });
    assert.equal(first.status, 200, `positive control: ${JSON.stringify(first.body)}`);
    assert.equal(first.body.identity.id, 'user:admin');
    // The same secret again, sequentially and concurrently: never another session.
    const again = await Promise.all([1, 2, 3].map(() => s.call('POST', '/v1/auth/token', { bootstrap: bootstrapSecret })));
    for (const r of again) {
      assert.equal(r.status, 401, JSON.stringify(r.body));
      assert.equal(r.body.session_token, undefined);
    }
    const failures = (await s.running.broker.audit.query({ stream: 'authn', type: 'authn.failure' })).filter((e) => e.payload.proof === 'bootstrap');
    assert.ok(failures.filter((e) => e.payload.reason === 'bootstrap_used').length >= 3, JSON.stringify(failures.map((e) => e.payload)));
    // and the admin session the first use gave still works (it is not the secret that was refused by mistake)
    assert.equal((await s.call('GET', '/v1/identities', undefined, first.body.session_token)).status, 200);
  });

  it('a session token never used before is refused once expired (first use, not only the cache)', async () => {
    const fresh = await s.login('acme/api');
    const stale = await s.login('acme/api');
    const ask = (t: string) => s.call('POST', '/v1/authorize', { action: 'db.select', resource: { type: 'Database', id: 'analytics' } }, t);
    assert.equal((await ask(fresh)).status, 200, 'positive control: a fresh token is accepted on first use');
    s.clock.advance(11 * 60_000); // session ttl is 10m
    const r = await ask(stale);
    assert.equal(r.status, 401, JSON.stringify(r.body));
    assert.equal((await ask(fresh)).status, 401, 'the cached token expired too');
    const renewed = await s.login('acme/api');
    assert.equal((await ask(renewed)).status, 200, 'positive control after the clock moved');
  });

  it('server-owned context keys cannot be supplied to the decision point, by the HTTP caller or by internal code', async () => {
    const session = await s.login('acme/api');
    const identity = s.running.broker.identities.get(API)!;
    const base: DecisionInput = {
      principal: principalFacts(identity), claims: {}, authn: { method: 'oidc' as const, trust: 'ci', mfa: false, assurance: 'high' as const, auth_time: Math.floor(s.clock.now() / 1000) },
      sourceIp: '127.0.0.1', action: 'db.select', resource: { type: 'Database', id: 'vault' }, purpose: {},
    };
    // positive control: without forged keys the request is decided (deny: nothing allows it)
    const plain = await s.running.broker.decisions.decide(base);
    assert.equal(plain.decision, 'deny');
    const forged: Record<string, unknown> = {
      authn: { method: 'bootstrap', trust: 'bootstrap', mfa: true, assurance: 'high', authAgeSeconds: 0 },
      breakGlass: true,
      grants: ['g-forged'],
      delegation: { depth: 0, actors: ['user:admin'] },
      bridge: true,
      request: { time: { __extn: { fn: 'datetime', arg: '2026-01-01T00:00:00Z' } }, hour: 3, weekday: 'mon', sourceIp: { __extn: { fn: 'ip', arg: '10.9.9.9' } } },
      purpose: { ticket: 'CHG-forged' },
    };
    for (const [k, v] of Object.entries(forged)) {
      await assert.rejects(s.running.broker.decisions.decide({ ...base, extra: { [k]: v } }), (e: Error) => e instanceof InvalidInput && e.message.includes(`context.${k}`), `decision point accepted context.${k}`);
      if (k === 'purpose') continue; // over HTTP, purpose is the caller's to give
      const r = await s.call('POST', '/v1/authorize', { action: 'db.select', resource: { type: 'Database', id: 'vault' }, context: { [k]: v } }, session);
      assert.equal(r.status, 400, `HTTP: context.${k}: ${JSON.stringify(r.body)}`);
      assert.notEqual(r.body?.decision, 'allow', `HTTP: context.${k} forged an allow`);
    }
    // The server's own values still reach the policies (the keys are refused, not dropped from the context).
    const real = await s.running.broker.decisions.decide({ ...base, purpose: { ticket: 'CHG-forged' } });
    assert.equal(real.decision, 'allow', 'positive control: a real purpose satisfies forged-purpose');
    assert.deepEqual(real.reasons, ['forged-purpose']);
  });
});
