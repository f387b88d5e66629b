// Fixtures of the PostgreSQL gateway tests: a real target server (startPostgres), a real
// Portcullis server with the `orders-gw` gateway in front of it, and clients (node-postgres,
// psql, pgbench) that connect through the gateway with a session token as their password.
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { webcrypto } from 'node:crypto';
import pg from 'pg';
import * as x509 from '../../src/crypto/x509.ts';
import { freePort, startPostgres, type TestPostgres } from '../credentials/helpers.ts';
import { ordersDbTarget, startHarness, type Harness, type HarnessOptions } from './harness.ts';

export const run = promisify(execFile);

/** Whether a client program is installed (psql, pgbench). */
export function has(bin: string): boolean {
  return spawnSync(bin, ['--version'], { stdio: 'ignore' }).status === 0;
}

export const GATEWAY_POLICIES = `
@id("gw-connect")
permit (principal == Workload::"workload:github/acme/api", action == Action::"db.connect", resource == Database::"orders-db");
@id("gw-lease")
permit (principal == Workload::"workload:github/acme/api", action == Action::"credential.issue", resource == Database::"orders-db");
@id("gw-read-write")
permit (principal == Workload::"workload:github/acme/api", action in [Action::"db.select", Action::"db.insert", Action::"db.update"], resource in Database::"orders-db");
@id("gw-no-secrets")
forbid (principal, action, resource == Table::"public.secrets");
@id("gw-functions")
permit (principal == Workload::"workload:github/acme/api", action == Action::"db.execute", resource)
when { resource == Function::"count" || resource == Function::"now" || resource == Function::"pg_sleep" || resource == Function::"pg_backend_pid" };
`;

export interface GatewayFixture {
  pgsrv: TestPostgres;
  h: Harness;
  port: number;
  /** A fresh session token of workload:github/acme/api. */
  token(): Promise<string>;
  /** A node-postgres client connected through the gateway. */
  client(password: string, extra?: Partial<pg.ClientConfig>): Promise<pg.Client>;
  close(): Promise<void>;
}

/** `gatewayYaml`: extra keys of the gateway entry (indented 4), or more entries; `targetsYaml`: more `targets:` items. */
export async function startGatewayFixture(o: { gatewayYaml?: string; targetsYaml?: string; policies?: string; harness?: HarnessOptions } = {}): Promise<GatewayFixture> {
  const pgsrv = await startPostgres();
  const su = pgsrv.admin();
  await su.connect();
  await su.query('CREATE TABLE public.items (id int PRIMARY KEY, name text); CREATE TABLE public.secrets (id int, secret text)');
  await su.query("INSERT INTO public.items VALUES (1, 'one'), (2, 'two'); INSERT INTO public.secrets VALUES (1, 'classified')");
  // pgbench's tables at scale 1, made directly (pgbench -i would need DDL through the gateway).
  await su.query(`CREATE TABLE pgbench_branches (bid int PRIMARY KEY, bbalance int, filler char(88));
    CREATE TABLE pgbench_tellers (tid int PRIMARY KEY, bid int, tbalance int, filler char(84));
    CREATE TABLE pgbench_accounts (aid int PRIMARY KEY, bid int, abalance int, filler char(84));
    CREATE TABLE pgbench_history (tid int, bid int, aid int, delta int, mtime timestamp, filler char(22));
    INSERT INTO pgbench_branches VALUES (1, 0);
    INSERT INTO pgbench_tellers SELECT g, 1, 0 FROM generate_series(1, 10) g;
    INSERT INTO pgbench_accounts SELECT g, 1, 0 FROM generate_series(1, 100000) g;`);
  await su.query('GRANT ALL ON ALL TABLES IN SCHEMA public TO portcullis_broker WITH GRANT OPTION');
  await su.end();
  const port = await freePort();
  const target = ordersDbTarget(pgsrv);
  const yaml = `${target.yaml}${o.targetsYaml ?? ''}gateways:
  - name: orders-gw
    kind: postgres
    listen: { host: 127.0.0.1, port: ${port} }
    target: orders-db
    permission: readwrite
${o.gatewayYaml ?? ''}`;
  // PostgreSQL enforces the lease role's VALID UNTIL with its real clock.
  const h = await startHarness(yaml, target.env, Date.now(), { ...o.harness, policies: (o.harness?.policies ?? '') + GATEWAY_POLICIES + (o.policies ?? '') });
  const clients: pg.Client[] = [];
  return {
    pgsrv,
    h,
    port,
    token: () => h.loginCi(),
    async client(password, extra = {}) {
      const c = new pg.Client({ host: '127.0.0.1', port, user: 'api', database: 'orders-db', password, connectionTimeoutMillis: 10_000, ...extra });
      c.on('error', () => {});
      clients.push(c);
      await c.connect();
      return c;
    },
    async close() {
      await Promise.all(clients.map((c) => c.end().catch(() => {})));
      await h.close();
      await pgsrv.stop();
    },
  };
}

/** A self-signed certificate for 127.0.0.1/localhost and its key, PEM. */
export async function selfSignedPem(): Promise<{ cert: string; key: string }> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01', name: 'CN=localhost', notBefore: new Date(Date.now() - 86_400_000), notAfter: new Date(Date.now() + 86_400_000), signingAlgorithm: alg, keys,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'localhost' }, { type: 'ip', value: '127.0.0.1' }])],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
  return { cert: cert.toString('pem'), key: `-----BEGIN PRIVATE KEY-----\n${pkcs8.match(/.{1,64}/g)!.join('\n')}\n-----END PRIVATE KEY-----\n` };
}

/** The jti of a session token (its payload, unverified: the test made it). */
export function jtiOf(token: string): string {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).jti as string;
}
