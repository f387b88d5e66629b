// Issue #9 item 5: the request between the credential domain and policy is a typed object
// (session facts, purpose, credential, delegation, grants), turned into the decision point's
// input without casts; grants are read once per decision — an issuance hands the decider the
// grants it read to tie the lease, and the decider reads them only when it was given none.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metrics } from '../../src/common/metrics.ts';
import { ManualClock } from '../../src/common/clock.ts';
import { parseConfig } from '../../src/config/load.ts';
import { testStoreConfig } from '../store/stores.ts';
import { Broker } from '../../src/broker/index.ts';
import type { SessionContext } from '../../src/broker/index.ts';
import { credentialDecider } from '../../src/broker/credential-decisions.ts';
import type { GrantsFor } from '../../src/broker/authorization.ts';
import type { DecisionRequest } from '../../src/credentials/index.ts';
import type { Decision, DecisionInput, DecisionPoint } from '../../src/policy/decision-point.ts';
import type { Identity, IdentityRegistry } from '../../src/inventory/identities.ts';
import { withInternals } from '../integration/broker-view.ts';

const ID = 'workload:test/seam';
const identity = { id: ID, kind: 'workload', boundary: 'platform', environment: 'prod', owner: 'team:x', labels: {}, parents: [{ type: 'Team', id: 'x' }], status: 'active' } as unknown as Identity;
const authn = { method: 'oidc' as const, trust: 'ci', mfa: false, assurance: 'high' as const, auth_time: 1 };

function decider(status: 'active' | 'suspended' = 'active') {
  const inputs: DecisionInput[] = [];
  let reads = 0;
  const decision = (): Decision => ({ decision: 'allow', reasons: [], errors: [], decision_id: `d${inputs.length}`, policy_version: 1 });
  const decisions = {
    decideDeferred: (input: DecisionInput) => (inputs.push(input), { decision: decision(), recorded: Promise.resolve() }),
    decide: async (input: DecisionInput) => (inputs.push(input), { ...decision(), decision: 'deny' as const }),
  } as unknown as DecisionPoint;
  const identities = { get: (id: string) => (id === ID ? { ...identity, status } : undefined) } as unknown as IdentityRegistry;
  const grantsFor: GrantsFor = async () => (reads++, { principal: { ...identity, parents: [] } as never, grants: ['read-now'], breakGlass: false });
  return { decide: credentialDecider({ identities, decisions, metrics: new Metrics(), grantsFor }), inputs, reads: () => reads };
}

const request = (over: Partial<DecisionRequest> = {}): DecisionRequest => ({
  identityId: ID,
  action: 'credential.issue',
  resource: { type: 'Api', id: 'orders-api' },
  session: { authn, claims: { ref: 'main' }, sessionId: 'jti-1', sourceIp: '10.1.2.3' },
  purpose: 'deploy',
  credential: { kind: 'api', target: 'orders-api', permission: 'orders:read', ttlSeconds: 300, renewal: false, revalidation: false },
  ...over,
});

describe('the typed decision seam', () => {
  it('each typed field lands where policy reads it; grants given are used, not read again', async () => {
    const d = decider();
    const r = await d.decide(request({ grants: { grants: ['g-1'], parents: [{ type: 'Role', id: 'orders-reader' }], breakGlass: true }, delegation: { actors: ['agent:a'], depth: 1 } }));
    assert.equal(r.decision, 'allow');
    assert.equal(d.reads(), 0, 'no second read of the grants');
    const input = d.inputs[0]!;
    assert.deepEqual(input.authn, authn);
    assert.deepEqual(input.claims, { ref: 'main' });
    assert.equal(input.sessionId, 'jti-1');
    assert.equal(input.sourceIp, '10.1.2.3');
    assert.deepEqual(input.purpose, { reason: 'deploy' });
    assert.deepEqual(input.extra, { credential: { kind: 'api', target: 'orders-api', permission: 'orders:read', ttlSeconds: 300, renewal: false, revalidation: false } });
    assert.deepEqual(input.delegation, { actors: ['agent:a'], depth: 1 });
    assert.deepEqual(input.grants, ['g-1']);
    assert.equal(input.breakGlass, true);
    assert.deepEqual(input.principal.parents, [{ type: 'Team', id: 'x' }, { type: 'Role', id: 'orders-reader' }], 'a granted role is a temporary parent');
  });

  it('without grants (a renewal, a revalidation) the decider reads them, once', async () => {
    const d = decider();
    await d.decide(request({ session: {}, credential: { ...request().credential, renewal: true } }));
    assert.equal(d.reads(), 1);
    const input = d.inputs[0]!;
    assert.deepEqual(input.grants, ['read-now']);
    assert.equal(input.sourceIp, '0.0.0.0', 'a lease without stored facts is decided without a session');
    assert.equal(input.authn.method, 'bootstrap');
    assert.equal((input.extra as { credential: { renewal: boolean } }).credential.renewal, true);
  });

  it('an identity no longer active is denied on record, its grants unread', async () => {
    const d = decider('suspended');
    const r = await d.decide(request());
    assert.equal(r.decision, 'deny');
    assert.equal(d.reads(), 0);
    assert.equal(d.inputs[0]!.sourceIp, '10.1.2.3');
  });
});

describe('an issuance reads the caller’s grants once', () => {
  let dir: string;
  let broker: ReturnType<typeof withInternals>;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pcx-seam-'));
    writeFileSync(join(dir, 'main.cedar'), 'permit (principal == User::"user:admin", action == Action::"credential.issue", resource == Api::"orders-api");');
    const store = await testStoreConfig();
    const yaml = `
listen: { host: 127.0.0.1, port: 0 }
data_dir: ./data
${store.yaml}${store.witness ? `audit: { ${store.witness.slice(2)} }\n` : ''}boundaries: [platform]
resources:
  - { type: Api, id: orders-api, boundary: platform, environment: prod }
targets:
  - { name: orders-api, kind: api, audience: https://orders.acme.test, scopes: [orders:read], max_ttl: 30m }
policies: ./main.cedar
`;
    const env = { PORTCULLIS_MASTER_KEY: Buffer.alloc(32, 6).toString('base64'), ...store.env };
    broker = withInternals(await Broker.open(parseConfig(yaml, dir, env).config, { env, clock: new ManualClock(Date.parse('2026-03-02T10:00:00Z')) }));
  });
  after(async () => {
    await broker?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('one read of the grants ties the lease and feeds the decision; a renewal reads them in the decision', async () => {
    const s: SessionContext = await broker.sessionFromToken((await broker.loginBootstrap((await broker.bootstrap())!, '10.0.0.9')).session_token, '10.0.0.9');
    const access = broker.access;
    const counted = { list: 0, context: 0 };
    const list = access.listGrants.bind(access);
    const context = access.activeGrants.bind(access);
    access.listGrants = (...a) => (counted.list++, list(...a));
    access.activeGrants = (...a) => (counted.context++, context(...a));
    const issued = await broker.issueCredential(s, { target: 'orders-api', scopes: ['orders:read'], ttl: '5m', reason: 'seam' }, '10.0.0.9');
    assert.deepEqual(counted, { list: 1, context: 0 });
    await broker.admin.leases.renew({ ...s, sourceIp: '10.0.0.9' }, issued.lease.id, '10m');
    assert.deepEqual(counted, { list: 1, context: 1 });
    // What the lease keeps to be re-decided by is the session it was asked in.
    assert.deepEqual((await broker.credentials.get(issued.lease.id)).params.context, { authn: s.authn, claims: s.claims, sourceIp: '10.0.0.9', sessionId: s.jti });
  });
});
