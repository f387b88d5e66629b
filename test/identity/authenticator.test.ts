import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ManualClock, nowSeconds } from '../../src/common/clock.ts';
import { openDatabase } from '../../src/store/sqlite/db.ts';
import { openKeyring } from '../crypto/helpers.ts';
import { OidcTrust } from '../../src/identity/trusts/oidc/oidc.ts';
import { ApiKeyService } from '../../src/identity/apikeys.ts';
import { SessionService } from '../../src/identity/sessions.ts';
import { Authenticator } from '../../src/identity/authenticator.ts';
import type { OidcTrustConfig } from '../../src/config/types.ts';
import type { Proof } from '../../src/identity/types.ts';
import { makeKey, sign, refused, identityStore } from './helpers.ts';

const clock = new ManualClock();
const ghKey = makeKey('gh', 'RS256');
const glKey = makeKey('gl', 'ES256');

function oidc(name: string, issuer: string, key: typeof ghKey, identity: string): OidcTrust {
  const cfg: OidcTrustConfig = {
    name, kind: 'oidc', issuer, jwks: { keys: [key.jwk] } as unknown as OidcTrustConfig['jwks'], audiences: ['portcullis'], algorithms: ['RS256', 'ES256'],
    require: {}, identity, identity_kind: 'workload', attributes: [], leeway_seconds: 30,
  };
  return new OidcTrust(cfg, { clock });
}

async function setup() {
  const db = openDatabase(':memory:');
  const keyring = await openKeyring(db, { masterKey: randomBytes(32), clock });
  const store = identityStore(db);
  const apikeys = ApiKeyService.open({ repository: store.apiKeys, unitOfWork: store.unitOfWork, keyring, clock });
  const sessions = SessionService.open({ repository: store.sessions, keyring, clock, issuer: 'https://broker.example' });
  const auth = new Authenticator(
    [oidc('github', 'https://token.actions.githubusercontent.com', ghKey, 'workload:github/{sub}'), oidc('gitlab', 'https://gitlab.example.com', glKey, 'workload:gitlab/{sub}'), apikeys.verifier()],
    { sessionIssuer: 'https://broker.example' },
  );
  return { auth, apikeys, sessions };
}

const claims = (iss: string, sub: string) => ({ iss, sub, aud: 'portcullis', iat: nowSeconds(clock), exp: nowSeconds(clock) + 60 });

test('authenticator: routes JWTs by issuer and API keys by type', async () => {
  const { auth, apikeys } = await setup();
  const a = await auth.authenticate({ type: 'jwt', token: sign(claims('https://token.actions.githubusercontent.com', 'acme'), ghKey) });
  assert.equal(a.identityId, 'workload:github/acme');
  assert.equal(a.facts.trust, 'github');
  const b = await auth.authenticate({ type: 'jwt', token: sign(claims('https://gitlab.example.com', 'acme'), glKey) });
  assert.equal(b.facts.trust, 'gitlab');
  const { key } = await apikeys.mint({ identityId: 'service-account:legacy' });
  const c = await auth.authenticate({ type: 'api_key', key });
  assert.deepEqual([c.identityId, c.facts.method, c.facts.assurance], ['service-account:legacy', 'api-key', 'low']);
});

test('authenticator: refusals — unknown issuer, cross-trust key, session tokens, oversized, junk proofs', async () => {
  const { auth, sessions } = await setup();
  await refused(auth.authenticate({ type: 'jwt', token: sign(claims('https://evil.example', 'acme'), ghKey) }), 'unknown_issuer');
  await refused(auth.authenticate({ type: 'jwt', token: sign({ ...claims('x', 'y'), iss: undefined }, ghKey) }), 'unknown_issuer');
  // GitHub's issuer with a token signed by GitLab's key (kid of GitLab).
  await refused(auth.authenticate({ type: 'jwt', token: sign(claims('https://token.actions.githubusercontent.com', 'acme'), glKey) }), 'unknown_kid');
  const s = await sessions.issue({ identityId: 'workload:github/acme', facts: { method: 'oidc', trust: 'github', mfa: false, assurance: 'high', auth_time: 1 } });
  await refused(auth.authenticate({ type: 'jwt', token: s.token }), 'wrong_token_type');
  await refused(auth.authenticate({ type: 'jwt', token: 'x'.repeat(20_000) }), 'token_too_large');
  await refused(auth.authenticate({ type: 'jwt', token: 'not-a-jwt' }), 'malformed');
  await refused(auth.authenticate({ type: 'x509', chain: [] }), 'malformed');
  await refused(auth.authenticate({ type: 'x509', chain: [new Uint8Array([1, 2, 3])] }), 'wrong_trust_domain');
  await refused(auth.authenticate({ type: 'kerberos' } as unknown as Proof), 'malformed');
  await refused(auth.authenticate(null as unknown as Proof), 'malformed');
  await refused(new Authenticator([]).authenticate({ type: 'api_key', key: 'pcx_x' }), 'no_trust');
  const [one, two] = [await setup(), await setup()];
  assert.throws(() => new Authenticator([one.apikeys.verifier(), two.apikeys.verifier()]), /two trusts/);
});
