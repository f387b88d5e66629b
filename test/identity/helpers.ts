// Test helpers: real keys, raw JWS signing (so attack tokens can carry any header), and a real
// JWKS endpoint over HTTP on loopback.
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { generateKeyPairSync, sign as nodeSign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import assert from 'node:assert/strict';
import { AuthenticationFailed } from '../../src/common/errors.ts';
import { SqliteDb } from '../../src/store/sqlite/db.ts';
import type { Db } from '../../src/store/sqlite/db.ts';
import { SqliteIdentityStore } from '../../src/store/sqlite/identity.ts';

export interface TestKey {
  kid: string;
  alg: 'RS256' | 'ES256' | 'EdDSA' | 'PS256';
  privateKey: KeyObject;
  publicKey: KeyObject;
  jwk: Record<string, unknown>;
}

export function makeKey(kid: string, alg: TestKey['alg'] = 'RS256'): TestKey {
  const pair =
    alg === 'RS256' || alg === 'PS256'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : alg === 'ES256'
        ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
        : generateKeyPairSync('ed25519');
  const jwk = { ...(pair.publicKey.export({ format: 'jwk' }) as Record<string, unknown>), kid, alg, use: 'sig' };
  return { kid, alg, privateKey: pair.privateKey, publicKey: pair.publicKey, jwk };
}

const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** Signs a compact JWS with whatever header it is given (tests need hostile headers). */
export function signRaw(header: Record<string, unknown>, payload: Record<string, unknown> | string, key: TestKey): string {
  const input = `${b64(header)}.${b64(payload)}`;
  let sig: Buffer;
  if (key.alg === 'RS256') sig = nodeSign('sha256', Buffer.from(input), key.privateKey);
  else if (key.alg === 'PS256') sig = nodeSign('sha256', Buffer.from(input), { key: key.privateKey, padding: 6, saltLength: 32 });
  else if (key.alg === 'ES256') sig = nodeSign('sha256', Buffer.from(input), { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
  else sig = nodeSign(null, Buffer.from(input), key.privateKey);
  return `${input}.${sig.toString('base64url')}`;
}

export function sign(payload: Record<string, unknown>, key: TestKey, extraHeader: Record<string, unknown> = {}): string {
  return signRaw({ alg: key.alg, kid: key.kid, typ: 'JWT', ...extraHeader }, payload, key);
}

export function unsigned(header: Record<string, unknown>, payload: Record<string, unknown>): string {
  return `${b64(header)}.${b64(payload)}.`;
}

export { b64 };

export interface JwksServer {
  url: string;
  /** Replace the served key set. */
  setKeys(keys: Record<string, unknown>[]): void;
  requests: number;
  status: number;
  close(): Promise<void>;
}

export async function startJwksServer(keys: Record<string, unknown>[]): Promise<JwksServer> {
  let current = keys;
  const state: JwksServer = {
    url: '',
    setKeys: (k) => {
      current = k;
    },
    requests: 0,
    status: 200,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  const server: Server = createServer((req, res) => {
    state.requests++;
    if (req.url !== '/.well-known/jwks') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(state.status, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: current }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address() as { port: number };
  state.url = `http://127.0.0.1:${addr.port}/.well-known/jwks`;
  return state;
}

/** Asserts the promise rejects with AuthenticationFailed of this reason, and the detail leaks no token. */
export async function refused(p: Promise<unknown>, reason: string, token?: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof AuthenticationFailed, `expected AuthenticationFailed, got ${String(e)}`);
    assert.equal(e.reason, reason, `reason (detail: ${e.detail})`);
    assert.equal(e.message, 'authentication failed');
    if (token !== undefined) {
      for (const part of token.split('.')) if (part.length > 8) assert.ok(!e.detail.includes(part), 'detail leaks token content');
    }
    return true;
  });
}

/** The identity repositories over a raw test connection, and that connection's unit of work. */
export function identityStore(db: Db): SqliteIdentityStore & { unitOfWork: SqliteDb } {
  const unitOfWork = new SqliteDb(db);
  return Object.assign(new SqliteIdentityStore(unitOfWork), { unitOfWork });
}
