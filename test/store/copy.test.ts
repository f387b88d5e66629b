// Moving up (#10): an embedded installation copied into PostgreSQL with `portcullis store copy`
// keeps its identities, keys, policies and audit chains — the copy verifies offline
// (`audit verify --store-url-env`), a broker opened on it accepts the sessions the old one issued,
// and a copy into a store that is not empty is refused with nothing written.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { generateKeyPairSync } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { parseConfig } from '../../src/config/load.ts';
import { Broker } from '../../src/broker/index.ts';
import { withInternals } from '../integration/broker-view.ts';
import { copySqliteToPostgres } from '../../src/store/copy.ts';
import { freshStoreUrl } from './pg.ts';
import { witnessUrl } from './stores.ts';

const run = promisify(execFile);
const MAIN = join(import.meta.dirname, '..', '..', 'src', 'cli', 'main.ts');
const env = { PORTCULLIS_MASTER_KEY: Buffer.alloc(32, 8).toString('base64') };

describe('portcullis store copy: SQLite → PostgreSQL', { timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'pcx-copy-'));
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const jwk = { ...(publicKey as KeyObject).export({ format: 'jwk' }), kid: 'ci', alg: 'EdDSA', use: 'sig' };
  const yaml = (store: string) => `listen: { host: 127.0.0.1, port: 0 }
data_dir: ./data
${store}
trusts:
  - { name: ci, kind: oidc, issuer: "https://ci.test", jwks: { keys: [${JSON.stringify(jwk)}] }, audiences: [portcullis], algorithms: [EdDSA], identity: "workload:github/{repository}", boundary: application, environment: prod, owner: team:platform }
resources:
  - { type: Database, id: orders, boundary: application, environment: prod }
policies: ./p.cedar
`;
  let session: string;
  let events: Record<string, number>;
  let identities: number;
  let url: string;

  before(async () => {
    writeFileSync(join(dir, 'p.cedar'), 'permit (principal is Workload, action == Action::"db.select", resource == Database::"orders");\n');
    const broker = withInternals(await Broker.open(parseConfig(yaml('audit: { checkpoint_every: 7 }'), dir, env).config, { env }));
    try {
      for (const repo of ['acme/api', 'acme/worker', 'acme/batch']) {
        const proof = await new SignJWT({ repository: repo }).setProtectedHeader({ alg: 'EdDSA', kid: 'ci' }).setIssuer('https://ci.test').setAudience('portcullis').setIssuedAt().setExpirationTime('5m').sign(privateKey);
        session = (await broker.login({ type: 'jwt', token: proof }, '127.0.0.1')).session_token;
        const caller = await broker.sessionFromToken(session, '127.0.0.1');
        for (let i = 0; i < 10; i++) await broker.authorize(caller, { action: 'db.select', resource: { type: 'Database', id: 'orders' }, context: {} }, '127.0.0.1');
      }
      await broker.audit.flush();
      events = Object.fromEntries((await broker.audit.verifyAsync(broker.keyring.publicKeyResolver)).streams.map((s) => [s.stream, s.events]));
      identities = broker.identities.list().length;
    } finally {
      await broker.close();
    }
    url = await freshStoreUrl();
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('copies every table; the chains verify offline on PostgreSQL with the same events', async () => {
    const report = await copySqliteToPostgres(join(dir, 'data'), url);
    assert.ok(report.rows > 30, JSON.stringify(report));
    assert.ok(report.tables.find((t) => t.table === 'audit_events')!.rows >= 30);
    const r = await run(process.execPath, [MAIN, 'audit', 'verify', '--store-url-env', 'PCX_COPY_URL', '--json'], { env: { ...process.env, PCX_COPY_URL: url } });
    const v = JSON.parse(r.stdout) as { ok: boolean; streams: { stream: string; events: number; checkpoints: number; ok: boolean }[] };
    assert.equal(v.ok, true, r.stdout);
    for (const s of v.streams) assert.equal(s.events, events[s.stream] ?? 0, `${s.stream}: ${JSON.stringify(s)}`);
    assert.ok(v.streams.some((s) => s.checkpoints > 0), 'signed checkpoints came along');
  });

  it('a broker on the copy knows the identities and accepts the sessions the old one issued', async () => {
    const pgEnv = { ...env, PCX_COPY_URL: url };
    const broker = withInternals(await Broker.open(parseConfig(yaml(`store: { kind: postgres, url_env: PCX_COPY_URL }\naudit: { witness: { url: "${await witnessUrl()}" } }`), dir, pgEnv).config, { env: pgEnv }));
    try {
      assert.equal(broker.identities.list().length, identities);
      const caller = await broker.sessionFromToken(session, '127.0.0.1');
      const d = await broker.authorize(caller, { action: 'db.select', resource: { type: 'Database', id: 'orders' }, context: {} }, '127.0.0.1');
      assert.equal(d.decision, 'allow');
      await broker.audit.flush();
      assert.equal((await broker.audit.verifyAsync(broker.keyring.publicKeyResolver)).ok, true, 'the chains go on from the copied heads');
    } finally {
      await broker.close();
    }
  });

  it('refuses a target that is not empty, and a --store-url with a password on the command line', async () => {
    await assert.rejects(copySqliteToPostgres(join(dir, 'data'), url), /not empty/);
    const withPassword = url.replace(/^postgres:\/\//, 'postgres://');
    const r = await run(process.execPath, [MAIN, 'audit', 'verify', '--store-url', withPassword]).then(
      () => assert.fail('accepted a password on the command line'),
      (e: { code: number; stderr: string }) => e,
    );
    assert.equal(r.code, 2);
    assert.match(r.stderr, /PGPASSWORD|password/);
  });
});
