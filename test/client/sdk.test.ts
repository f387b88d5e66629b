// Issue #14: the TypeScript SDK (packages/client). Its types are the current server's document
// (the committed generated file equals a fresh generation), it compiles against it (tsc, with
// type errors that must fire), and it talks to a real server: data, typed problem+json errors,
// the token endpoint's RFC 6749 errors, an unreachable server.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { startHarness } from '../integration/harness.ts';
import type { Harness } from '../integration/harness.ts';
import { PortcullisApiError, PortcullisConnectionError, createPortcullisClient, unwrap } from '../../packages/client/src/index.ts';
import { GENERATED, generate } from '../../packages/client/scripts/generate.ts';

const root = join(import.meta.dirname, '..', '..');

/** The rejection of a call, which must be one. */
async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  assert.fail('the call succeeded');
}

describe('@portcullis/client', () => {
  it('the committed generated types are those of the current server (run packages/client/scripts/generate.ts)', async () => {
    assert.equal(readFileSync(GENERATED, 'utf8'), await generate(), `${GENERATED} is out of date: node packages/client/scripts/generate.ts`);
  });

  // tsc over the package (node's types, the generated file): slow on a loaded machine, hence its own timeout.
  it('compiles against the document: real calls type-check, wrong paths, parameters and bodies do not', { timeout: 900_000 }, () => {
    const tsc = spawnSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '--noEmit', '-p', join(root, 'packages', 'client')], { encoding: 'utf8' });
    // Every @ts-expect-error in test-d/typed.ts must fire, or tsc reports it unused.
    assert.equal(tsc.status, 0, tsc.stdout + tsc.stderr);
  });

  describe('against a real server', () => {
    let h: Harness;
    before(async () => {
      h = await startHarness();
    });
    after(() => h.close());

    it('answers typed data with the session token (a string, or a function asked per call)', async () => {
      const admin = await h.admin();
      const client = createPortcullisClient({ baseUrl: `${h.url}/`, token: admin });
      const { identities } = await unwrap(client.GET('/v1/identities', { params: { query: { kind: 'workload' } } }));
      assert.ok(identities.some((i) => i.id === 'workload:github/acme/api'));
      let asked = 0;
      const lazy = createPortcullisClient({ baseUrl: h.url, token: () => (asked++, h.loginCi()) });
      const d = await unwrap(lazy.POST('/v1/authorize', { body: { action: 'db.select', resource: { type: 'Database', id: 'analytics' } } }));
      assert.ok(d.decision === 'allow' || d.decision === 'deny');
      assert.ok(d.decision_id.length > 0);
      assert.equal(asked, 1);
      const one = await unwrap(client.GET('/v1/identities/{id}', { params: { path: { id: 'workload:github/acme/api' } } }));
      assert.equal(one.boundary, 'application');
    });

    it('turns problem documents into PortcullisApiError with status, code, detail and field', async () => {
      const admin = await h.admin();
      const client = createPortcullisClient({ baseUrl: h.url, token: admin });
      const missing = await rejection(unwrap(client.GET('/v1/identities/{id}', { params: { path: { id: 'workload:nobody' } } })));
      assert.ok(missing instanceof PortcullisApiError);
      assert.equal(missing.status, 404);
      assert.equal(missing.code, 'not_found');
      assert.equal(missing.problem?.code, 'not_found');
      const bad = await rejection(unwrap(client.GET('/v1/identities', { params: { query: { status: 'sleeping' as 'active' } } })));
      assert.ok(bad instanceof PortcullisApiError);
      assert.equal(bad.status, 400);
      assert.equal(bad.code, 'invalid_input');
      assert.equal(bad.field, 'querystring.status');
      const anonymous = await rejection(unwrap(createPortcullisClient({ baseUrl: h.url }).GET('/v1/identities')));
      assert.ok(anonymous instanceof PortcullisApiError);
      assert.equal(anonymous.status, 401);
      assert.equal(anonymous.code, 'unauthenticated');
      assert.match(anonymous.message, /^401 unauthenticated: /);
    });

    it('the token endpoint: a form body, and RFC 6749 errors as PortcullisApiError.oauthError', async () => {
      const client = createPortcullisClient({ baseUrl: h.url });
      const form = (subject_token: string) => ({
        body: { grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange' as const, subject_token, subject_token_type: 'urn:ietf:params:oauth:token-type:jwt' as const },
        bodySerializer: (b: Record<string, string>) => new URLSearchParams(b).toString(),
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      const ok = await unwrap(client.POST('/oauth2/token', form(await h.ciToken())));
      assert.equal(ok.token_type, 'Bearer');
      assert.ok(ok.access_token.length > 20);
      const refused = await rejection(unwrap(client.POST('/oauth2/token', form('not-a-jwt'))));
      assert.ok(refused instanceof PortcullisApiError);
      assert.equal(refused.status, 400);
      assert.equal(refused.code, 'invalid_grant');
      assert.equal(refused.oauthError?.error, 'invalid_grant');
      assert.equal(refused.problem, undefined);
    });

    it('an unreachable server is a PortcullisConnectionError naming it', async () => {
      const client = createPortcullisClient({ baseUrl: 'http://127.0.0.1:9' });
      const err = await rejection(unwrap(client.GET('/healthz')));
      assert.ok(err instanceof PortcullisConnectionError, String(err));
      assert.match(err.message, /cannot reach Portcullis at http:\/\/127\.0\.0\.1:9/);
    });
  });
});
