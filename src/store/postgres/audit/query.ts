// Answering audit queries (AuditSearch, validated by the audit domain) on PostgreSQL, as the SQLite
// store does (src/store/sqlite/audit/query.ts): time ranges as seq ranges found by binary search
// on the primary key (server-side, audit_first_at_or_after), identity lookups through their indexes.
import { toRecord, type ChainFields } from '../../../audit/chain.ts';
import type { AuditSearch, SessionRecordsQuery } from '../../../audit/ports.ts';
import { AUDIT_STREAMS, type AuditRecord, type AuditStreamName } from '../../../audit/types.ts';
import type { PgDb } from '../db.ts';

const COLUMNS = 'stream, seq, time, type, actor, boundary, subject, decision, payload, prev_hash, hash';

/** A stream's time order, and its seq range for the query's since/until. */
interface TimeOrder {
  /** First seq from which the stream's times are non-decreasing (older rows may not be). */
  sortedFrom: number;
  /** First seq with time >= since (sortedFrom without since), and with time >= until (none without until). */
  lo: number;
  hi: number;
}

/**
 * Per stream, its sorted_from and the seq range of [since, until) within the sorted part, in one
 * round trip. A stream without a head row (deleted by hand) is left out: nothing vouches for its
 * order, so it is filtered by time alone.
 */
const TIME_ORDER_SQL =
  'SELECT h.stream, a.from_seq, a.lo, CASE WHEN $3::text IS NULL THEN NULL ELSE audit_first_at_or_after(h.stream, a.lo, a.end_seq, $3) END AS hi ' +
  'FROM audit_heads h CROSS JOIN LATERAL (' +
  '  SELECT GREATEST(h.sorted_from, 1) AS from_seq, x.end_seq, ' +
  '    CASE WHEN $2::text IS NULL THEN GREATEST(h.sorted_from, 1) ELSE audit_first_at_or_after(h.stream, GREATEST(h.sorted_from, 1), x.end_seq, $2) END AS lo ' +
  // The stored end, not the head's: rows past the head (forged, or committed since) still count.
  '  FROM (SELECT COALESCE(MAX(e.seq), 0) + 1 AS end_seq FROM audit_events e WHERE e.stream = h.stream) x' +
  ') a WHERE h.stream = ANY($1::text[])';

async function timeOrders(db: PgDb, streams: readonly AuditStreamName[], since: string | undefined, until: string | undefined): Promise<Map<string, TimeOrder>> {
  const rows = await db.query<{ stream: string; from_seq: number; lo: number; hi: number | null }>(TIME_ORDER_SQL, [streams, since ?? null, until ?? null]);
  return new Map(rows.map((r) => [r.stream, { sortedFrom: r.from_seq, lo: r.lo, hi: r.hi ?? Number.MAX_SAFE_INTEGER }]));
}

/** Parameters as `$n`, in the order the SQL is written. */
class Params {
  readonly values: (string | number)[] = [];
  add(v: string | number): string {
    this.values.push(v);
    return `$${this.values.length}`;
  }
}

/**
 * A stream's since/until as SQL on seq. Rows from sorted_from on are in the seq range found by
 * binary search; older rows (copied from a store written before times were kept in order) are
 * found by their time. The time conditions stay too, so a row outside the range is never
 * returned whatever the order.
 */
function streamTimeRange(order: TimeOrder | undefined, since: string | undefined, until: string | undefined, p: Params): string {
  const conds: string[] = [];
  if (order) {
    const sorted = `seq >= ${p.add(order.lo)} AND seq < ${p.add(order.hi)}`;
    conds.push(order.sortedFrom > 1 ? `(seq < ${p.add(order.sortedFrom)} OR (${sorted}))` : sorted);
  }
  if (since !== undefined) conds.push(`time >= ${p.add(since)}`);
  if (until !== undefined) conds.push(`time < ${p.add(until)}`);
  return conds.join(' AND ');
}

/** Builds the SQL of a validated query (reading the streams' time order first when it needs it). */
export async function buildQuery(db: PgDb, q: AuditSearch): Promise<{ sql: string; params: (string | number)[] }> {
  const { since, until, identity, actor, subject, limit } = q;
  const byIdentity = identity !== undefined || actor !== undefined || subject !== undefined;
  const streams = q.stream !== undefined ? [q.stream] : AUDIT_STREAMS;
  const timed = since !== undefined || until !== undefined;
  // Time ranges need each stream's order; identity queries over every stream need it to cut branches.
  const orders = timed || (byIdentity && q.stream === undefined) ? await timeOrders(db, streams, since, until) : new Map<string, TimeOrder>();
  const dir = q.order === 'desc' ? 'DESC' : 'ASC';
  const orderBy = q.stream !== undefined ? `seq ${dir}` : `time ${dir}, stream ${dir}, seq ${dir}`;
  const p = new Params();

  /** Stream-level conditions (afterSeq, maxSeq, the time range) for one stream. */
  const streamConds = (s: AuditStreamName): string[] => {
    const c = [`stream = ${p.add(s)}`];
    if (q.afterSeq !== undefined) c.push(`seq > ${p.add(q.afterSeq)}`);
    if (q.maxSeq !== undefined) c.push(`seq <= ${p.add(q.maxSeq)}`);
    if (timed) c.push(streamTimeRange(orders.get(s), since, until, p));
    return c;
  };
  /** Filters checked on each row (never the lookup column of an index branch). */
  const filters = (skip: 'actor' | 'subject' | null): string[] => {
    const c: string[] = [];
    for (const f of ['boundary', 'type', 'decision'] as const) if (q[f] !== undefined) c.push(`${f} = ${p.add(q[f])}`);
    if (identity !== undefined) {
      for (const f of ['actor', 'subject'] as const) if (q[f] !== undefined) c.push(`${f} = ${p.add(q[f])}`);
    } else if (skip === 'actor' && subject !== undefined) {
      c.push(`subject = ${p.add(subject)}`);
    }
    return c;
  };

  if (!byIdentity) {
    const where: string[] = [];
    if (q.stream !== undefined) {
      where.push(...streamConds(q.stream));
    } else if (timed) {
      // Seq ranges are per stream: without a stream, one range per stream, OR-ed.
      where.push(`(${AUDIT_STREAMS.map((s) => `(${streamConds(s).join(' AND ')})`).join(' OR ')})`);
    } else {
      if (q.afterSeq !== undefined) where.push(`seq > ${p.add(q.afterSeq)}`);
      if (q.maxSeq !== undefined) where.push(`seq <= ${p.add(q.maxSeq)}`);
    }
    where.push(...filters(null));
    const sql = `SELECT ${COLUMNS} FROM audit_events` + (where.length ? ` WHERE ${where.join(' AND ')}` : '') + ` ORDER BY ${orderBy} LIMIT ${limit}`;
    return { sql, params: p.values };
  }

  // Queries by identity, actor or subject are index lookups, never a scan of the stream: one
  // branch per stream and per index (identity = actor OR subject is two, UNION-ed), each walking
  // its index (column, stream, seq) in seq order and stopping after `limit` rows; the union is
  // then ordered and cut. Within a stream seq order is time order (from sorted_from on), so a
  // branch's first rows by seq are its first by time; a stream with older unsorted rows, or
  // without a head row, gets no per-branch limit.
  const lookups: { col: 'actor' | 'subject'; value: string }[] =
    identity !== undefined
      ? [{ col: 'actor', value: identity }, { col: 'subject', value: identity }]
      : actor !== undefined
        ? [{ col: 'actor', value: actor }]
        : [{ col: 'subject', value: subject! }];
  const branches: string[] = [];
  for (const s of streams) {
    const order = q.stream !== undefined ? { sortedFrom: 1 } : orders.get(s);
    const cut = order !== undefined && order.sortedFrom <= 1 ? ` ORDER BY seq ${dir} LIMIT ${limit}` : '';
    for (const l of lookups) {
      const conds = [`${l.col} = ${p.add(l.value)}`, ...streamConds(s), ...filters(identity === undefined ? l.col : null)];
      branches.push(`(SELECT ${COLUMNS} FROM audit_events WHERE ${conds.join(' AND ')}${cut})`);
    }
  }
  return { sql: `SELECT * FROM (${branches.join(' UNION ')}) u ORDER BY ${orderBy} LIMIT ${limit}`, params: p.values };
}

/**
 * SQL of one gateway session's records: the expression and the literal stream are those of the
 * partial index `audit_events_session` (migration 3), which the planner matches as written.
 */
export const SESSION_RECORDS_SQL =
  `SELECT ${COLUMNS} FROM audit_events WHERE stream = 'session' AND (payload::jsonb ->> 'session') = $1 AND seq > $2 AND ($3::text IS NULL OR type = $3) ORDER BY seq LIMIT $4`;

export async function sessionRecords(db: PgDb, session: string, o: SessionRecordsQuery): Promise<AuditRecord[]> {
  const rows = await db.query<ChainFields & { hash: string }>(SESSION_RECORDS_SQL, [session, o.afterSeq ?? 0, o.type ?? null, o.limit]);
  return rows.map(toRecord);
}

export async function queryEvents(db: PgDb, q: AuditSearch): Promise<AuditRecord[]> {
  const { sql, params } = await buildQuery(db, q);
  const rows = await db.query<ChainFields & { hash: string }>(sql, params);
  return rows.map(toRecord);
}
