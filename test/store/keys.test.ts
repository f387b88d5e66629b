// The crypto domain's storage ports (src/crypto/ports.ts) over both stores: sealed values kept once,
// signing keys and their lifecycle, SPIFFE CA generations, the keyring's keys sealed at rest, and
// two replicas racing to create the first keys and secrets, to rotate, and to make a CA generation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Store } from '../../src/store/index.ts';
import { PostgresStore } from '../../src/store/postgres/index.ts';
import { Keyring } from '../../src/crypto/keyring.ts';
import type { KeyPurpose } from '../../src/crypto/keyring.ts';
import { MasterKeyError } from '../../src/crypto/masterkey.ts';
import type { StoredKey } from '../../src/crypto/ports.ts';
import { SpiffeCaStore } from '../../src/credentials/spiffe-ca.ts';
import { ManualClock } from '../../src/common/clock.ts';
import { forEachStore } from './stores.ts';
import { freshStoreUrl } from './pg.ts';
import { withReplicas } from './replicas.ts';


function key(kid: string, purpose: string, over: Partial<StoredKey> = {}): StoredKey {
  return {
    kid, purpose, alg: 'EdDSA', publicJwk: { kty: 'OKP', crv: 'Ed25519', x: kid, kid }, privateSealed: new Uint8Array([1, 2, 3, 0, 255]),
    createdAt: 1000, supersededAt: null, retireAt: null, ...over,
  };
}

const PURPOSES: readonly KeyPurpose[] = ['session', 'audit', 'token'];

async function activeKids(store: Store, purpose: string): Promise<string[]> {
  return (await store.keys.signingKeys.list()).filter((k) => k.purpose === purpose && k.supersededAt === null).map((k) => k.kid);
}

forEachStore('sealed values: the first value of a name is kept; secrets and meta are apart', async (open) => {
  const { secrets, meta } = (await open()).keys;
  assert.equal(await secrets.get('pepper'), undefined);
  assert.equal(await secrets.insertIfAbsent('pepper', new Uint8Array([1, 0, 2]), 5), true);
  assert.equal(await secrets.insertIfAbsent('pepper', new Uint8Array([9]), 6), false);
  const got = await secrets.get('pepper');
  assert.ok(got instanceof Uint8Array);
  assert.deepEqual([...got], [1, 0, 2]);
  assert.equal(await meta.get('pepper'), undefined, 'meta is its own table');
  assert.equal(await meta.insertIfAbsent('pepper', new Uint8Array([7]), 5), true);
  assert.deepEqual([...(await meta.get('pepper'))!], [7]);
  assert.deepEqual([...(await secrets.get('pepper'))!], [1, 0, 2]);
});

forEachStore('signing keys: active per purpose, supersede, erase retired private halves, public keys kept', async (open) => {
  const { signingKeys: keys } = (await open()).keys;
  assert.equal(await keys.active('token'), undefined);
  await keys.insert(key('t1', 'token', { createdAt: 1 }));
  await keys.insert(key('s1', 'session', { createdAt: 2 }));
  assert.deepEqual(await keys.active('token'), key('t1', 'token', { createdAt: 1 }), 'a key reads back as written (bytes, JWK, nulls)');
  await keys.supersede('t1', 10, 100);
  await keys.insert(key('t2', 'token', { createdAt: 10 }));
  assert.equal((await keys.active('token'))?.kid, 't2');
  const t1 = (await keys.list()).find((k) => k.kid === 't1')!;
  assert.deepEqual([t1.supersededAt, t1.retireAt], [10, 100]);
  assert.equal(await keys.eraseRetired(99), 0);
  assert.equal(await keys.eraseRetired(100), 1, 'retire_at at or before now');
  assert.equal(await keys.eraseRetired(200), 0, 'already erased');
  const after = await keys.list();
  assert.equal(after.find((k) => k.kid === 't1')!.privateSealed, null);
  assert.ok(after.find((k) => k.kid === 't2')!.privateSealed !== null);
  assert.deepEqual((await keys.publicKeys('token')).map((k) => k.kid).sort(), ['t1', 't2'], 'retired keys still verify old signatures');
  assert.deepEqual((await keys.publicKeys('token')).find((k) => k.kid === 't1')?.publicJwk, key('t1', 'token').publicJwk);
  assert.deepEqual(await keys.publicKeys('audit'), []);
  await assert.rejects(keys.insert(key('t2', 'audit')), 'a kid is unique');
});

forEachStore('SPIFFE CA generations: newest first per trust domain; a taken generation is refused', async (open) => {
  const { spiffeCa } = (await open()).keys;
  const gen = (td: string, generation: number) => ({
    trustDomain: td, generation, rootPem: `root ${generation}`, intermediatePem: `int ${generation}`,
    intermediateKeySealed: new Uint8Array([generation, 0, 9]), createdAt: generation * 10, notAfter: generation * 1000,
  });
  assert.equal(await spiffeCa.insert(gen('a.example', 1)), true);
  assert.equal(await spiffeCa.insert(gen('a.example', 2)), true);
  assert.equal(await spiffeCa.insert(gen('b.example', 1)), true);
  assert.equal(await spiffeCa.insert({ ...gen('a.example', 2), rootPem: 'other' }), false);
  const gens = await spiffeCa.generations('a.example');
  assert.deepEqual(gens.map((g) => [g.generation, g.rootPem]), [[2, 'root 2'], [1, 'root 1']]);
  assert.deepEqual(gens[0], { ...gen('a.example', 2), intermediateKeySealed: gens[0]!.intermediateKeySealed });
  assert.deepEqual([...gens[0]!.intermediateKeySealed], [2, 0, 9]);
  assert.deepEqual(await spiffeCa.generations('c.example'), []);
});

forEachStore('the keyring over the store: private halves and secrets sealed at rest; another replica with the master key verifies, a wrong one is refused', async (open, kind) => {
  await withReplicas(kind, open, async (a, b) => {
    const master = randomBytes(32);
    const ring = await Keyring.open(a, { masterKey: master, clock: new ManualClock() });
    const stored = await a.keys.signingKeys.list();
    assert.equal(stored.length, 3, 'one key per purpose, made on open');
    const pkcs8Prefix = Buffer.from('302e020100300506032b657004220420', 'hex');
    const blobs = [...stored.map((k) => k.privateSealed!), (await a.keys.secrets.get('apikey-pepper'))!, (await a.keys.meta.get('master_check'))!];
    for (const blob of blobs) {
      const buf = Buffer.from(blob);
      assert.equal(buf.indexOf(pkcs8Prefix), -1, 'no PKCS#8 private key in clear');
      assert.equal(buf.indexOf(master), -1, 'the master key never reaches the store');
    }
    assert.equal(Buffer.from(blobs[1]!).indexOf(Buffer.from(ring.secret('apikey-pepper'))), -1, 'the secret is sealed');
    const jwt = await ring.signJwt('token', { sub: 'x' });
    const other = await Keyring.open(b, { masterKey: master, clock: new ManualClock() });
    const kid = (JSON.parse(Buffer.from(jwt.split('.')[0]!, 'base64url').toString()) as { kid: string }).kid;
    assert.ok(other.verificationKey(kid, 'token'), 'the other replica knows the key that signed');
    assert.deepEqual(other.secret('apikey-pepper'), ring.secret('apikey-pepper'));
    await assert.rejects(Keyring.open(b, { masterKey: randomBytes(32) }), MasterKeyError);
  });
});

forEachStore('two replicas opening the keyring at once: one active key per purpose, one value per secret', async (open, kind) => {
  await withReplicas(kind, open, async (a, b) => {
    const master = randomBytes(32);
    const rings = await Promise.all([a, b, a, b].map((s) => Keyring.open(s, { masterKey: master, clock: new ManualClock() })));
    const stored = await a.keys.signingKeys.list();
    assert.equal(stored.length, 3, 'three keys in all: nobody made a second set');
    for (const p of PURPOSES) {
      const kids = await activeKids(b, p);
      assert.equal(kids.length, 1, `one active ${p} key`);
      for (const r of rings) assert.equal(r.activeKey(p).kid, kids[0], `every keyring signs ${p} with it`);
    }
    for (const r of rings) assert.deepEqual(r.secret('apikey-pepper'), rings[0]!.secret('apikey-pepper'), 'one pepper for all');
    for (const r of rings) assert.deepEqual(r.secret('ssh-user-ca'), rings[0]!.secret('ssh-user-ca'));
  });
});

forEachStore('rotations on two replicas at once: exactly one active key, each rotation supersedes a different key', async (open, kind) => {
  await withReplicas(kind, open, async (a, b) => {
    const master = randomBytes(32);
    const clock = new ManualClock();
    const ra = await Keyring.open(a, { masterKey: master, clock });
    const rb = await Keyring.open(b, { masterKey: master, clock });
    const first = ra.activeKey('token').kid;
    const results = await Promise.all([ra, rb, ra, rb, ra, rb].map((r) => r.rotate('token')));
    const active = await activeKids(a, 'token');
    assert.equal(active.length, 1, 'exactly one active token key');
    assert.equal((await a.keys.signingKeys.list()).filter((k) => k.purpose === 'token').length, 7);
    // A chain: every key but the last was superseded by exactly one rotation.
    const previous = results.map((r) => r.previous?.kid);
    assert.equal(new Set(previous).size, 6, 'no key superseded twice');
    assert.deepEqual(previous.sort(), [first, ...results.map((r) => r.active.kid).filter((k) => k !== active[0])].sort());
    assert.equal((await activeKids(a, 'session')).length, 1, 'other purposes untouched');
    // #10: until the coordinator's notifications, a replica sees another's rotation at its refresh.
    await Promise.all([ra.refresh(), rb.refresh()]);
    assert.equal(ra.activeKey('token').kid, active[0]);
    assert.equal(rb.activeKey('token').kid, active[0]);
  });
});

forEachStore('two replicas making a trust domain\'s first SPIFFE CA at once: one generation, one root', async (open, kind) => {
  await withReplicas(kind, open, async (a, b) => {
    const master = randomBytes(32);
    const clock = new ManualClock();
    const [ca, cb] = [SpiffeCaStore.open(a, master, clock), SpiffeCaStore.open(b, master, clock)];
    const [x, y] = await Promise.all([ca.ensure('race.example'), cb.ensure('race.example')]);
    assert.equal((await a.keys.spiffeCa.generations('race.example')).length, 1);
    assert.equal(x.root.toString('pem'), y.root.toString('pem'), 'both serve the stored generation');
  });
});

test('PostgreSQL refuses a second active key for a purpose (a writer that skipped the keyring lock)', async () => {
  const store = await PostgresStore.open(await freshStoreUrl(), { pool: 2 });
  try {
    const keys = store.keys.signingKeys;
    await keys.insert(key('t1', 'token'));
    await assert.rejects(keys.insert(key('t2', 'token')), /crypto_keys_one_active/);
    await keys.insert(key('s1', 'session'));
    // Rotation order (supersede, then insert) inside one transaction passes.
    await store.transaction(async () => {
      await keys.supersede('t1', 5, 10);
      await keys.insert(key('t3', 'token'));
    });
    assert.equal((await keys.active('token'))?.kid, 't3');
  } finally {
    await store.close();
  }
});
