// The AI platform as a trust boundary, enforced by the system policies (docs/agents.md
// "Boundaries"), not by demo policies: with bridges declared both ways and a policy that permits
// everything, a platform operator still cannot reach customer data (through a tool or otherwise),
// an application admin cannot read an agent connector's secret nor take the agent over (API key),
// and an agent reaches another boundary's tools only while acting for someone.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../../src/common/clock.ts';
import { PortcullisError } from '../../src/common/errors.ts';
import { parseConfig } from '../../src/config/load.ts';
import { Broker, principalFacts } from '../../src/broker/index.ts';
import type { Caller } from '../../src/broker/index.ts';
import { testStoreConfig } from '../store/stores.ts';
import { withInternals } from '../integration/broker-view.ts';
import type { TestBroker } from '../integration/broker-view.ts';

const POLICIES = `
@id("demo-permits-everything")
permit (principal, action in [Action::"tool.invoke", Action::"db.select", Action::"secret.read"], resource);

@id("app-admins-manage-keys")
permit (principal in Team::"app-admins", action == Action::"apikey.manage", resource);
`;

describe('AI platform boundaries (system guard)', () => {
  let dir: string;
  let broker: TestBroker;
  let appAdmin: Caller;

  const decide = async (id: string, action: string, resource: { type: string; id: string }, delegation?: { depth: number; actors: string[] }) => {
    const identity = broker.identities.require(id);
    const d = await broker.decisions.decide({
      principal: principalFacts(identity),
      claims: {},
      authn: { method: 'api-key', trust: 'apikey', mfa: false, assurance: 'low', auth_time: Math.floor(broker.clock.now() / 1000) },
      sourceIp: '10.0.0.9',
      action,
      resource,
      purpose: {},
      ...(delegation && { delegation }),
    });
    return { decision: d.decision, reasons: d.reasons };
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pcx-agent-boundaries-'));
    writeFileSync(join(dir, 'main.cedar'), POLICIES);
    const store = await testStoreConfig();
    const yaml = `
listen: { host: 127.0.0.1, port: 0 }
data_dir: ./data
${store.yaml}boundaries: [platform, application, ai-platform]
bridges:
  - { from: ai-platform, to: application, actions: [tool.invoke, db.select], reason: agents work for customers }
  - { from: application, to: ai-platform, actions: [secret.read], reason: a careless bridge }
identities:
  - { id: "user:olga", kind: user, owner: "user:olga", boundary: ai-platform, environment: prod }
  - { id: "user:adam", kind: user, owner: "user:adam", boundary: application, environment: prod, parents: ['Team::"app-admins"'] }
  - { id: "agent:helper", kind: agent, owner: team:ai, purpose: answers tickets, boundary: ai-platform, environment: prod }
  - { id: "workload:app/admin-bot", kind: workload, owner: team:app, purpose: administers the app, boundary: application, environment: prod, parents: ['Team::"app-admins"'] }
  - { id: "workload:app/svc", kind: workload, owner: team:app, purpose: serves, boundary: application, environment: prod }
resources:
  - { type: Tool, id: crm/lookup_customer, boundary: application, environment: prod }
  - { type: Database, id: customers, boundary: application, environment: prod }
  - { type: Secret, id: connector/crm-key, boundary: ai-platform, environment: prod }
policies: ./main.cedar
audit: { fail_closed: true${store.witness} }
`;
    const env = { PORTCULLIS_MASTER_KEY: Buffer.alloc(32, 6).toString('base64'), ...store.env };
    broker = withInternals(await Broker.open(parseConfig(yaml, dir, env).config, { env, clock: new ManualClock(Date.parse('2026-03-02T10:00:00Z')) }));
    const secret = await broker.bootstrap();
    const adminToken = (await broker.loginBootstrap(secret!, '10.0.0.1')).session_token;
    const admin: Caller = { ...(await broker.sessionFromToken(adminToken, '10.0.0.1')), sourceIp: '10.0.0.1' };
    const key = await broker.admin.apiKeys.mint(admin, { identity: 'workload:app/admin-bot', ttl: '1h' });
    const token = (await broker.login({ type: 'api_key', key: key.api_key }, '10.0.0.2')).session_token;
    appAdmin = { ...(await broker.sessionFromToken(token, '10.0.0.2')), sourceIp: '10.0.0.2' };
  });

  after(async () => {
    await broker?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const TOOL = { type: 'Tool', id: 'crm/lookup_customer' };
  const DB = { type: 'Database', id: 'customers' };
  const SECRET = { type: 'Secret', id: 'connector/crm-key' };
  const GUARD = ['system:ai-platform-guard'];

  it('a platform operator cannot reach customer data, not through a tool and not through the bridge meant for agents', async () => {
    assert.deepEqual(await decide('user:olga', 'tool.invoke', TOOL), { decision: 'deny', reasons: GUARD });
    assert.deepEqual(await decide('user:olga', 'db.select', DB), { decision: 'deny', reasons: GUARD });
    assert.deepEqual(await decide('user:olga', 'tool.invoke', TOOL, { depth: 1, actors: ['agent:helper'] }), { decision: 'deny', reasons: GUARD }, 'nor with an agent in the chain');
  });

  it('an agent crosses the bridge for data, but reaches another boundary’s tools only while acting for someone', async () => {
    assert.equal((await decide('agent:helper', 'db.select', DB)).decision, 'allow', 'the bridge still carries agents (control)');
    assert.deepEqual(await decide('agent:helper', 'tool.invoke', TOOL), { decision: 'deny', reasons: GUARD });
    assert.equal((await decide('agent:helper', 'tool.invoke', TOOL, { depth: 1, actors: ['agent:helper'] })).decision, 'allow');
  });

  it('an application admin cannot read an agent connector’s secret, even over a bridge; the agent itself can', async () => {
    assert.deepEqual(await decide('user:adam', 'secret.read', SECRET), { decision: 'deny', reasons: GUARD });
    assert.deepEqual(await decide('workload:app/svc', 'secret.read', SECRET), { decision: 'deny', reasons: GUARD });
    assert.equal((await decide('agent:helper', 'secret.read', SECRET)).decision, 'allow');
  });

  it('an application admin cannot take an agent over (API key), whatever policy grants; another of its own boundary, yes', async () => {
    await assert.rejects(broker.admin.apiKeys.mint(appAdmin, { identity: 'agent:helper', ttl: '1h' }), (e: unknown) => e instanceof PortcullisError && (e.status === 403 || e.status === 404));
    await broker.audit.flush();
    const deny = (await broker.audit.query({ stream: 'authz', decision: 'deny', identity: 'workload:app/admin-bot', limit: 10 })).find((e) => e.payload.action === 'apikey.manage');
    assert.deepEqual(deny?.payload.reasons, ['system:agent-takeover-guard']);
    const ok = await broker.admin.apiKeys.mint(appAdmin, { identity: 'workload:app/svc', ttl: '1h' });
    assert.ok(ok.api_key.startsWith('pcx_'), 'control: the same permit works inside its boundary');
  });
});
