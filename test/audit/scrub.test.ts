import { test } from 'node:test';
import assert from 'node:assert/strict';
import { scrub, isSecretKey, looksLikeSecret, REDACTED } from '../../src/audit/scrub.ts';
import { AuditLog } from '../../src/audit/log.ts';
import { auditStore, tempStore } from './helpers.ts';

test('redacts values under secret-looking keys, in any case style and depth', () => {
  const input = {
    password: 'hunter2',
    db_password: 'x',
    userPassword: 'x',
    token: 'abc',
    access_token: 'abc',
    refreshToken: 'abc',
    api_key: 'k',
    apiKey: 'k',
    private_key: 'pk',
    privateKey: { d: 'pk' },
    client_secret: 's',
    Authorization: 'Basic Zm9v',
    nested: { list: [{ secret: 's', ok: 1 }] },
    pwd: 'p',
  };
  const { value, redacted } = scrub(input);
  assert.deepEqual(value, {
    password: REDACTED,
    db_password: REDACTED,
    userPassword: REDACTED,
    token: REDACTED,
    access_token: REDACTED,
    refreshToken: REDACTED,
    api_key: REDACTED,
    apiKey: REDACTED,
    private_key: REDACTED,
    privateKey: REDACTED,
    client_secret: REDACTED,
    Authorization: REDACTED,
    nested: { list: [{ secret: REDACTED, ok: 1 }] },
    pwd: REDACTED,
  });
  assert.equal(redacted.length, 14);
  assert.equal(input.password, 'hunter2', 'input is not modified');
});

test('keeps fingerprints, ids, kinds and counts', () => {
  for (const k of ['token_fingerprint', 'key_fingerprint', 'token_id', 'api_key_id', 'kid', 'token_type', 'credential_kind', 'secret_name', 'token_count', 'password_changed_at', 'apikey_prefix', 'spinner', 'footprint']) {
    assert.equal(isSecretKey(k), false, k);
  }
  assert.equal(isSecretKey('credential'), true);
  assert.equal(isSecretKey('password_hash'), true);
});

test('redacts secret-shaped values whatever the key', () => {
  const jwt = 'eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl';
  for (const v of [
    'pcx_live_0123456789abcdef',
    jwt,
    '-----BEGIN PRIVATE KEY-----\nMC4CAQ...',
    '-----BEGIN EC PRIVATE KEY-----',
    `Bearer ${jwt}`,
    'postgres://app:s3cr3t@db:5432/x',
    'ghp_0123456789abcdefghij',
    'AKIA0123456789ABCDEF',
  ]) {
    assert.equal(looksLikeSecret(v), true, v);
  }
  for (const v of ['workload:github/acme/api', 'SHA256:abcd', 'postgres://db:5432/x', 'pcx_', 'deny']) {
    assert.equal(looksLikeSecret(v), false, v);
  }
  const { value } = scrub({ note: jwt, list: ['ok', 'pcx_live_0123456789abcdef'] });
  assert.deepEqual(value, { note: REDACTED, list: ['ok', REDACTED] });
});

test('no secret value reaches the store through append', async () => {
  const s = tempStore();
  try {
    const log = new AuditLog(auditStore(s.db));
    const rec = await log.append({
      stream: 'authn',
      type: 'authn.failure',
      actor: 'anonymous',
      subject: 'pcx_live_0123456789abcdef',
      payload: { reason: 'bad_signature', token: 'eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln', api_key: 'pcx_live_x', raw: Buffer.from('k') },
    });
    assert.equal(rec.subject, REDACTED);
    assert.deepEqual(rec.payload, { reason: 'bad_signature', token: REDACTED, api_key: REDACTED, raw: REDACTED });
    const dump = JSON.stringify(s.db.prepare('SELECT * FROM audit_events').all());
    assert.equal(dump.includes('pcx_live'), false);
    assert.equal(dump.includes('eyJ'), false);
    await log.close();
  } finally {
    s.cleanup();
  }
});
