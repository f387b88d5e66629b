import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidInput } from '../../src/common/errors.ts';
import { validateTargets } from '../../src/credentials/config.ts';

const pg = {
  name: 'orders-db', kind: 'postgres', host: 'db', port: 5432, database: 'orders',
  admin: { user: 'portcullis', password_env: 'ORDERS_PW' }, permissions: { readonly: 'readonly' }, max_ttl: '1h',
};

function fieldOf(raw: unknown[]): string | undefined {
  try {
    validateTargets(raw);
  } catch (e) {
    assert.ok(e instanceof InvalidInput, String(e));
    return e.extra.field as string;
  }
  return undefined;
}

test('valid targets of every kind, with defaults', () => {
  const t = validateTargets([
    pg,
    { name: 'web', kind: 'ssh', hosts: ['web-1'], principals: { 'user:*': ['ops'] }, max_ttl: '8h' },
    { name: 'orders-api', kind: 'api', audience: 'https://orders', scopes: ['orders:read'], max_ttl: '15m' },
    { name: 'svid', kind: 'spiffe-x509', trust_domain: 'prod.example.org', max_ttl: '1h' },
  ]);
  assert.deepEqual(t[0], {
    name: 'orders-db', kind: 'postgres', host: 'db', port: 5432, database: 'orders', admin: { user: 'portcullis', password_env: 'ORDERS_PW' },
    permissions: { readonly: { preset: 'readonly', schemas: ['public'] } }, max_ttl_ms: 3_600_000, default_ttl_ms: 900_000, connection_limit: 5,
    timeouts: { connect_ms: 5000, statement_ms: 10_000, idle_in_transaction_ms: 10_000, keepalive_ms: 10_000 },
  });
  assert.equal(t[0]!.kind === 'postgres' && t[0].connection_limit, 5);
  assert.deepEqual(t[1]!.kind === 'ssh' && t[1].extensions, ['permit-pty']);
  assert.equal(t[2]!.kind === 'api' && t[2].max_delegation_depth, 3);
});

test('errors name the offending path', () => {
  assert.equal(fieldOf([{ ...pg, permissions: { readonly: 'everything' } }]), 'targets[0].permissions.readonly');
  assert.equal(fieldOf([{ ...pg, permissions: { custom: ['DROP TABLE orders'] } }]), 'targets[0].permissions.custom[0]');
  assert.equal(fieldOf([{ ...pg, permissions: { custom: ['GRANT SELECT ON t TO {{role}}; DROP TABLE t'] } }]), 'targets[0].permissions.custom[0]');
  // A permission set grants to the lease's role only, and nothing the lease could pass on (review, item 8.9).
  for (const bad of [
    'GRANT SELECT ON t TO {{role}} WITH GRANT OPTION', 'GRANT SELECT ON t TO {{role}}, probe', 'GRANT SELECT ON t TO probe, {{role}}',
    'GRANT {{role}} TO probe', 'GRANT app_reader TO {{role}} WITH ADMIN OPTION', 'GRANT SELECT ON t TO {{role}} GRANTED BY postgres',
    'GRANT SELECT ON t TO {{role}} -- ', 'GRANT SELECT ON t TO {{role}} /* x */', 'GRANT SELECT ON t TO {{role}}\nWITH GRANT OPTION',
    'GRANT SELECT ON {{role}}_t TO {{role}}', 'grant select on t to {{role}} with admin option',
  ]) {
    assert.equal(fieldOf([{ ...pg, permissions: { custom: [bad] } }]), 'targets[0].permissions.custom[0]', bad);
  }
  for (const good of ['GRANT SELECT ON public.orders TO {{role}}', 'grant usage, create on schema app to {{role}}', 'GRANT SELECT (id, total) ON t TO {{role}} ', 'GRANT app_reader TO {{role}}']) {
    assert.doesNotThrow(() => validateTargets([{ ...pg, permissions: { custom: [good] } }]), good);
  }
  assert.equal(fieldOf([{ ...pg, admin: { user: 'x', password: 'hunter2' } }]), 'targets[0].admin.password');
  assert.equal(fieldOf([{ ...pg, admin: { user: 'x', password_env: 'not valid' } }]), 'targets[0].admin.password_env');
  assert.equal(fieldOf([pg, { ...pg, name: 'other-db', default_ttl: '2h' }]), 'targets[1].default_ttl');
  assert.equal(fieldOf([pg, pg]), 'targets[1].name');
  assert.equal(fieldOf([{ ...pg, kind: 'mysql' }]), 'targets[0].kind');
  assert.equal(fieldOf([{ ...pg, port: 70000 }]), 'targets[0].port');
  assert.equal(fieldOf([{ ...pg, extra: 1 }]), 'targets[0].extra');
  assert.equal(fieldOf([{ name: 'w', kind: 'ssh', hosts: ['h'], principals: { 'user:*': ['ops'] }, max_ttl: '1h', extensions: ['permit-everything'] }]), 'targets[0].extensions[0]');
  assert.equal(fieldOf([{ name: 'w', kind: 'ssh', hosts: ['h'], principals: { 'user:*': ['o ps'] }, max_ttl: '1h' }]), 'targets[0].principals.user:*[0]');
  assert.equal(fieldOf([{ name: 'a', kind: 'api', audience: 'x', scopes: ['a b'], max_ttl: '1m' }]), 'targets[0].scopes[0]');
  assert.equal(fieldOf([{ name: 'a', kind: 'api', audience: 'x', scopes: ['a'], max_ttl: '2h' }]), 'targets[0].max_ttl');
  assert.equal(fieldOf([{ name: 's', kind: 'spiffe-x509', trust_domain: 'Bad Domain', max_ttl: '1h' }]), 'targets[0].trust_domain');
  assert.equal(fieldOf([{ ...pg, max_ttl: 'forever' }]), 'targets[0].max_ttl');
});

test('postgres timeouts and on_revoke: validated, errors name the field', () => {
  const base = { name: 'db', kind: 'postgres', host: 'h', database: 'd', admin: { user: 'u', password_env: 'P' }, max_ttl: '1h' };
  const [t] = validateTargets([{ ...base, permissions: { k: { statements: ['GRANT SELECT ON t TO {{role}}'], on_revoke: 'keep_objects' }, r: 'readonly' }, timeouts: { statement: '2s', connect: '500ms' } }]);
  assert.ok(t!.kind === 'postgres');
  assert.deepEqual(t.timeouts, { connect_ms: 500, statement_ms: 2000, idle_in_transaction_ms: 10_000, keepalive_ms: 10_000 });
  assert.equal(t.permissions.k!.on_revoke, 'keep_objects');
  assert.equal(t.permissions.r!.on_revoke, undefined, 'default: drop');
  assert.throws(() => validateTargets([{ ...base, permissions: { r: { preset: 'readonly', on_revoke: 'reassign_to_admin' } } }]), /targets\[0\]\.permissions\.r\.on_revoke/);
  assert.throws(() => validateTargets([{ ...base, permissions: { r: 'readonly' }, timeouts: { statement: '0s' } }]), /targets\[0\]\.timeouts\.statement/);
  assert.throws(() => validateTargets([{ ...base, permissions: { r: 'readonly' }, timeouts: { hang: '1s' } }]), /targets\[0\]\.timeouts\.hang: unknown field/);
});
