// The `signals:` section: transmitters bound to a configured trust, secrets from the environment only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig, ConfigError } from '../../src/config/load.ts';

const base = `
trusts:
  - { name: ci, kind: oidc, issuer: https://ci.example, jwks_uri: https://ci.example/jwks, audiences: [portcullis], identity: "workload:github/{repository}" }
`;
const tx = (extra = '', trust = 'ci') => `${base}signals:
  receiver:
    transmitters:
      - { name: idp, issuer: https://idp.example, jwks: { keys: [{ kty: EC, crv: P-256, x: AAAA, y: BBBB }] }, trust: ${trust}, push_auth: { bearer_env: PUSH }${extra} }
`;
const env = { PUSH: 'a-push-secret-of-enough-length' };

const fails = (yaml: string, field: string, e: NodeJS.ProcessEnv = env) =>
  assert.throws(() => parseConfig(yaml, '/tmp', e), (err: unknown) => err instanceof ConfigError && (err as ConfigError & { extra: { field?: string } }).extra.field === field);

test('signals config: a transmitter is bound to a configured trust, with its push secret from the environment', () => {
  const { config } = parseConfig(tx(), '/tmp', env);
  const t = config.signals!.receiver!.transmitters[0]!;
  assert.equal(t.trust, 'ci');
  assert.equal(t.bearer, env.PUSH);
  assert.deepEqual(t.algorithms, ['RS256', 'ES256', 'EdDSA']);
  assert.equal(config.signals!.receiver!.max_age_ms, 3_600_000);
});

test('signals config: unknown trust, missing or inline secret, symmetric algorithms and two key sources are refused naming the field', () => {
  fails(tx('', 'nope'), 'signals.receiver.transmitters[0].trust');
  fails(tx(), 'signals.receiver.transmitters[0].push_auth.bearer_env', {});
  fails(tx(', algorithms: [HS256]'), 'signals.receiver.transmitters[0].algorithms[0]');
  fails(tx(', jwks_uri: https://idp.example/jwks'), 'signals.receiver.transmitters[0]');
  fails(`${base}signals:\n  transmitter:\n    receivers:\n      - { name: r, endpoint: http://receiver.example/events, audience: r }\n`, 'signals.transmitter.receivers[0].endpoint');
  fails(`${base}signals:\n  transmitter:\n    receivers:\n      - { name: r, endpoint: https://receiver.example/events, audience: r, bearer: inline-secret }\n`, 'signals.transmitter.receivers[0].bearer');
});
