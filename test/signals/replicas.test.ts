// Shared Signals across two replicas (two brokers in this process over one PostgreSQL store): a
// SET pushed to both at once is taken exactly once (the jti is remembered in the store), a
// session-revoked pushed to one ends the session on the other, and a device-compliance fact
// received by one decides on the other.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey } from 'jose';
import { parseConfig } from '../../src/config/load.ts';
import { serve } from '../../src/cli/serve.ts';
import type { Running } from '../../src/cli/serve.ts';
import { freshStoreUrl } from '../store/pg.ts';
import { witnessUrl } from '../store/stores.ts';

const CI = 'https://ci.replicas.test';
const TX = 'https://idp.replicas.test';
const AUD = 'http://portcullis.replicas.test';
const SECRET = 'replica-push-secret-0123456789';
const API = 'workload:github/acme/api';
const CAEP = 'https://schemas.openid.net/secevent/caep/event-type/';

describe('Shared Signals across two replicas over one PostgreSQL store', { timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'pcx-ssf-replicas-'));
  let a: Running;
  let b: Running;
  let ciKey: CryptoKey;
  let txKey: CryptoKey;

  const post = async (r: Running, path: string, body: unknown, headers: Record<string, string> = {}) => {
    const res = await fetch(r.url + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
    const text = await res.text();
    return { status: res.status, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
  };
  const push = (r: Running, token: string) => post(r, '/v1/signals/events', token, { 'content-type': 'application/secevent+jwt', authorization: `Bearer ${SECRET}` });
  const set = (event: string, payload: Record<string, unknown> = {}) => {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ iss: TX, aud: AUD, jti: randomUUID(), sub_id: { format: 'opaque', id: API }, events: { [`${CAEP}${event}`]: { event_timestamp: now, ...payload } } })
      .setProtectedHeader({ alg: 'ES256', kid: 'tx', typ: 'secevent+jwt' })
      .setIssuedAt(now)
      .sign(txKey);
  };
  const login = async (r: Running) => {
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({ repository: 'acme/api' }).setProtectedHeader({ alg: 'ES256', kid: 'ci', typ: 'JWT' }).setIssuer(CI).setAudience('portcullis').setSubject('repo:acme/api').setIssuedAt(now).setExpirationTime(now + 300).sign(ciKey);
    const res = await post(r, '/v1/auth/token', { token });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.session_token as string;
  };
  const decide = (r: Running, token: string) => post(r, '/v1/authorize', { action: 'db.select', resource: { type: 'Database', id: 'analytics' } }, { authorization: `Bearer ${token}` });

  before(async () => {
    const ci = await generateKeyPair('ES256');
    const tx = await generateKeyPair('ES256');
    ciKey = ci.privateKey as CryptoKey;
    txKey = tx.privateKey as CryptoKey;
    const ciJwk = JSON.stringify({ ...(await exportJWK(ci.publicKey)), kid: 'ci', alg: 'ES256' });
    const txJwk = JSON.stringify({ ...(await exportJWK(tx.publicKey)), kid: 'tx', alg: 'ES256' });
    mkdirSync(join(dir, 'policies'));
    writeFileSync(join(dir, 'policies', 'main.cedar'), `permit (principal, action == Action::"db.select", resource == Database::"analytics");
forbid (principal, action, resource) when { context.signals.device_compliance == "not-compliant" };
`);
    const yaml = `
listen: { host: "127.0.0.1", port: 0 }
data_dir: ./data
public_url: ${AUD}
store: { kind: postgres, url_env: PCX_STORE_URL, pool: 4 }
boundaries: [application]
trusts:
  - { name: ci, kind: oidc, issuer: ${CI}, jwks: { keys: [${ciJwk}] }, audiences: [portcullis], algorithms: [ES256], identity: "workload:github/{repository}", boundary: application, environment: prod }
identities:
  - { id: ${API}, kind: workload, boundary: application, environment: prod }
resources:
  - { type: Database, id: analytics, boundary: application, environment: prod }
policies: ./policies
audit: { fail_closed: true, checkpoint_every: 5, witness: { url: "${await witnessUrl()}" } }
signals:
  receiver:
    transmitters:
      - { name: idp, issuer: ${TX}, jwks: { keys: [${txJwk}] }, algorithms: [ES256], trust: ci, push_auth: { bearer_env: PCX_SSF_PUSH } }
`;
    const env = { PCX_STORE_URL: await freshStoreUrl(), PCX_SSF_PUSH: SECRET, PORTCULLIS_MASTER_KEY: Buffer.alloc(32, 7).toString('base64') };
    const loaded = parseConfig(yaml, dir, { ...process.env, ...env });
    a = await serve(loaded, { quiet: true, env });
    b = await serve(loaded, { quiet: true, env });
  });
  after(async () => {
    await b?.stop();
    await a?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('one SET pushed to both replicas at once is taken exactly once', async () => {
    for (let i = 0; i < 5; i++) {
      const token = await set('assurance-level-change', { current_level: `aal${i}` });
      const [ra, rb] = await Promise.all([push(a, token), push(b, token)]);
      assert.deepEqual([ra.status, rb.status].sort(), [202, 400], JSON.stringify([ra.body, rb.body]));
      assert.equal((ra.status === 400 ? ra : rb).body.err, 'invalid_request');
    }
  });

  it('a device-compliance fact received by one replica decides on the other', async () => {
    const token = await login(a);
    assert.equal((await decide(b, token)).body.decision, 'allow');
    assert.equal((await push(a, await set('device-compliance-change', { current_status: 'not-compliant' }))).status, 202);
    let d = '';
    for (let i = 0; i < 100 && d !== 'deny'; i++) {
      d = (await decide(b, token)).body.decision as string;
      if (d !== 'deny') await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(d, 'deny');
    assert.equal((await push(b, await set('device-compliance-change', { current_status: 'compliant', event_timestamp: Math.floor(Date.now() / 1000) + 1 }))).status, 202);
  });

  it('a session-revoked pushed to one replica ends the session on the other', async () => {
    const token = await login(a);
    let status = (await decide(a, token)).status;
    assert.equal(status, 200);
    assert.equal((await push(b, await set('session-revoked'))).status, 202);
    for (let i = 0; i < 100 && status !== 401; i++) {
      status = (await decide(a, token)).status;
      if (status !== 401) await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(status, 401);
  });
});
