// The lease table's statements on one SQLite connection: reads, and the writes as plain data
// (LeaseWrite) so the lease writer worker can apply them on its own connection. Row mapping and
// the statements both stores share are in ../rows/leases.ts.
import type { DatabaseSync, SQLInputValue, StatementSync } from 'node:sqlite';
import type { LeaseFilter, LeasePatch } from '../../credentials/ports.ts';
import type { Lease, LeaseStatus, TargetKind } from '../../credentials/types.ts';
import { LEASE_COLUMNS, leaseFromRow, leaseList, leaseUpdate, leaseValues, type LeaseWrite } from '../rows/leases.ts';
import { placeholders } from '../rows/sql.ts';
import type { Row } from '../rows/values.ts';
import { SQLITE_SQL } from './db.ts';

// A write that fails undoes only itself: the transaction it is part of goes on (applyBatch).
export type { LeaseWrite };

const toLease = (r: Row): Lease => leaseFromRow(r, (v) => JSON.parse(v as string) as Record<string, unknown>);

const INSERT = `INSERT INTO credential_leases (${LEASE_COLUMNS.join(', ')}) VALUES (${placeholders(SQLITE_SQL, LEASE_COLUMNS.length)})`;

export type LeaseWriteResult =
  | { ok: true; lease: Lease | undefined }
  | { ok: false; notFound: boolean; message: string };

/** An update of a lease id that does not exist. */
export class LeaseRowMissing extends Error {}

export class LeaseRows {
  readonly #raw: DatabaseSync;
  /** Issuance and revocation run these on every call: compile each statement once. */
  readonly #statements = new Map<string, StatementSync>();

  constructor(raw: DatabaseSync) {
    this.#raw = raw;
  }

  #prepare(sql: string): StatementSync {
    let st = this.#statements.get(sql);
    if (!st) this.#statements.set(sql, (st = this.#raw.prepare(sql)));
    return st;
  }

  /** Applies one write; throws LeaseRowMissing (update of an unknown id) or SQLite's error. */
  apply(w: LeaseWrite): Lease | undefined {
    if (w.op === 'insert') {
      this.#prepare(INSERT).run(...leaseValues(w.lease));
      return undefined;
    }
    const l = this.#update(w.id, w.patch, w.op === 'transition' ? w.from : undefined);
    if (!l && w.op === 'update') throw new LeaseRowMissing(`lease ${w.id} not found`);
    return l;
  }

  /**
   * Applies writes in one transaction of their own (the caller's connection must not be in one);
   * each gets its own result. Throws — nothing committed — when the transaction itself fails.
   */
  applyBatch(writes: readonly LeaseWrite[]): LeaseWriteResult[] {
    const raw = this.#raw;
    const results: LeaseWriteResult[] = [];
    raw.exec('BEGIN IMMEDIATE');
    try {
      for (const w of writes) {
        try {
          results.push({ ok: true, lease: this.apply(w) });
        } catch (e) {
          // A failed statement is undone on its own and the transaction goes on, unless SQLite
          // rolled the whole transaction back (I/O error, disk full): then the batch fails.
          if (!raw.isOpen || !raw.isTransaction) throw e;
          results.push({ ok: false, notFound: e instanceof LeaseRowMissing, message: (e as Error).message });
        }
      }
      raw.exec('COMMIT');
    } catch (e) {
      if (raw.isOpen && raw.isTransaction) raw.exec('ROLLBACK');
      throw e;
    }
    return results;
  }

  /**
   * One UPDATE … RETURNING: sets `patch` on the lease when its status is one of `from` (any
   * status when `from` is undefined) and returns the row as it is now, or undefined.
   */
  #update(id: string, patch: LeasePatch, from?: readonly LeaseStatus[]): Lease | undefined {
    const { sql, values } = leaseUpdate(SQLITE_SQL, id, patch, from);
    if (from !== undefined && from.length === 0) return undefined;
    const r = this.#prepare(sql).get(...(values as SQLInputValue[])) as Row | undefined;
    return r ? toLease(r) : undefined;
  }

  get(id: string): Lease | undefined {
    const r = this.#prepare('SELECT * FROM credential_leases WHERE id = ?').get(id) as Row | undefined;
    return r ? toLease(r) : undefined;
  }

  list(f: LeaseFilter, limit: number): Lease[] {
    const { sql, values } = leaseList(SQLITE_SQL, f, limit);
    return (this.#prepare(sql).all(...(values as SQLInputValue[])) as Row[]).map(toLease);
  }

  byHandle(kind: TargetKind, handle: string): Lease | undefined {
    const r = this.#prepare('SELECT * FROM credential_leases WHERE kind = ? AND handle = ?').get(kind, handle) as Row | undefined;
    return r ? toLease(r) : undefined;
  }

  children(parentId: string): Lease[] {
    return (
      this.#prepare(`SELECT * FROM credential_leases WHERE json_extract(params, '$.parent') = ? AND status IN ('issuing', 'active', 'revoke_failed')`)
        .all(parentId) as Row[]
    ).map(toLease);
  }

  due(now: number, limit: number): Lease[] {
    return (
      this.#prepare(
        `SELECT * FROM credential_leases
         WHERE (status = 'active' AND expires_at <= ?)
            OR (status = 'revoke_failed' AND (next_attempt_at IS NULL OR next_attempt_at <= ?))
         ORDER BY expires_at LIMIT ?`,
      ).all(now, now, limit) as Row[]
    ).map(toLease);
  }
}
