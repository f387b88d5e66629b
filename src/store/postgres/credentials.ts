// PostgreSQL implementation of the credentials domain's storage ports (src/credentials/ports.ts):
// the lease table, its migrations and queries, shared by every replica.
import { NotFound } from '../../common/errors.ts';
import type { CredentialStore, LeaseFilter, LeasePatch, LeaseRepository } from '../../credentials/ports.ts';
import type { Lease, TargetKind } from '../../credentials/types.ts';
import { LEASE_COLUMNS, LeaseWriteMethods, leaseFromRow, leaseList, leaseUpdate, leaseValues, patchColumn, patchValue, type LeaseWrite } from '../rows/leases.ts';
import type { Row } from '../rows/values.ts';
import { PG_SQL } from './db.ts';
import type { PgDb, PgDomainMigrations } from './db.ts';
import { GroupCommit, type Pending as GroupPending } from '../group-commit.ts';

/**
 * The SQLite table (src/store/sqlite/credentials.ts) with PostgreSQL types: epoch ms as BIGINT,
 * params as JSONB (children() looks up `params->>'parent'` through an index). `id` sorts bytewise
 * (COLLATE "C") as on SQLite, whatever the database's collation. `list()` without a filter pages
 * by (issued_at DESC, id) through its own index.
 */
export const MIGRATIONS: PgDomainMigrations = {
  domain: 'credentials',
  migrations: [
    {
      version: 1,
      up: `CREATE TABLE credential_leases (
             id TEXT COLLATE "C" PRIMARY KEY,
             identity_id TEXT NOT NULL,
             target TEXT NOT NULL,
             kind TEXT NOT NULL,
             permission TEXT NOT NULL,
             handle TEXT,
             params JSONB NOT NULL DEFAULT '{}',
             fingerprint TEXT,
             status TEXT NOT NULL,
             purpose TEXT NOT NULL,
             decision_id TEXT NOT NULL,
             grant_id TEXT,
             session_id TEXT,
             trust TEXT,
             issued_at BIGINT NOT NULL,
             expires_at BIGINT NOT NULL,
             max_expires_at BIGINT NOT NULL,
             renewals INTEGER NOT NULL DEFAULT 0,
             revoke_attempts INTEGER NOT NULL DEFAULT 0,
             next_attempt_at BIGINT,
             last_error TEXT,
             revoked_at BIGINT,
             revoked_by TEXT,
             revoke_reason TEXT);
           CREATE INDEX credential_leases_identity ON credential_leases (identity_id);
           CREATE INDEX credential_leases_target ON credential_leases (target);
           CREATE INDEX credential_leases_status ON credential_leases (status, expires_at);
           CREATE INDEX credential_leases_session ON credential_leases (session_id);
           CREATE INDEX credential_leases_decision ON credential_leases (decision_id);
           CREATE INDEX credential_leases_grant ON credential_leases (grant_id);
           CREATE INDEX credential_leases_parent ON credential_leases ((params ->> 'parent'));
           CREATE INDEX credential_leases_handle ON credential_leases (kind, handle);
           CREATE INDEX credential_leases_issued ON credential_leases (issued_at DESC, id);`,
    },
  ],
};

const toLease = (r: Row): Lease => leaseFromRow(r, (v) => v as Record<string, unknown>);

const INSERT_COLUMNS = LEASE_COLUMNS.join(', ');

/** The column types of LEASE_COLUMNS (a multi-row INSERT casts its unnest() arrays to them). */
const INSERT_TYPES = [
  'text', 'text', 'text', 'text', 'text', 'text', 'jsonb', 'text', 'text',
  'text', 'text', 'text', 'text', 'text', 'bigint', 'bigint', 'bigint', 'integer',
  'integer', 'bigint', 'text', 'bigint', 'text', 'text',
];
const INSERT_ONE = `INSERT INTO credential_leases (${INSERT_COLUMNS})
  VALUES (${INSERT_TYPES.map((t, i) => (t === 'jsonb' ? `$${i + 1}::jsonb` : `$${i + 1}`)).join(', ')})`;
const INSERT_MANY = `INSERT INTO credential_leases (${INSERT_COLUMNS})
  SELECT * FROM unnest(${INSERT_TYPES.map((t, i) => `$${i + 1}::${t}[]`).join(', ')})
  ON CONFLICT (id) DO NOTHING RETURNING id`;

/** A lease id that is taken already. */
class LeaseExists extends Error {
  constructor(id: string) {
    super(`lease ${id} exists already`);
    this.name = 'LeaseExists';
  }
}

/**
 * Runs one write as one statement (on the flow's transaction, if any, else autocommitted). An
 * update is one UPDATE … RETURNING (leaseUpdate): under READ COMMITTED a concurrent UPDATE of the
 * same row (another replica's) waits for it and re-checks the WHERE on the row it committed: a
 * compare-and-set.
 */
async function applyOne(db: PgDb, w: LeaseWrite): Promise<Lease | undefined> {
  if (w.op === 'insert') {
    try {
      await db.execute(INSERT_ONE, leaseValues(w.lease));
    } catch (e) {
      if ((e as { code?: string }).code === '23505') throw new LeaseExists(w.lease.id);
      throw e;
    }
    return undefined;
  }
  if (w.op === 'transition' && w.from.length === 0) return undefined;
  const { sql, values } = leaseUpdate(PG_SQL, w.id, w.patch, w.op === 'transition' ? w.from : undefined);
  const row = await db.one(sql, values);
  if (!row && w.op === 'update') throw new NotFound(`lease ${w.id}`);
  return row ? toLease(row) : undefined;
}

/** The type of each updatable column, for the arrays an UPDATE … FROM unnest() reads. */
const PATCH_TYPES: Record<keyof LeasePatch, string> = {
  handle: 'text', params: 'jsonb', fingerprint: 'text', status: 'text', expiresAt: 'bigint', renewals: 'integer',
  revokeAttempts: 'integer', nextAttemptAt: 'bigint', lastError: 'text', revokedAt: 'bigint', revokedBy: 'text',
  revokeReason: 'text', decisionId: 'text',
};

const NOT_FOUND = Symbol('not found');
type BatchResult = Lease | undefined | typeof NOT_FOUND;

function writeId(w: LeaseWrite): string {
  return w.op === 'insert' ? w.lease.id : w.id;
}

/**
 * Applies writes in the caller's transaction, with few statements: the batch is cut into phases
 * in which no lease appears twice (so order within a phase does not matter, and a lease's writes
 * keep their order across phases); in each, the inserts are one multi-row INSERT and the updates
 * of one shape (op, `from`, patched fields) one UPDATE … FROM unnest(). Throws if any statement
 * fails, or an id is taken (the caller rolls back and retries the writes one by one).
 */
async function applyBatch(db: PgDb, writes: readonly LeaseWrite[]): Promise<BatchResult[]> {
  const out: BatchResult[] = Array.from({ length: writes.length });
  let phase: number[] = [];
  let ids = new Set<string>();
  for (let i = 0; i <= writes.length; i++) {
    if (i === writes.length || ids.has(writeId(writes[i]!))) {
      await applyPhase(db, writes, phase, out);
      phase = [];
      ids = new Set();
      if (i === writes.length) break;
    }
    ids.add(writeId(writes[i]!));
    phase.push(i);
  }
  return out;
}

async function applyPhase(db: PgDb, writes: readonly LeaseWrite[], phase: readonly number[], out: BatchResult[]): Promise<void> {
  const inserts: Lease[] = [];
  const shapes = new Map<string, number[]>();
  // In id order: two replicas' batches over the same leases then take their row locks in the
  // same order (mostly: the plan decides), so they seldom deadlock; when they do, the server
  // aborts one after deadlock_timeout and its writes are retried one by one.
  const sorted = [...phase].sort((x, y) => (writeId(writes[x]!) < writeId(writes[y]!) ? -1 : 1));
  for (const i of sorted) {
    const w = writes[i]!;
    if (w.op === 'insert') {
      inserts.push(w.lease);
      continue;
    }
    const key = `${w.op}|${w.op === 'transition' ? [...w.from].sort().join(',') : ''}|${Object.keys(w.patch).sort().join(',')}`;
    shapes.set(key, [...(shapes.get(key) ?? []), i]);
  }
  if (inserts.length > 0) {
    const columns: unknown[][] = INSERT_TYPES.map(() => []);
    for (const l of inserts) leaseValues(l).forEach((v, c) => columns[c]!.push(v));
    const inserted = await db.query<{ id: string }>(INSERT_MANY, columns);
    if (inserted.length !== inserts.length) throw new Error('a lease id in the batch is taken');
  }
  for (const group of shapes.values()) {
    const first = writes[group[0]!]! as Exclude<LeaseWrite, { op: 'insert' }>;
    if (group.length === 1 || (first.op === 'transition' && first.from.length === 0)) {
      for (const i of group) {
        const w = writes[i]! as Exclude<LeaseWrite, { op: 'insert' }>;
        if (w.op === 'transition' && w.from.length === 0) {
          out[i] = undefined;
          continue;
        }
        const { sql, values } = leaseUpdate(PG_SQL, w.id, w.patch, w.op === 'transition' ? w.from : undefined);
        const row = await db.one(sql, values);
        out[i] = row ? toLease(row) : w.op === 'update' ? NOT_FOUND : undefined;
      }
      continue;
    }
    const keys = Object.keys(first.patch) as (keyof LeasePatch)[];
    const arrays: unknown[][] = [group.map((i) => (writes[i] as { id: string }).id)];
    const columns = keys.map(patchColumn);
    for (const k of keys) arrays.push(group.map((i) => patchValue(k, (writes[i] as { patch: LeasePatch }).patch[k])));
    const sets = keys.length > 0 ? columns.map((col, j) => `${col} = v.c${j}`).join(', ') : 'id = l.id';
    const cols = ['id', ...keys.map((_, j) => `c${j}`)].join(', ');
    const types = ['text', ...keys.map((k) => PATCH_TYPES[k])];
    const values: unknown[] = [...arrays];
    let where = 'l.id = v.id';
    if (first.op === 'transition') {
      values.push([...first.from]);
      where += ` AND l.status = ANY($${values.length}::text[])`;
    }
    const rows = await db.query(
      `UPDATE credential_leases l SET ${sets}
       FROM unnest(${types.map((t, j) => `$${j + 1}::${t}[]`).join(', ')}) AS v(${cols})
       WHERE ${where} RETURNING l.*`,
      values,
    );
    const byId = new Map(rows.map((r) => [r.id as string, toLease(r)]));
    for (const i of group) {
      const w = writes[i] as Exclude<LeaseWrite, { op: 'insert' }>;
      out[i] = byId.get(w.id) ?? (w.op === 'update' ? NOT_FOUND : undefined);
    }
  }
}

type Pending = GroupPending<LeaseWrite, Lease | undefined>;

/**
 * Group commit: the writes of one event-loop turn go to the database in one transaction, in a few
 * statements (applyBatch), and every caller is answered after its COMMIT; a turn with one write
 * sends it alone (autocommit). If the batch's transaction fails, its writes are retried one by one,
 * so a failing write fails alone (PostgreSQL aborts the whole transaction on any error, where
 * SQLite undoes only the statement). A write whose COMMIT was lost with the connection is as
 * uncertain as an autocommitted one: a retried transition then finds its own change and answers
 * "lost", and a retried insert "exists" — the issuance fails closed. Batching itself is the shared
 * GroupCommit (../group-commit.ts).
 */
class PgLeaseWriter extends GroupCommit<LeaseWrite, Lease | undefined> {
  readonly #db: PgDb;

  constructor(db: PgDb, maxInFlight: number) {
    super(maxInFlight);
    this.#db = db;
  }

  protected async commit(batch: Pending[]): Promise<void> {
    if (batch.length === 1) {
      const p = batch[0]!;
      await applyOne(this.#db, p.write).then(p.resolve, p.reject);
      return;
    }
    let results: BatchResult[];
    try {
      results = await this.#db.transaction(() => applyBatch(this.#db, batch.map((p) => p.write)));
    } catch {
      // Something failed the whole transaction (a taken id, a deadlock with another replica's
      // batch, a lost connection): nothing was committed, so each write is retried alone, in order.
      for (const p of batch) await applyOne(this.#db, p.write).then(p.resolve, p.reject);
      return;
    }
    batch.forEach((p, i) => {
      const r = results[i]!;
      if (r === NOT_FOUND) p.reject(new NotFound(`lease ${(p.write as { id: string }).id}`));
      else p.resolve(r);
    });
  }
}

export interface PgLeaseOptions {
  /**
   * Group commit (default on): the lease writes of one event-loop turn share one transaction and
   * few statements (PgLeaseWriter). Off: every write is one autocommitted statement.
   */
  batchWrites?: boolean;
}

/**
 * The lease table. Every write resolves after the COMMIT that holds it (a group commit's, or its
 * own), or is part of the caller's unit of work when made inside `store.transaction`. Status
 * changes are conditional UPDATEs (`WHERE status = ANY(from)`), so the reaper and revocations on
 * several replicas cannot both claim one lease: the second waits for the first's row lock, then
 * finds the status changed.
 */
class PgLeaseRepository extends LeaseWriteMethods implements LeaseRepository {
  readonly #db: PgDb;
  readonly #writer: PgLeaseWriter | undefined;

  constructor(db: PgDb, opts: PgLeaseOptions) {
    super();
    this.#db = db;
    // Up to half the pool commits batches at once; the rest serves reads and units of work.
    if (opts.batchWrites ?? true) this.#writer = new PgLeaseWriter(db, Math.min(4, Math.max(1, Math.floor((db.pool.options.max ?? 10) / 2))));
  }

  protected write(w: LeaseWrite): Promise<Lease | undefined> {
    if (this.#writer && !this.#db.inTransaction) return this.#writer.write(w);
    return applyOne(this.#db, w);
  }

  async get(id: string): Promise<Lease | undefined> {
    const row = await this.#db.one('SELECT * FROM credential_leases WHERE id = $1', [id]);
    return row ? toLease(row) : undefined;
  }

  async list(f: LeaseFilter = {}, limit = 1000): Promise<Lease[]> {
    const { sql, values } = leaseList(PG_SQL, f, limit);
    return (await this.#db.query(sql, values)).map(toLease);
  }

  async byHandle(kind: TargetKind, handle: string): Promise<Lease | undefined> {
    const row = await this.#db.one('SELECT * FROM credential_leases WHERE kind = $1 AND handle = $2', [kind, handle]);
    return row ? toLease(row) : undefined;
  }

  async children(parentId: string): Promise<Lease[]> {
    const rows = await this.#db.query(
      `SELECT * FROM credential_leases WHERE params ->> 'parent' = $1 AND status IN ('issuing', 'active', 'revoke_failed')`,
      [parentId],
    );
    return rows.map(toLease);
  }

  async due(now: number, limit = 100): Promise<Lease[]> {
    // Only a list: claiming a due lease is the caller's transition (a compare-and-set), so two
    // replicas' reapers may both list it and exactly one moves it.
    const rows = await this.#db.query(
      `SELECT * FROM credential_leases
       WHERE (status = 'active' AND expires_at <= $1)
          OR (status = 'revoke_failed' AND (next_attempt_at IS NULL OR next_attempt_at <= $1))
       ORDER BY expires_at, id LIMIT $2`,
      [now, limit],
    );
    return rows.map(toLease);
  }

  /** Waits for the writes in flight (group commit). */
  async close(): Promise<void> {
    await this.#writer?.drain();
  }
}

export function pgCredentialStore(db: PgDb, opts: PgLeaseOptions = {}): CredentialStore & { close(): Promise<void> } {
  const leases = new PgLeaseRepository(db, opts);
  return { leases, close: () => leases.close() };
}
