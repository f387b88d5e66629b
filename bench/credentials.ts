// Credential issuance on the product path (request-time decision, lease recorded, admin audit
// event) next to raw signing with the same key type; PostgreSQL role issue/revoke latency and
// the time from a revoke call to the live session ending, against a real PostgreSQL.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPairSync, sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { SignJWT } from 'jose';
import { stringify } from 'yaml';
import pg from 'pg';
import { parseConfig } from '../src/config/load.ts';
import { Broker } from '../src/broker/index.ts';
import type { SessionContext } from '../src/broker/index.ts';
import { startPostgres } from '../test/credentials/helpers.ts';
import { percentile } from './fixture.ts';

type Emit = (line: Record<string, unknown>) => void;
const N = 2000;
const CONCURRENCY = Number(process.env.PCX_BENCH_CONCURRENCY ?? 32);

async function timed(n: number, concurrency: number, op: (i: number) => Promise<unknown>): Promise<{ ops: number; lat: number[] }> {
  const lat: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) {
      const i = next++;
      const t = performance.now();
      await op(i);
      lat.push(performance.now() - t);
    }
  }));
  lat.sort((a, b) => a - b);
  return { ops: n / ((performance.now() - started) / 1000), lat };
}

export async function run(emit: Emit): Promise<void> {
  const db = await startPostgres();
  const dir = mkdtempSync(join(tmpdir(), 'pcx-bench-creds-'));
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const jwk = { ...(publicKey as KeyObject).export({ format: 'jwk' }), kid: 'bench', alg: 'EdDSA', use: 'sig' };
  writeFileSync(join(dir, 'p.cedar'), `permit (principal == Workload::"workload:github/acme/api", action == Action::"credential.issue", resource)
when { context.purpose has reason && context.credential.ttlSeconds <= 3600 };`);
  const yaml = stringify({
    listen: { host: '127.0.0.1', port: 7999 },
    data_dir: './data',
    trusts: [{ name: 'ci', kind: 'oidc', issuer: 'https://ci.bench', jwks: { keys: [jwk] }, audiences: ['portcullis'], algorithms: ['EdDSA'], identity: 'workload:github/{repository}', boundary: 'application', environment: 'prod' }],
    identities: [{ id: 'workload:github/acme/api', kind: 'workload', owner: 'team:payments', boundary: 'application', environment: 'prod' }],
    resources: [
      { type: 'Api', id: 'orders-api', boundary: 'application', environment: 'prod' },
      { type: 'Host', id: 'web-1', boundary: 'application', environment: 'prod' },
      { type: 'Database', id: 'orders-db', boundary: 'application', environment: 'prod' },
    ],
    targets: [
      { name: 'orders-api', kind: 'api', audience: 'https://orders.bench', scopes: ['orders:read'], max_ttl: '30m' },
      { name: 'web-1', kind: 'ssh', hosts: ['127.0.0.1'], principals: { 'workload:github/acme/api': ['deploy'] }, max_ttl: '1h' },
      { name: 'orders-db', kind: 'postgres', host: '127.0.0.1', port: db.port, database: 'orders', admin: { user: db.user, password_env: 'BENCH_PG_PASSWORD' }, permissions: { readonly: 'readonly' }, max_ttl: '1h', connection_limit: 2 },
    ],
    policies: './p.cedar',
  });
  const env = { PORTCULLIS_MASTER_KEY: Buffer.alloc(32, 3).toString('base64'), BENCH_PG_PASSWORD: db.password };
  const broker = await Broker.open(parseConfig(yaml, dir, env).config, { env });
  try {
    const proof = await new SignJWT({ repository: 'acme/api' }).setProtectedHeader({ alg: 'EdDSA', kid: 'bench' }).setIssuer('https://ci.bench').setAudience('portcullis').setIssuedAt().setExpirationTime('10m').sign(privateKey);
    const login = await broker.login({ type: 'jwt', token: proof }, '127.0.0.1');
    const s: SessionContext = await broker.sessionFromToken(login.session_token, '127.0.0.1');

    // Access tokens (EdDSA) against raw EdDSA JWT signing with a key of the same type.
    const rawKey = generateKeyPairSync('ed25519').privateKey;
    const raw = await timed(N, CONCURRENCY, () => new SignJWT({ sub: 'x', scope: 'orders:read', aud: 'https://orders.bench' }).setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt' }).setIssuedAt().setExpirationTime('10m').sign(rawKey));
    const issued = await timed(N, CONCURRENCY, () => broker.issueCredential(s, { target: 'orders-api', ttl: '10m', reason: 'bench', scopes: ['orders:read'] }, '127.0.0.1'));
    emit({ bench: 'credentials', kind: 'access-token', raw_sign_per_s: Math.round(raw.ops), issued_per_s: Math.round(issued.ops), fraction_of_raw: +(issued.ops / raw.ops).toFixed(2), issue_p50_ms: +percentile(issued.lat, 50).toFixed(2), issue_p99_ms: +percentile(issued.lat, 99).toFixed(2) });

    // SSH user certificates (Ed25519 CA) against raw Ed25519 signatures over a certificate-sized blob.
    const userKey = (generateKeyPairSync('ed25519').publicKey as KeyObject).export({ format: 'jwk' }).x!;
    const line = `ssh-ed25519 ${Buffer.concat([lenPrefixed(Buffer.from('ssh-ed25519')), lenPrefixed(Buffer.from(userKey, 'base64url'))]).toString('base64')} bench`;
    const blob = Buffer.alloc(300, 7);
    const rawSsh = await timed(N, CONCURRENCY, async () => sign(null, blob, rawKey));
    const certs = await timed(N, CONCURRENCY, () => broker.issueCredential(s, { target: 'web-1', ttl: '10m', reason: 'bench', public_key: line }, '127.0.0.1'));
    emit({ bench: 'credentials', kind: 'ssh-certificate', raw_sign_per_s: Math.round(rawSsh.ops), issued_per_s: Math.round(certs.ops), fraction_of_raw: +(certs.ops / rawSsh.ops).toFixed(2), issue_p50_ms: +percentile(certs.lat, 50).toFixed(2), issue_p99_ms: +percentile(certs.lat, 99).toFixed(2) });

    // PostgreSQL: issue and revoke latency, and revoke → live session ended.
    const issueLat: number[] = [];
    const revokeLat: number[] = [];
    const endLat: number[] = [];
    for (let i = 0; i < 40; i++) {
      let t = performance.now();
      const r = await broker.issueCredential(s, { target: 'orders-db', permission: 'readonly', ttl: '10m', reason: 'bench' }, '127.0.0.1');
      issueLat.push(performance.now() - t);
      const c = r.credential as { user: string; password: string };
      const client = new pg.Client({ host: '127.0.0.1', port: db.port, database: 'orders', user: c.user, password: c.password });
      client.on('error', () => {});
      await client.connect();
      await client.query('SELECT 1');
      const ended = new Promise<number>((resolve) => client.once('end', () => resolve(performance.now())));
      t = performance.now();
      await broker.admin.leases.revoke({ ...s, sourceIp: '127.0.0.1' }, { lease: r.lease.id }, 'bench');
      revokeLat.push(performance.now() - t);
      endLat.push((await ended) - t);
    }
    for (const a of [issueLat, revokeLat, endLat]) a.sort((x, y) => x - y);
    emit({
      bench: 'credentials', kind: 'postgres-role', samples: issueLat.length,
      issue_p50_ms: +percentile(issueLat, 50).toFixed(1), issue_p99_ms: +percentile(issueLat, 99).toFixed(1),
      revoke_p50_ms: +percentile(revokeLat, 50).toFixed(1), revoke_p99_ms: +percentile(revokeLat, 99).toFixed(1),
      revoke_to_session_end_p50_ms: +percentile(endLat, 50).toFixed(1), revoke_to_session_end_p99_ms: +percentile(endLat, 99).toFixed(1),
    });
  } finally {
    await broker.close();
    await db.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

function lenPrefixed(b: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
}
