// The pending-login repository's contract over both stores (identity.loginState): a login is taken
// once (two replicas taking it at once: exactly one gets it), device polls read without consuming
// and update the interval, expired logins are purged on write and never count against the bound,
// the bound holds across replicas — and what the domain stores is sealed, keyed by a digest.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { forEachStore } from './stores.ts';
import { withReplicas } from './replicas.ts';
import type { LoginStateKind, PendingLoginState } from '../../src/identity/ports.ts';
import { LoginStates } from '../../src/identity/login-state.ts';
import { AuthenticationFailed, Unavailable } from '../../src/common/errors.ts';
import type { Store } from '../../src/store/index.ts';
import { PostgresStore } from '../../src/store/postgres/index.ts';
import type { SqliteStore } from '../../src/store/sqlite/index.ts';

const entry = (handle: string, expiresAt: number, kind: LoginStateKind = 'code', data = Buffer.from(`data-${handle}`)): PendingLoginState => ({
  handle,
  kind,
  data: new Uint8Array(data),
  expiresAt,
});

forEachStore('login state: a login is taken once; the other flow does not see it; get and update leave it in place', async (open) => {
  const r = (await open()).identity.loginState;
  assert.equal(await r.put(entry('h1', 2000), 1000, 10), true);
  assert.equal(await r.put(entry('d1', 2000, 'device'), 1000, 10), true);
  assert.equal(await r.take('h1', 'device'), undefined, 'a code login is not a device login');
  assert.equal(await r.get('d1', 'code'), undefined);
  const got = await r.get('d1', 'device');
  assert.deepEqual(got, entry('d1', 2000, 'device'));
  assert.ok(got!.data instanceof Uint8Array);
  assert.deepEqual(await r.get('d1', 'device'), got, 'get does not consume');
  assert.equal(await r.update('d1', 'device', new Uint8Array([1, 2, 3])), true);
  assert.deepEqual(await r.get('d1', 'device'), { handle: 'd1', kind: 'device', data: new Uint8Array([1, 2, 3]), expiresAt: 2000 }, 'the data is replaced, the expiry kept');
  assert.equal(await r.update('nope', 'device', new Uint8Array([1])), false);
  assert.equal(await r.update('h1', 'device', new Uint8Array([1])), false, 'update is per flow too');
  assert.deepEqual(await r.take('h1', 'code'), entry('h1', 2000));
  assert.equal(await r.take('h1', 'code'), undefined, 'single use');
  assert.deepEqual(await r.take('d1', 'device'), { handle: 'd1', kind: 'device', data: new Uint8Array([1, 2, 3]), expiresAt: 2000 });
  assert.equal(await r.get('d1', 'device'), undefined);
  assert.equal(await r.update('d1', 'device', new Uint8Array([1])), false, 'a taken login cannot be updated');
  assert.equal(await r.count(), 0);
  // Racing takes of one handle on one store: one winner.
  await r.put(entry('h2', 2000), 1000, 10);
  const racing = await Promise.all([1, 2, 3, 4].map(() => r.take('h2', 'code')));
  assert.equal(racing.filter((x) => x !== undefined).length, 1);
});

forEachStore('login state: expired logins are still taken (the caller says "expired"), purged on write and by purgeExpired, and never count against the bound', async (open) => {
  const r = (await open()).identity.loginState;
  await r.put(entry('a', 1500), 1000, 3);
  await r.put(entry('b', 2000), 1000, 3);
  await r.put(entry('c', 2500, 'device'), 1000, 3);
  assert.equal(await r.put(entry('d', 3000), 1000, 3), false, 'three unexpired: the fourth is refused');
  assert.equal(await r.get('d', 'code'), undefined, 'a refused login is not stored');
  assert.deepEqual(await r.take('a', 'code'), entry('a', 1500), 'taken after its expiry (nothing purged it yet)');
  assert.equal(await r.put(entry('d', 3000), 1500, 3), true, 'a taken one frees its place');
  assert.equal(await r.put(entry('e', 3000), 2000, 3), true, 'b expired at 2000 (expiresAt <= now): purged, its place free');
  assert.equal(await r.get('b', 'code'), undefined, 'purged on write');
  assert.equal(await r.count(), 3);
  assert.equal(await r.put(entry('f', 3000), 2000, 3), false);
  assert.equal(await r.purgeExpired(2499), 0);
  assert.equal(await r.purgeExpired(2500), 1, 'expiresAt == now is expired');
  assert.equal(await r.get('c', 'device'), undefined);
  assert.equal(await r.purgeExpired(10_000), 2);
  assert.equal(await r.count(), 0);
});

forEachStore('login state: two replicas taking the same logins at once: exactly one gets each; what one starts the other completes', async (open, kind) => {
  await withReplicas(kind, open, async (a, b) => {
    const handles = Array.from({ length: 20 }, (_, i) => `state-${i}`);
    for (const h of handles) assert.equal(await (h.endsWith('1') ? b : a).identity.loginState.put(entry(h, 5000), 1000, 100), true);
    const calls = handles.flatMap((h) => [a, b, a, b].map((s) => s.identity.loginState.take(h, 'code').then((got) => ({ h, got }))));
    const results = await Promise.all(calls);
    for (const h of handles) {
      const winners = results.filter((x) => x.h === h && x.got !== undefined);
      assert.equal(winners.length, 1, `${h}: exactly one replica took it`);
      assert.deepEqual(winners[0]!.got, entry(h, 5000));
    }
    assert.equal(await a.identity.loginState.count(), 0);
    // A device login: started on a, polled (read, slowed down) on b, completed on a.
    await a.identity.loginState.put(entry('dev', 5000, 'device'), 1000, 100);
    assert.deepEqual(await b.identity.loginState.get('dev', 'device'), entry('dev', 5000, 'device'));
    assert.equal(await b.identity.loginState.update('dev', 'device', new Uint8Array([9])), true);
    const [x, y] = await Promise.all([a.identity.loginState.take('dev', 'device'), b.identity.loginState.take('dev', 'device')]);
    assert.equal([x, y].filter((v) => v !== undefined).length, 1);
    assert.deepEqual((x ?? y)!.data, new Uint8Array([9]), 'the update made on b is what a took');
  });
});

forEachStore('login state: the bound holds when two replicas start logins at once', async (open, kind) => {
  await withReplicas(kind, open, async (a, b) => {
    const starts = Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).identity.loginState.put(entry(`s-${i}`, 5000), 1000, 25));
    const kept = await Promise.all(starts);
    assert.equal(kept.filter(Boolean).length, 25, 'exactly the bound is kept');
    assert.equal(await a.identity.loginState.count(), 25);
    // Expired ones are purged by the next start, on either replica.
    assert.equal(await b.identity.loginState.put(entry('late', 9000), 5000, 25), true);
    assert.equal(await a.identity.loginState.count(), 1);
  });
});

forEachStore('login state through the domain: keyed by a digest, sealed, bound to its trust, flow and handle; a full table is a 503 naming the limit', async (open, kind) => {
  await withReplicas(kind, open, async (a, b) => {
    const key = randomBytes(32);
    const onA = new LoginStates(a.identity.loginState, key, { max: 3 });
    const onB = new LoginStates(b.identity.loginState, key, { max: 3 });
    const secret = { verifier: 'pkce-verifier-0123456789abcdef', nonce: 'nonce-abcdef0123456789', redirectUri: 'http://127.0.0.1:1/callback', stepUp: {} };
    await onA.put('sso', 'code', 'the-state', secret, 5000, 1000);
    // What the store holds: no handle, no verifier, no nonce in clear.
    assert.equal(await a.identity.loginState.get('the-state', 'code'), undefined, 'the handle is not the key');
    const rows = await rawRows(a);
    assert.equal(rows.length, 1);
    const stored = Buffer.from(rows[0]!.data).toString('latin1');
    for (const clear of [secret.verifier, secret.nonce, 'the-state']) {
      assert.ok(!stored.includes(clear), `${clear} is not stored in clear`);
      assert.ok(!rows[0]!.handle.includes(clear));
    }
    // Another trust, the other flow or another handle does not open it.
    assert.equal(await onB.take('other', 'code', 'the-state'), undefined);
    assert.equal(await onB.get('sso', 'device', 'the-state'), undefined);
    assert.deepEqual(await onB.take('sso', 'code', 'the-state'), { state: secret, expiresAt: 5000 }, 'completed on the other replica');
    assert.equal(await onA.take('sso', 'code', 'the-state'), undefined, 'once');

    // Device: read and updated on one replica, taken on the other.
    await onB.put('sso', 'device', 'dev-handle', { deviceCode: 'device-code-secret', interval: 5, stepUp: {} }, 5000, 1000);
    assert.deepEqual(await onA.get('sso', 'device', 'dev-handle'), { state: { deviceCode: 'device-code-secret', interval: 5, stepUp: {} }, expiresAt: 5000 });
    assert.equal(await onA.update('sso', 'device', 'dev-handle', { deviceCode: 'device-code-secret', interval: 10, stepUp: {} }), true);
    assert.ok(!(await rawRows(b)).some((r) => Buffer.from(r.data).toString('latin1').includes('device-code-secret')));
    assert.equal(((await onB.take<{ interval: number }>('sso', 'device', 'dev-handle'))!.state).interval, 10);

    // Sealed under another key, or altered: refused as an unknown state.
    await onA.put('sso', 'code', 's2', secret, 5000, 1000);
    const stranger = new LoginStates(b.identity.loginState, randomBytes(32));
    await assert.rejects(stranger.get('sso', 'code', 's2'), (e: AuthenticationFailed) => e instanceof AuthenticationFailed && e.reason === 'invalid_state');
    const [row] = await rawRows(a);
    const altered = new Uint8Array(row!.data);
    altered[altered.length - 1]! ^= 1;
    assert.equal(await a.identity.loginState.update(row!.handle, 'code', altered), true);
    await assert.rejects(onA.take('sso', 'code', 's2'), (e: AuthenticationFailed) => e.reason === 'invalid_state');

    // The bound: three unexpired logins, then 503 with the limit named; expired ones free places.
    for (const h of ['x1', 'x2', 'x3']) await onA.put('sso', 'code', h, secret, 5000, 1000);
    await assert.rejects(onB.put('sso', 'code', 'x4', secret, 5000, 1000), (e: Unavailable) => e instanceof Unavailable && e.status === 503 && /limit is 3 pending logins/.test(e.message));
    await onB.put('sso', 'code', 'x4', secret, 9000, 5000);
    assert.equal(await a.identity.loginState.count(), 1);
  });
});

/** Every stored row as it is in the database (handle digests and sealed data). */
async function rawRows(s: Store): Promise<{ handle: string; data: Uint8Array }[]> {
  if (s instanceof PostgresStore) {
    const rows = await s.db.query<{ handle: string; data: Buffer }>('SELECT handle, data FROM identity_login_state');
    return rows.map((r) => ({ handle: r.handle, data: new Uint8Array(r.data) }));
  }
  return (s as SqliteStore).main.raw.prepare('SELECT handle, data FROM identity_login_state').all() as { handle: string; data: Uint8Array }[];
}
