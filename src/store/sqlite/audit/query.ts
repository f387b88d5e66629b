// Answering audit queries (AuditSearch, validated by the audit domain) in SQL: time ranges as seq
// ranges found by binary search, identity lookups through their indexes. Plain functions over a
// connection, so the offline reader uses them on a read-only one as well.
import { toRecord, type ChainFields } from '../../../audit/chain.ts';
import type { AuditSearch, SessionRecordsQuery } from '../../../audit/ports.ts';
import { AUDIT_STREAMS, type AuditRecord } from '../../../audit/types.ts';
import type { StatementSync } from 'node:sqlite';
import type { Db } from '../db.ts';

const COLUMNS = 'stream, seq, time, type, actor, boundary, subject, decision, payload, prev_hash, hash';

interface TimeOrder {
  /** First seq from which the stream's times are non-decreasing (older rows may not be). */
  sortedFrom: number;
  /** One past the last seq. */
  end: number;
}

interface Statements {
  order: StatementSync | null; // null: a store from before migration 2 (read-only, offline)
  last: StatementSync;
  probe: StatementSync;
}

const statements = new WeakMap<Db, Statements>();

function statementsOf(db: Db): Statements {
  let st = statements.get(db);
  if (!st) {
    let order: StatementSync | null;
    try {
      order = db.prepare('SELECT sorted_from FROM audit_heads WHERE stream = ?');
    } catch {
      order = null; // no sorted_from column: that schema still has the (stream, time) index
    }
    // The first row at or after a seq: rows missing from the chain cannot derail the search.
    const probe = db.prepare('SELECT time FROM audit_events WHERE stream = ? AND seq >= ? ORDER BY seq LIMIT 1');
    // The stored end, not the head's: rows past the head (forged, or committed since) still count.
    const last = db.prepare('SELECT seq FROM audit_events WHERE stream = ? ORDER BY seq DESC LIMIT 1');
    st = { order, last, probe };
    if (order) statements.set(db, st); // an old schema may be migrated later on this connection
  }
  return st;
}

function timeOrder(db: Db, stream: string): TimeOrder | undefined {
  const { order, last } = statementsOf(db);
  if (!order) return undefined;
  const h = order.get(stream) as { sorted_from: number } | undefined;
  // No head row: no writer of this schema vouches for the order; filter by time alone.
  if (!h) return undefined;
  const end = last.get(stream) as { seq: number } | undefined;
  return { sortedFrom: h.sorted_from, end: (end?.seq ?? 0) + 1 };
}

/**
 * The smallest seq in [lo, hi] from which every row has time >= t (hi when none): a binary search
 * on the primary key, valid because times do not decrease from `lo` on.
 */
function firstAtOrAfter(db: Db, stream: string, lo: number, hi: number, t: string): number {
  const { probe } = statementsOf(db);
  while (lo < hi) {
    const mid = lo + Math.floor((hi - lo) / 2);
    const row = probe.get(stream, mid) as { time: string } | undefined;
    if (row === undefined || row.time >= t) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/**
 * A stream's since/until as SQL on seq. Rows from sorted_from on are found by binary search;
 * older rows (written before times were kept in order) by their time. The time conditions stay
 * too, so a row outside the range is never returned whatever the order.
 */
function streamTimeRange(db: Db, stream: string, since: string | undefined, until: string | undefined, params: (string | number)[]): string {
  const conds: string[] = [];
  const timeParams: string[] = [];
  if (since !== undefined) {
    conds.push('time >= ?');
    timeParams.push(since);
  }
  if (until !== undefined) {
    conds.push('time < ?');
    timeParams.push(until);
  }
  const order = timeOrder(db, stream);
  if (order) {
    const from = Math.max(order.sortedFrom, 1);
    const lo = since !== undefined ? firstAtOrAfter(db, stream, from, order.end, since) : from;
    const hi = until !== undefined ? firstAtOrAfter(db, stream, lo, order.end, until) : Number.MAX_SAFE_INTEGER;
    const sorted = 'seq >= ? AND seq < ?';
    if (from > 1) {
      conds.unshift(`(seq < ? OR (${sorted}))`);
      params.push(from, lo, hi);
    } else {
      conds.unshift(sorted);
      params.push(lo, hi);
    }
  }
  params.push(...timeParams);
  return conds.join(' AND ');
}

/**
 * SQL of one gateway session's records through the partial index `audit_events_session`
 * (migration 3; its expression and literal stream as written there). Named: without statistics
 * the planner rates the primary key's (stream, seq) range as good, which scans the whole stream.
 */
const SESSION_WHERE = `WHERE stream = 'session' AND json_extract(payload, '$.session') = ? AND seq > ? AND (? IS NULL OR type = ?) ORDER BY seq LIMIT ?`;
export const SESSION_RECORDS_SQL = `SELECT ${COLUMNS} FROM audit_events INDEXED BY audit_events_session ${SESSION_WHERE}`;

export function sessionRecords(db: Db, session: string, o: SessionRecordsQuery): AuditRecord[] {
  let st: StatementSync;
  try {
    st = db.prepare(SESSION_RECORDS_SQL);
  } catch {
    st = db.prepare(`SELECT ${COLUMNS} FROM audit_events ${SESSION_WHERE}`); // a read-only store from before migration 3
  }
  const rows = st.all(session, o.afterSeq ?? 0, o.type ?? null, o.type ?? null, o.limit) as unknown as (ChainFields & { hash: string })[];
  return rows.map(toRecord);
}

/** Builds the SQL of a validated query. */
export function buildQuery(db: Db, q: AuditSearch): { sql: string; params: (string | number)[] } {
  const where: string[] = [];
  const params: (string | number)[] = [];
  if (q.stream !== undefined) {
    where.push('stream = ?');
    params.push(q.stream);
  }
  if (q.afterSeq !== undefined) {
    where.push('seq > ?');
    params.push(q.afterSeq);
  }
  if (q.maxSeq !== undefined) {
    where.push('seq <= ?');
    params.push(q.maxSeq);
  }
  const { since, until, identity, actor, subject, limit } = q;
  // Filters checked on each row (never the lookup column of an index branch, see below).
  const filters: string[] = [];
  const filterParams: (string | number)[] = [];
  for (const f of ['boundary', 'type', 'decision'] as const) {
    if (q[f] !== undefined) {
      filters.push(`${f} = ?`);
      filterParams.push(q[f]);
    }
  }
  const dir = q.order === 'desc' ? 'DESC' : 'ASC';
  const orderBy = q.stream !== undefined ? `seq ${dir}` : `time ${dir}, stream ${dir}, seq ${dir}`;

  if (identity !== undefined || actor !== undefined || subject !== undefined) {
    return identityQuery(db, q, { identity, actor, subject, since, until, where, params, filters, filterParams, limit, dir, orderBy });
  }

  where.push(...filters);
  params.push(...filterParams);
  if (since !== undefined || until !== undefined) {
    // Seq ranges are per stream: without a stream, one range per stream, OR-ed.
    const streams = q.stream !== undefined ? [q.stream] : AUDIT_STREAMS;
    const ranges: string[] = [];
    const rangeParams: (string | number)[] = [];
    for (const s of streams) {
      const p: (string | number)[] = [];
      const cond = streamTimeRange(db, s, since, until, p);
      if (q.stream !== undefined) {
        ranges.push(cond);
      } else {
        ranges.push(`(stream = ? AND ${cond})`);
        rangeParams.push(s);
      }
      rangeParams.push(...p);
    }
    where.push(ranges.length === 1 ? ranges[0] : `(${ranges.join(' OR ')})`);
    params.push(...rangeParams);
  }
  const sql =
    `SELECT ${COLUMNS} FROM audit_events` +
    (where.length ? ` WHERE ${where.join(' AND ')}` : '') +
    ` ORDER BY ${orderBy} LIMIT ${limit}`;
  return { sql, params };
}

/** The indexes an identity query is answered from: (actor, stream, seq) and (subject, stream, seq). */
const IDENTITY_INDEXES = { actor: 'audit_events_actor', subject: 'audit_events_subject' } as const;

interface IdentityParts {
  identity: string | undefined;
  actor: string | undefined;
  subject: string | undefined;
  since: string | undefined;
  until: string | undefined;
  /** Conditions and params so far (stream, afterSeq, maxSeq). */
  where: string[];
  params: (string | number)[];
  filters: string[];
  filterParams: (string | number)[];
  limit: number;
  dir: 'ASC' | 'DESC';
  orderBy: string;
}

/**
 * Queries by identity, actor or subject are index lookups, never a scan of the stream: one branch
 * per stream and per index (identity = actor OR subject is two branches, UNION-ed), each walking
 * its index (column, stream, seq) in seq order — `INDEXED BY`, so the planner cannot prefer the
 * primary key to avoid a sort — and stopping after `limit` rows. The union is then ordered and
 * cut. Within a stream seq order is time order (from sorted_from on), so a branch's first rows
 * by seq are its first by time; a stream with older unsorted rows gets no per-branch limit.
 */
function identityQuery(db: Db, q: AuditSearch, o: IdentityParts): { sql: string; params: (string | number)[] } {
  // Which index answers each branch, and the other identity columns become filters.
  const lookups: { col: 'actor' | 'subject'; value: string }[] =
    o.identity !== undefined
      ? [{ col: 'actor', value: o.identity }, { col: 'subject', value: o.identity }]
      : o.actor !== undefined
        ? [{ col: 'actor', value: o.actor }]
        : [{ col: 'subject', value: o.subject! }];
  const extra = [...o.filters];
  const extraParams = [...o.filterParams];
  if (o.identity !== undefined) {
    for (const f of ['actor', 'subject'] as const) {
      if (o[f] !== undefined) {
        extra.push(`${f} = ?`);
        extraParams.push(o[f]!);
      }
    }
  } else if (o.actor !== undefined && o.subject !== undefined) {
    extra.push('subject = ?');
    extraParams.push(o.subject);
  }
  // Stream-level conditions (q.stream, afterSeq, maxSeq) apply to every branch.
  const streamWhere = o.where.filter((c) => c !== 'stream = ?');
  const streamParams = q.stream !== undefined ? o.params.slice(1) : o.params;
  const streams = q.stream !== undefined ? [q.stream] : AUDIT_STREAMS;
  const branches: string[] = [];
  const params: (string | number)[] = [];
  for (const s of streams) {
    const conds = ['stream = ?', ...streamWhere];
    const p: (string | number)[] = [s, ...streamParams];
    if (o.since !== undefined || o.until !== undefined) {
      const rp: (string | number)[] = [];
      conds.push(streamTimeRange(db, s, o.since, o.until, rp));
      p.push(...rp);
    }
    // Per-branch LIMIT is exact in seq order, and in time order once the stream is time-sorted.
    const order = q.stream !== undefined ? { sortedFrom: 1 } : timeOrder(db, s);
    const cut = order !== undefined && order.sortedFrom <= 1 ? ` ORDER BY seq ${o.dir} LIMIT ${o.limit}` : '';
    for (const l of lookups) {
      branches.push(
        `SELECT * FROM (SELECT ${COLUMNS} FROM audit_events INDEXED BY ${IDENTITY_INDEXES[l.col]} WHERE ` +
          [`${l.col} = ?`, ...conds, ...extra].join(' AND ') +
          `${cut})`,
      );
      params.push(l.value, ...p, ...extraParams);
    }
  }
  const sql = `${branches.join(' UNION ')} ORDER BY ${o.orderBy} LIMIT ${o.limit}`;
  return { sql, params };
}

export function queryEvents(db: Db, q: AuditSearch): AuditRecord[] {
  const { sql, params } = buildQuery(db, q);
  const rows = db.prepare(sql).all(...params) as unknown as (ChainFields & { hash: string })[];
  return rows.map(toRecord);
}
