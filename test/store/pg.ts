// One embedded PostgreSQL cluster per test run for the PostgreSQL store: `npm test`'s global
// setup (test/store/global-setup.ts) starts it and migrates a template database once; each test
// asks for a fresh database cloned from the template (`freshStoreUrl`). To run one file by hand:
// `node --test --test-global-setup=test/store/global-setup.ts test/x/y.test.ts`.
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import EmbeddedPostgres from '../embedded-postgres.ts';
import pg from 'pg';
import { freePort } from '../credentials/helpers.ts';
import { PgDb } from '../../src/store/postgres/db.ts';
import { PG_MIGRATIONS } from '../../src/store/postgres/index.ts';

const ADMIN_ENV = 'PCX_TEST_PG_ADMIN_URL';
const STORE_ENV = 'PCX_TEST_PG_STORE_URL';
const TEMPLATE = 'pcx_template';
const STORE_ROLE = 'portcullis_store';

/** Which store the store-agnostic tests run over: `PCX_TEST_STORE=postgres` or SQLite (default). */
export const TEST_STORE: 'sqlite' | 'postgres' = process.env.PCX_TEST_STORE === 'postgres' ? 'postgres' : 'sqlite';

export interface TestCluster {
  /** Superuser URL to the `postgres` database. */
  adminUrl: string;
  /** The store role's URL without a database (append `/name`). */
  storeBase: string;
  stop(): Promise<void>;
}

/**
 * Starts a cluster tuned for tests (no fsync: the server is never killed here) and migrates the
 * template. `durable`: fsync and synchronous commits as in production (benchmarks).
 */
export async function startCluster(opts: { durable?: boolean } = {}): Promise<TestCluster> {
  const root = mkdtempSync(join(tmpdir(), 'pcx-store-pg-'));
  chmodSync(root, 0o755);
  const port = await freePort();
  const su = `su-${randomBytes(12).toString('hex')}`;
  const storePw = `st-${randomBytes(12).toString('hex')}`;
  const dataDir = join(root, 'data');
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: 'postgres_su',
    password: su,
    authMethod: 'scram-sha-256',
    persistent: false,
    createPostgresUser: true,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-k', dataDir, ...(opts.durable ? [] : ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off']), '-c', 'max_connections=400'],
    onLog: process.env.PCX_PG_LOG ? (m) => console.error(m) : () => {},
    onError: () => {},
  });
  await server.initialise();
  await server.start();
  const adminUrl = `postgres://postgres_su:${su}@127.0.0.1:${port}/postgres`;
  const storeBase = `postgres://${STORE_ROLE}:${storePw}@127.0.0.1:${port}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE ROLE ${STORE_ROLE} LOGIN CREATEDB NOSUPERUSER PASSWORD ${pg.escapeLiteral(storePw)}`);
    await admin.query(`CREATE DATABASE ${TEMPLATE} OWNER ${STORE_ROLE}`);
  } finally {
    await admin.end();
  }
  const db = await PgDb.open(`${storeBase}/${TEMPLATE}`, { pool: 1 });
  try {
    await db.migrate(PG_MIGRATIONS);
  } finally {
    await db.close();
  }
  return {
    adminUrl,
    storeBase,
    stop: async () => {
      await server.stop().catch(() => {});
      rmSync(root, { recursive: true, force: true });
    },
  };
}

let counter = 0;

/** The run's cluster, started by the global setup. */
function cluster(): { adminUrl: string; storeBase: string } {
  const adminUrl = process.env[ADMIN_ENV];
  const storeBase = process.env[STORE_ENV];
  if (!adminUrl || !storeBase) throw new Error('no test PostgreSQL cluster: run with --test-global-setup=test/store/global-setup.ts (npm test does)');
  return { adminUrl, storeBase };
}

/** A new, empty, migrated database for one store (cloned from the template); returns the store role's URL to it. */
export async function freshStoreUrl(): Promise<string> {
  const c = cluster();
  const name = `pcx_${process.pid}_${++counter}_${randomBytes(3).toString('hex')}`;
  const admin = new pg.Client({ connectionString: c.adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name} TEMPLATE ${TEMPLATE} OWNER ${STORE_ROLE}`);
  } finally {
    await admin.end();
  }
  return `${c.storeBase}/${name}`;
}

/** A superuser client on the run's cluster (to inspect or tamper with a store's rows). */
export async function adminClient(database: string): Promise<pg.Client> {
  const c = cluster();
  const url = new URL(c.adminUrl);
  url.pathname = `/${database}`;
  const client = new pg.Client({ connectionString: url.href });
  await client.connect();
  return client;
}

/** For the global setup: exports the cluster's URLs to the test processes. */
export function exportCluster(c: TestCluster): void {
  process.env[ADMIN_ENV] = c.adminUrl;
  process.env[STORE_ENV] = c.storeBase;
}
