// Human sign-in across two replicas (two brokers in this process over one PostgreSQL store, a real
// OpenID provider): a login started on A completes on B and only once, two replicas completing
// the same state at once let exactly one through, a device login started on A is polled and
// completed on B; the pending state in the database holds neither the state nor the nonce in clear.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { parseConfig } from '../../src/config/load.ts';
import { serve } from '../../src/cli/serve.ts';
import type { Running } from '../../src/cli/serve.ts';
import { Browser, CLIENT_ID, CLIENT_SECRET, startIdp } from '../access/idp.ts';
import type { Account, Idp } from '../access/idp.ts';
import { adminClient, freshStoreUrl } from '../store/pg.ts';
import { witnessUrl } from '../store/stores.ts';
import type { Json } from '../json.ts';
import { call } from '../cluster/harness.ts';

const REDIRECT = 'http://127.0.0.1:53682/callback';
const ACCOUNTS: Account[] = [
  { sub: 'u-alice', email: 'alice@example.com', password: 'alice-pw', otp: '111111', groups: ['engineering'] },
  { sub: 'u-bob', email: 'bob@example.com', password: 'bob-pw', otp: '222222', groups: ['dba'] },
  { sub: 'u-carol', email: 'carol@example.com', password: 'carol-pw', otp: '333333', groups: ['dba'] },
];
const ANALYTICS = { type: 'Database', id: 'analytics' };

describe('human sign-in across two replicas over one PostgreSQL store', { timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'pcx-sso-replicas-'));
  let idp: Idp;
  let a: Running;
  let b: Running;
  let db: pg.Client;

  /** Starts a code login on `r` and signs in at the provider; returns the redirect's parameters. */
  const authorize = async (r: Running, email: string): Promise<{ started: Json; back: URLSearchParams }> => {
    const started = await call(r, 'GET', `/v1/auth/login?${new URLSearchParams({ redirect_uri: REDIRECT })}`);
    assert.equal(started.status, 200, JSON.stringify(started.body));
    const account = ACCOUNTS.find((x) => x.email === email)!;
    const back = await new Browser().authorize(started.body.url as string, REDIRECT, { email, password: account.password });
    assert.equal(back.get('state'), started.body.state);
    return { started: started.body, back };
  };
  const callback = (r: Running, back: URLSearchParams) =>
    call(r, 'POST', '/v1/auth/callback', { state: back.get('state'), code: back.get('code'), ...(back.get('iss') && { iss: back.get('iss') }) });
  const pendingRows = async () => (await db.query<{ handle: string; kind: string; data: Buffer }>('SELECT handle, kind, data FROM identity_login_state')).rows;

  before(async () => {
    idp = await startIdp(ACCOUNTS, [REDIRECT]);
    const url = await freshStoreUrl();
    mkdirSync(join(dir, 'policies'));
    writeFileSync(join(dir, 'policies', 'main.cedar'), 'permit (principal, action == Action::"db.select", resource == Database::"analytics");\n');
    const yaml = `
listen: { host: "127.0.0.1", port: 0 }
data_dir: ./data
public_url: http://portcullis.replicas.test   # one issuer for both (behind one load balancer)
store: { kind: postgres, url_env: PCX_STORE_URL, pool: 4 }
boundaries: [application, platform]
trusts:
  - name: sso
    kind: oidc-human
    issuer: ${idp.issuer}
    client_id: ${CLIENT_ID}
    client_secret_env: SSO_CLIENT_SECRET
    redirect_uris: ['http://127.0.0.1/callback']
    scopes: [openid, email, groups]
    algorithms: [RS256]
    groups_claim: groups
    boundary: application
    environment: prod
resources:
  - { type: Database, id: analytics, boundary: application, environment: prod }
policies: ./policies
session: { ttl: 10m }
audit: { fail_closed: true, checkpoint_every: 5, witness: { url: "${await witnessUrl()}" } }
outbound: { allow_private: [127.0.0.0/8, "::1/128"] }
`;
    writeFileSync(join(dir, 'portcullis.yaml'), yaml);
    const env = { PCX_STORE_URL: url, SSO_CLIENT_SECRET: CLIENT_SECRET, PORTCULLIS_MASTER_KEY: Buffer.alloc(32, 7).toString('base64') };
    const loaded = parseConfig(yaml, dir, { ...process.env, ...env });
    // Two replicas of one configuration: each its own broker, listener and pool, one database.
    a = await serve(loaded, { quiet: true, env });
    b = await serve(loaded, { quiet: true, env });
    db = await adminClient(new URL(url).pathname.slice(1));
  });
  after(async () => {
    await db?.end();
    await b?.stop();
    await a?.stop();
    await idp?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a login started on A completes on B, once; the session decides on A; nothing secret is stored in clear', async () => {
    const { started, back } = await authorize(a, 'alice@example.com');
    // While it is pending: one row, keyed by a digest, sealed — no state, no nonce in clear.
    const nonce = new URL(started.url as string).searchParams.get('nonce')!;
    const rows = await pendingRows();
    assert.equal(rows.length, 1);
    assert.equal(rows[0]!.kind, 'code');
    for (const clear of [started.state as string, nonce]) {
      assert.ok(!rows[0]!.handle.includes(clear), 'the handle column is not the state');
      assert.ok(!rows[0]!.data.toString('latin1').includes(clear), 'the sealed data holds nothing in clear');
    }
    const done = await callback(b, back);
    assert.equal(done.status, 200, JSON.stringify(done.body));
    assert.equal((done.body.identity as Json).id, 'user:alice@example.com');
    assert.equal((await pendingRows()).length, 0, 'taken');
    // The state was used: neither replica completes it again.
    assert.equal((await callback(a, back)).status, 401);
    assert.equal((await callback(b, back)).status, 401);
    // The session made on B is a session on A.
    const decided = await call(a, 'POST', '/v1/authorize', { action: 'db.select', resource: ANALYTICS }, done.body.session_token as string);
    assert.equal(decided.status, 200, JSON.stringify(decided.body));
    assert.equal(decided.body.decision, 'allow');
    // The audit trail names the login, never its state or nonce.
    const leaked = await db.query('SELECT count(*)::int AS n FROM audit_events WHERE payload LIKE $1 OR payload LIKE $2', [`%${started.state as string}%`, `%${nonce}%`]);
    assert.equal(leaked.rows[0].n, 0);
  });

  it('two replicas completing the same state at once: exactly one signs in', async () => {
    for (let i = 0; i < 3; i++) {
      const { back } = await authorize(i % 2 ? b : a, 'bob@example.com');
      const answers = await Promise.all([callback(a, back), callback(b, back)]);
      assert.deepEqual(answers.map((x) => x.status).sort(), [200, 401], JSON.stringify(answers.map((x) => x.body)));
    }
    assert.equal((await pendingRows()).length, 0);
  });

  it('a device login started on A is polled and completed on B, once', async () => {
    const started = await call(a, 'POST', '/v1/auth/device', {});
    assert.equal(started.status, 200, JSON.stringify(started.body));
    const handle = started.body.handle as string;
    const rows = await pendingRows();
    assert.deepEqual(rows.map((r) => r.kind), ['device']);
    assert.ok(!rows[0]!.handle.includes(handle) && !rows[0]!.data.toString('latin1').includes(handle));
    const pending = await call(b, 'POST', '/v1/auth/device/poll', { handle });
    assert.deepEqual(pending.body, { status: 'pending', interval: started.body.interval });
    const page = await new Browser().approveDevice(started.body.verification_uri_complete as string, { email: 'carol@example.com', password: 'carol-pw' });
    assert.match(page, /Sign-in Success/);
    const done = await call(b, 'POST', '/v1/auth/device/poll', { handle });
    assert.equal(done.status, 200, JSON.stringify(done.body));
    assert.equal(done.body.status, 'complete');
    assert.equal((done.body.identity as Json).id, 'user:carol@example.com');
    assert.equal((await call(a, 'POST', '/v1/auth/device/poll', { handle })).status, 401, 'used: not on the other replica either');
    assert.equal((await pendingRows()).length, 0);
  });
});
