// Discovery (#14): RFC 8414 authorization-server metadata and the OpenID discovery path, with only
// what the server really has (the RFC 8693 token endpoint, its grant type, the JWKS of the tokens
// it signs), the issuer being the URL clients reach it at (`public_url` when set). A standard
// client, openid-client, finds everything by the issuer URL and exchanges a token with it.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness } from './harness.ts';
import type { Harness } from './harness.ts';

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';

/** openid-client (a devDependency): loaded by name so the suite still says why when it is missing. */
async function openidClient(): Promise<Record<string, unknown> | undefined> {
  const name = 'openid-client';
  try {
    return (await import(name)) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

describe('discovery: RFC 8414 and the OpenID discovery path', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(() => h.close());

  it('both documents name the issuer, the token endpoint, token exchange and the JWKS — nothing the server lacks', async () => {
    for (const path of ['/.well-known/oauth-authorization-server', '/.well-known/openid-configuration']) {
      const r = await h.get(path);
      assert.equal(r.status, 200, path);
      assert.equal(r.body.issuer, h.url);
      assert.equal(r.body.token_endpoint, `${h.url}/oauth2/token`);
      assert.equal(r.body.jwks_uri, `${h.url}/.well-known/jwks.json`);
      assert.deepEqual(r.body.grant_types_supported, [TOKEN_EXCHANGE]);
      assert.deepEqual(r.body.token_endpoint_auth_methods_supported, ['none']);
      assert.deepEqual(r.body.response_types_supported, []);
      for (const absent of ['authorization_endpoint', 'userinfo_endpoint', 'id_token_signing_alg_values_supported', 'introspection_endpoint']) assert.equal(r.body[absent], undefined, `${path}: ${absent}`);
    }
    const jwks = await h.get('/.well-known/jwks.json');
    assert.ok(jwks.body.keys.length >= 1);
  });

  it('the endpoints it names work: the token endpoint exchanges a workload JWT', async () => {
    const meta = (await h.get('/.well-known/oauth-authorization-server')).body;
    const res = await fetch(meta.token_endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: TOKEN_EXCHANGE, subject_token: await h.ciToken(), subject_token_type: 'urn:ietf:params:oauth:token-type:jwt' }),
    });
    assert.equal(res.status, 200);
    const token = (await res.json()) as { access_token: string };
    assert.equal(JSON.parse(Buffer.from(token.access_token.split('.')[1]!, 'base64url').toString()).iss, meta.issuer);
  });

  it('openid-client discovers everything by the issuer URL (RFC 8414 and OpenID paths) and exchanges a token', async (t) => {
    const oc = await openidClient();
    if (!oc) return t.skip('openid-client is not installed (npm install --save-dev openid-client)');
    type Config = { serverMetadata(): Record<string, unknown> };
    const discovery = oc.discovery as (server: URL, clientId: string, metadata?: unknown, auth?: unknown, options?: unknown) => Promise<Config>;
    const None = oc.None as () => unknown;
    const insecure = oc.allowInsecureRequests; // the test server is plain HTTP on loopback
    for (const algorithm of ['oauth2', 'oidc'] as const) {
      const config = await discovery(new URL(h.url), 'a-workload', undefined, None(), { algorithm, execute: [insecure] });
      const m = config.serverMetadata();
      assert.equal(m.issuer, h.url, algorithm);
      assert.equal(m.token_endpoint, `${h.url}/oauth2/token`);
      assert.equal(m.jwks_uri, `${h.url}/.well-known/jwks.json`);
      assert.ok((m.grant_types_supported as string[]).includes(TOKEN_EXCHANGE));
      const grant = oc.genericGrantRequest as (c: Config, grantType: string, params: Record<string, string>) => Promise<{ access_token: string; issued_token_type?: string }>;
      const tokens = await grant(config, TOKEN_EXCHANGE, { subject_token: await h.ciToken(), subject_token_type: 'urn:ietf:params:oauth:token-type:jwt' });
      assert.ok(tokens.access_token.split('.').length === 3, algorithm);
    }
  });
});

describe('discovery behind a load balancer: the issuer is public_url', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness('public_url: https://portcullis.example.com\n');
  });
  after(() => h.close());

  it('every URL in the documents is under public_url', async () => {
    for (const path of ['/.well-known/oauth-authorization-server', '/.well-known/openid-configuration', '/.well-known/authzen-configuration']) {
      const r = await h.get(path);
      assert.equal(r.status, 200);
      for (const [k, v] of Object.entries(r.body as Record<string, unknown>)) {
        if (typeof v === 'string' && /^https?:/.test(v)) assert.ok(v === 'https://portcullis.example.com' || v.startsWith('https://portcullis.example.com/'), `${path} ${k}: ${v}`);
      }
    }
    assert.equal((await h.get('/.well-known/oauth-authorization-server')).body.issuer, 'https://portcullis.example.com');
  });
});
