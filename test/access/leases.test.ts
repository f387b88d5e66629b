// A credential obtained under a grant, from the real credential service (an `api` target: RFC 9068
// access tokens), and lost when the grant ends: revokeLeases wired to the lease machinery.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { SignJWT, generateKeyPair } from 'jose';
import { createCredentialService, validateTargets } from '../../src/credentials/index.ts';
import type { CredentialService, Decide } from '../../src/credentials/index.ts';
import { parseCreateRequest } from '../../src/access/index.ts';
import { POLICIES, world } from './helpers.ts';
import { sqliteLeases } from '../credentials/helpers.ts';
import type { World } from './helpers.ts';

const EXTRA_POLICIES = `
@id("dba-approves-api")
permit (principal in Team::"dba", action == Action::"access.approve", resource == Api::"orders-api");

@id("token-under-grant")
permit (principal, action == Action::"credential.issue", resource == Api::"orders-api")
when { context.grants.contains("credential:orders-api") };
`;

describe('leases issued under a grant', () => {
  let w: World;
  let creds: CredentialService;
  before(async () => {
    w = await world({
      policies: POLICIES + EXTRA_POLICIES,
      resources: [{ type: 'Api', id: 'orders-api', boundary: 'application', environment: 'prod', parents: [], attributes: {} }],
      // What the lead wires: the credential service revokes every lease recorded with this grantId.
      revokeLeases: async ({ grantId }, o) => {
        const mine = (await creds.list({ status: ['active', 'issuing'] })).filter((l) => l.grantId === grantId);
        return Promise.all(mine.map((l) => creds.revokeLease(l.id, o)));
      },
    });
    const { privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
    // The credential service decides through the same DecisionPoint, with the holder's grants.
    const decide: Decide = async (r) => {
      const actor = w.actor(r.identityId.replace(/^user:|@example.com$/g, ''));
      const d = await w.decideData(actor, r.action, r.resource);
      return { decision: d.decision, decisionId: d.decision_id };
    };
    creds = createCredentialService({
      leases: sqliteLeases(),
      clock: w.clock,
      audit: w.audit,
      decide,
      targets: validateTargets([{ name: 'orders-api', kind: 'api', audience: 'https://orders.example', scopes: ['orders:read'], max_ttl: '15m' }]),
      issuerUrl: 'https://portcullis.test',
      signer: { kid: 'k1', alg: 'EdDSA', sign: (claims, header) => new SignJWT(claims).setProtectedHeader({ ...header, alg: 'EdDSA', kid: 'k1' }).sign(privateKey) },
    });
  });
  after(async () => {
    await creds?.stop();
    await w?.close();
  });

  test('no grant, no credential; with the grant, a token; the grant ends, the lease is revoked', async () => {
    const alice = w.actor('alice');
    await assert.rejects(creds.issue({ identityId: alice.id, target: 'orders-api', purpose: 'inspect orders', params: { scopes: ['orders:read'] } }), /denied by policy/);
    const r = await w.service.createRequest(alice, parseCreateRequest({ credential: { target: 'orders-api', resource: 'Api::"orders-api"' }, duration: '1h', reason: 'inspect orders' }));
    const ok = await w.service.approve(w.actor('bob'), r.id);
    assert.equal(ok.status, 'approved');
    assert.deepEqual((await w.service.activeGrants(alice.id)).grants, ['credential:orders-api']);
    const issued = await creds.issue({ identityId: alice.id, target: 'orders-api', purpose: 'inspect orders', params: { scopes: ['orders:read'] }, grantId: ok.grant_id! });
    assert.equal(issued.lease.grantId, ok.grant_id);
    assert.equal((await creds.get(issued.lease.id)).status, 'active');

    await w.service.revokeGrant(w.actor('carol'), ok.grant_id!, 'investigation over');
    assert.equal((await creds.get(issued.lease.id)).status, 'revoked');
    await assert.rejects(creds.issue({ identityId: alice.id, target: 'orders-api', purpose: 'again', params: { scopes: ['orders:read'] } }), /denied by policy/);
  });
});
